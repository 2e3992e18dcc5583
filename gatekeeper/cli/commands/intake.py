"""``gatekeeper intake``: the OTLP/HTTP trace intake as its own process (the chart's intake Deployment).

    gatekeeper intake --in-cluster --token-file /etc/gatekeeper/token/token --host 0.0.0.0 \\
        --peers-dns gatekeeper-intake-peers.gatekeeper-system.svc:4318 --self-ip $POD_IP

It learns its rules from the Gates it watches (``--kubeconfig``/``--in-cluster``; ``--gates-dir`` reads gate
files instead), judges every completed trace against them and exports the counts on ``/metrics`` of the same
port; Prometheus sums them over replicas and the controller's invariant signal reads them from there. See
docs/traces.md for the deployment shapes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Annotated

import typer

__all__ = ["register"]

log = logging.getLogger("gatekeeper.intake")


def register(app: typer.Typer) -> None:
    app.command("intake")(intake)


def intake(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port of /v1/traces, /metrics, probes.")] = 4318,
    grpc_port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="Port of OTLP/gRPC (what the Collector's load balancer speaks)."),
    ] = 4317,
    grpc: Annotated[bool, typer.Option("--grpc/--no-grpc", help="Also serve OTLP/gRPC.")] = True,
    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 in a pod: needs auth).")] = "127.0.0.1",
    kubeconfig: Annotated[str | None, typer.Option(help="Watch Gates with this kubeconfig.")] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context.")] = None,
    in_cluster: Annotated[bool, typer.Option(help="Watch Gates with the pod's service account.")] = False,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Only Gates here.")] = None,
    gates_dir: Annotated[str | None, typer.Option(help="Read rules from gate files instead.")] = None,
    version_attribute: Annotated[
        str, typer.Option(help="Resource or span attribute telling versions apart.")
    ] = "service.version",
    completion_timeout: Annotated[
        float, typer.Option(help="Seconds after a trace's last span before it is judged.")
    ] = 30.0,
    max_open_traces: Annotated[int, typer.Option(min=1, help="Traces assembled at once.")] = 100_000,
    max_open_spans: Annotated[int, typer.Option(min=1, help="Spans held at once.")] = 1_000_000,
    max_inflight: Annotated[int, typer.Option(min=1, help="Exports decoded at once (then 429).")] = 8,
    peers: Annotated[
        str | None, typer.Option(help="Other intake replicas, comma-separated base URLs.")
    ] = None,
    peers_dns: Annotated[
        str | None, typer.Option(help="HOST:PORT resolving to every replica (a headless Service).")
    ] = None,
    self_ip: Annotated[
        str | None, typer.Option(help="This replica's address, left out of --peers-dns (the pod IP).")
    ] = None,
    token: Annotated[str | None, typer.Option(help="Bearer token (prefer --token-file).")] = None,
    token_file: Annotated[str | None, typer.Option(help="Token file, one token per line (a Secret).")] = None,
    tls_cert: Annotated[str | None, typer.Option(help="Serve HTTPS with this certificate (PEM).")] = None,
    tls_key: Annotated[str | None, typer.Option(help="The certificate's private key (PEM).")] = None,
    client_ca: Annotated[str | None, typer.Option(help="Require client certificates (mTLS).")] = None,
    insecure_no_auth: Annotated[
        bool, typer.Option(help="Allow listening beyond loopback without any authentication.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Receive OTLP/HTTP spans, judge trace rules from the Gates, export the counts for Prometheus."""
    import time

    import uvicorn

    from gatekeeper.sources.traces import StoreLimits, TraceStore
    from gatekeeper.web.auth import Auth, InsecureExposure, check_exposure
    from gatekeeper.web.intake import Peers, RuleWatcher, Settler, create_intake_app
    from gatekeeper.web.otlp_grpc import GrpcIntake

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if sum(bool(x) for x in (kubeconfig or context, in_cluster, gates_dir)) != 1:
        _fail(
            "choose where rules come from: --kubeconfig FILE, --in-cluster, or --gates-dir DIR (exactly one)"
        )
    try:
        auth = Auth.configure(
            token=token or os.environ.get("GATEKEEPER_INTAKE_TOKEN") or None,
            token_file=token_file,
            tls_cert=tls_cert,
            tls_key=tls_key,
            client_ca=client_ca,
        )
        warning = check_exposure(host=host, auth=auth, insecure_no_auth=insecure_no_auth, what="the intake")
        peer_set = Peers(
            urls=tuple(u.strip().rstrip("/") for u in (peers or "").split(",") if u.strip()),
            dns=peers_dns,
            self_ip=self_ip,
            token=auth.bearer,
            scheme="https" if auth.tls is not None else "http",
            verify=_peer_tls(auth.tls),
        )
        store = TraceStore(
            clock=time.time,
            version_attribute=version_attribute,
            completion_timeout=completion_timeout,
            limits=StoreLimits(max_open_traces=max_open_traces, max_open_spans=max_open_spans),
            confirm_violations=bool(peer_set),
        )
    except (ValueError, InsecureExposure) as e:
        _fail(str(e))
    if warning:
        log.warning(warning)
    rules = RuleWatcher(store)
    if gates_dir:
        try:
            _rules_from_dir(rules, gates_dir)
        except ValueError as e:
            _fail(str(e))
        rules.synced.set()
    else:
        rules.attach(_api_client(kubeconfig, context, in_cluster=in_cluster), namespace=namespace)
    app = create_intake_app(store, auth=auth, ready=rules.synced.is_set, max_inflight=max_inflight)
    scheme = "https" if auth.tls is not None else "http"
    log.info("intake on %s://%s:%d (%s; %s peers)", scheme, host, port, auth.describe(),
             "with" if peer_set else "no")  # fmt: skip
    tls = auth.tls.uvicorn_options() if auth.tls is not None else {}
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(Settler(store, peers=peer_set if peer_set else None))
            if grpc:
                try:
                    served = stack.enter_context(
                        GrpcIntake(store, auth=auth, host=host, port=grpc_port, max_inflight=max_inflight)
                    )
                except (OSError, RuntimeError) as e:
                    _fail(f"cannot serve OTLP/gRPC on {host}:{grpc_port}: {e}")
                log.info("OTLP/gRPC on %s:%d", host, served.port)
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, **tls)
    finally:
        rules.stop()
        peer_set.close()


def _peer_tls(tls: object) -> object:
    """How a replica calls its peers: with mutual TLS it presents its own certificate and trusts the client CA
    (one CA for the intake's server and client certificates); with plain TLS the system's trust store."""
    if tls is None:
        return True
    import ssl

    ctx = ssl.create_default_context(cafile=getattr(tls, "client_ca", None))
    if getattr(tls, "client_ca", None):
        ctx.load_cert_chain(tls.certfile, tls.keyfile)  # type: ignore[attr-defined]
    return ctx


def _rules_from_dir(rules: object, directory: str) -> None:
    from gatekeeper.ops.gate import resolve_spec
    from gatekeeper.ops.repository import load_gates_dir

    repo = load_gates_dir(directory)
    for record in repo.list_gates():
        try:
            gate = resolve_spec(record)
        except Exception as e:
            log.warning("gate %s: its rules are not judged: %s", record.name, e)
            continue
        n = rules.watch_gate(gate, where=record.name)  # type: ignore[attr-defined]
        log.info("gate %s: %d trace rule(s)", record.name, n)


def _api_client(kubeconfig: str | None, context: str | None, *, in_cluster: bool) -> object:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if in_cluster:
            config.load_incluster_config()
            return client.ApiClient()
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except (ConfigException, OSError, TypeError) as e:
        _fail(f"cannot load the kubeconfig ({kubeconfig or 'in-cluster'}): {e}")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
