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
        help=f"Bearer token for approve/abort, /integrations/* and /v1/traces (or set ${TOKEN_ENV}).",
        show_default=False,
    ),
    token_file: str = typer.Option(
        None, "--token-file", help="Read the token(s) from this file, one per line (a mounted Secret)."
    ),
    tls_cert: str = typer.Option(None, "--tls-cert", help="Serve HTTPS with this certificate (PEM)."),
    tls_key: str = typer.Option(None, "--tls-key", help="The certificate's private key (PEM)."),
    client_ca: str = typer.Option(
        None, "--client-ca", help="Require client certificates signed by this CA (mutual TLS)."
    ),
    insecure_no_auth: bool = typer.Option(
        False, "--insecure-no-auth", help="Allow listening beyond loopback without any authentication."
    ),
    traces: bool = typer.Option(
        False, "--traces/--no-traces", help="Also accept OTLP/HTTP spans at /v1/traces."
    ),
) -> None:
    """Serve the web app. Read-only unless a token is given; beyond loopback it needs a token or mTLS."""
    import uvicorn

    from gatekeeper.ops.repository import KubernetesGateRepository, load_gates_dir
    from gatekeeper.web.app import create_app
    from gatekeeper.web.auth import Auth, InsecureExposure, check_exposure

    sources = sum(bool(x) for x in (kubeconfig or context, gates_dir, in_cluster))
    if sources != 1:
        fail(
            "choose where gates come from: --kubeconfig FILE, --in-cluster, or --gates-dir DIR (exactly one)"
        )
    try:
        auth = Auth.configure(
            token=token or os.environ.get(TOKEN_ENV) or None,
            token_file=token_file,
            tls_cert=tls_cert,
            tls_key=tls_key,
            client_ca=client_ca,
        )
        warning = check_exposure(host=host, auth=auth, insecure_no_auth=insecure_no_auth, what="gatekeeper")
    except (ValueError, InsecureExposure) as e:
        fail(str(e))
    if warning:
        err.print(f"[bold red]{warning}[/]", highlight=False)
    try:
        if gates_dir:
            repository = load_gates_dir(gates_dir)
        else:
            repository = KubernetesGateRepository.from_kubeconfig(
                None if in_cluster else kubeconfig, context=context, namespace=namespace
            )
    except Exception as e:  # kubeconfig missing/invalid, not in a cluster: one paragraph, exit 2
        fail(f"cannot read gates: {e}")
    sink = None
    if traces:
        import time

        from gatekeeper.sources.traces.store import TraceStore

        sink = TraceStore(clock=time.time)
        _watch_rules(sink, repository)
    try:
        app = create_app(repository=repository, auth=auth, prometheus=prometheus, span_sink=sink)
    except ValueError as e:
        fail(str(e))
    mode = "approve/abort enabled" if auth.has_token else "read-only"
    scheme = "https" if auth.tls is not None else "http"
    err.print(f"gatekeeper serving on {scheme}://{host}:{port} ({mode}; {auth.describe()})", highlight=False)
    tls = auth.tls.uvicorn_options() if auth.tls is not None else {}
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, **tls)


def _watch_rules(store: object, repository: object) -> None:
    """Judge the trace rules of every gate served from the first span on, not from the first look."""
    from gatekeeper.ops.errors import Unreachable
    from gatekeeper.ops.gate import resolve_spec
    from gatekeeper.spec import SpecError
    from gatekeeper.web.intake import RuleWatcher

    watcher = RuleWatcher(store)  # type: ignore[arg-type]
    try:
        records = repository.list_gates()  # type: ignore[attr-defined]
    except Unreachable as e:
        err.print(f"trace rules not learned at start ({e}): each gate's rule is judged from its first look")
        return
    for record in records:
        try:
            watcher.watch_gate(resolve_spec(record), where=f"{record.namespace}/{record.name}")
        except SpecError:
            continue  # a gate needing arguments: its rule is watched at its first look
