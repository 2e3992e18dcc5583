"""`gatekeeper serve`: the dashboard, `/metrics`, the OTLP intake and the Argo Rollouts / Flagger endpoints."""

from __future__ import annotations

import os

import typer

from gatekeeper.cli.render import err, fail

TOKEN_ENV = "GATEKEEPER_DASHBOARD_TOKEN"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 inside a cluster)."),
    kubeconfig: str = typer.Option(None, "--kubeconfig", help="Read Gate resources with this kubeconfig."),
    context: str = typer.Option(None, "--context", help="kubeconfig context."),
    namespace: str = typer.Option(None, "--namespace", "-n", help="Only this namespace (default: all)."),
    in_cluster: bool = typer.Option(False, "--in-cluster", help="Use the pod's service account."),
    gates_dir: str = typer.Option(None, "--gates-dir", help="Serve gate files from this directory instead."),
    prometheus: str = typer.Option(
        None, "--prometheus", "-p", help="Prometheus URL for the integrations (overrides the specs)."
    ),
    token: str = typer.Option(
        None,
        "--token",
        help=f"Enable approve/abort with this token (or set ${TOKEN_ENV}).",
        show_default=False,
    ),
    traces: bool = typer.Option(
        False, "--traces/--no-traces", help="Also accept OTLP/HTTP spans at /v1/traces."
    ),
) -> None:
    """Serve the web app. Read-only unless a token is given."""
    import uvicorn

    from gatekeeper.ops.views import KubernetesGateRepository, load_gates_dir
    from gatekeeper.web.app import create_app

    sources = sum(bool(x) for x in (kubeconfig or context, gates_dir, in_cluster))
    if sources != 1:
        fail(
            "choose where gates come from: --kubeconfig FILE, --in-cluster, or --gates-dir DIR (exactly one)"
        )
    try:
        if gates_dir:
            repository = load_gates_dir(gates_dir)
        else:
            repository = KubernetesGateRepository.from_kubeconfig(
                None if in_cluster else kubeconfig, context=context, namespace=namespace
            )
    except Exception as e:  # kubeconfig missing/invalid, not in a cluster: one paragraph, exit 2
        fail(f"cannot read gates: {e}")
    token = token or os.environ.get(TOKEN_ENV) or None
    sink = None
    if traces:
        import time

        from gatekeeper.sources.traces.store import TraceStore

        sink = TraceStore(clock=time.time)
    try:
        app = create_app(repository=repository, token=token, prometheus=prometheus, span_sink=sink)
    except ValueError as e:
        fail(str(e))
    mode = "approve/abort enabled" if token else "read-only"
    err.print(f"gatekeeper serving on http://{host}:{port} ({mode})", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
