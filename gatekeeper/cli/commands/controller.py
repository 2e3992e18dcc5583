"""``gatekeeper controller run``: the gate controller (one replica; run two or more for failover).

    gatekeeper controller run --kubeconfig ~/.kube/config --namespace shop --prometheus http://prometheus:9090

Inside a cluster (no ``--kubeconfig`` and ``KUBERNETES_SERVICE_HOST`` set) it uses the pod's service account.
Replicas elect a leader through the Lease ``--lease-name`` in ``--lease-namespace``; only the leader acts.
Exit codes: 0 after a graceful stop (SIGTERM/SIGINT), 1 when leadership was lost (the pod restarts and
campaigns again), 2 bad input.

``--metrics-port`` serves Prometheus metrics about the gates at ``/metrics`` (``gatekeeper.web.metrics``: verdicts,
stage, weight, phase, e-values with their thresholds, effects with their limits, actions and analysis aborts);
``--dashboard-port`` serves the dashboard (and ``/metrics`` again). Both are off unless given (the Helm
chart gives 9464 and 8080); 0 picks a free port, logged at start. Only the leader has gate metrics to export.
The dashboard (read-only) also serves the judge endpoints ``/integrations/*``: beyond loopback they need
``--token-file`` (or mutual TLS) unless ``--insecure-no-auth``.

``--config`` reads the defaults file the Helm chart mounts (``charts/gatekeeper/templates/configmap.yaml``)::

    source: {prometheus: {url: ..., timeout: 5s, retries: 2, headers: {...}}}  # for gates that do not set them
    routers: [gateway-api]                  # the routing kinds RBAC allows (validated, logged)
    prometheusHeadersDir: /etc/...          # one file per header (a mounted Secret), added to every query

``--prometheus`` still overrides every gate's URL, the file's too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from gatekeeper import __version__

__all__ = ["register"]

log = logging.getLogger("gatekeeper.controller")
_CONFIG_KEYS = frozenset({"source", "routers", "prometheusHeadersDir"})
_SOURCE_DEFAULTS = frozenset({"url", "timeout", "retries", "headers"})  # what a source factory can apply

controller_app = typer.Typer(help="Run the gate controller.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(controller_app, name="controller")


@controller_app.command("run")
def run(
    kubeconfig: Annotated[
        str | None, typer.Option(help="Kubeconfig path (default: in-cluster, $KUBECONFIG).")
    ] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context (default: current).")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Watch Gates here only.")] = None,
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus URL for every gate (overrides specs).")
    ] = None,
    identity: Annotated[
        str | None, typer.Option(help="Replica identity (default: hostname + random).")
    ] = None,
    lease_name: Annotated[
        str, typer.Option(help="Lease used for leader election.")
    ] = "gatekeeper-controller",
    lease_namespace: Annotated[
        str | None, typer.Option(help="Namespace of the Lease (default: --namespace or default).")
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="I/N: act only on the Gates whose UID hashes to shard I of N (0-based), with a leader of "
            "its own on the Lease '<lease-name>-shard-I-of-N'. Run replicas for every shard."
        ),
    ] = None,
    lease_duration: Annotated[float, typer.Option(help="Seconds a Lease holds without renewal.")] = 15.0,
    renew_deadline: Annotated[float, typer.Option(help="Seconds the leader keeps trying to renew.")] = 10.0,
    retry_period: Annotated[float, typer.Option(help="Seconds between Lease attempts.")] = 2.0,
    leader_election: Annotated[
        bool, typer.Option(help="Elect a leader (turn off only for one local replica).")
    ] = True,
    workers: Annotated[int, typer.Option(min=1, max=256, help="Concurrent looks.")] = 8,
    resync: Annotated[float, typer.Option(help="Seconds between full re-lists of Gates.")] = 300.0,
    heartbeat: Annotated[
        float, typer.Option(help="Seconds between status writes of an unchanged hold.")
    ] = 60.0,
    health_port: Annotated[int, typer.Option(help="Port of /healthz and /readyz (0: any free port).")] = 8081,
    health_host: Annotated[str, typer.Option(help="Address of the probe server.")] = "0.0.0.0",
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Serve /metrics on this port (0: any free port; default: off)."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address of the /metrics server.")] = "0.0.0.0",
    dashboard_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve the read-only dashboard on this port (0: any free port; default: off).",
        ),
    ] = None,
    dashboard_host: Annotated[str, typer.Option(help="Address of the dashboard.")] = "0.0.0.0",
    token_file: Annotated[
        str | None,
        typer.Option(help="Bearer token(s) for the dashboard's /integrations/* (a mounted Secret)."),
    ] = None,
    tls_cert: Annotated[str | None, typer.Option(help="Serve the dashboard over HTTPS (PEM).")] = None,
    tls_key: Annotated[str | None, typer.Option(help="The certificate's private key (PEM).")] = None,
    client_ca: Annotated[str | None, typer.Option(help="Require client certificates (mTLS).")] = None,
    insecure_no_auth: Annotated[
        bool, typer.Option(help="Serve the dashboard beyond loopback without authentication.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML defaults: source.prometheus for gates that set none, routers, headers dir."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    clock_origin: Annotated[
        float | None, typer.Option(hidden=True, help="Gate time at start (unix s).")
    ] = None,
    clock_anchor: Annotated[
        float | None, typer.Option(hidden=True, help="Unix time the origin is at.")
    ] = None,
    clock_rate: Annotated[float, typer.Option(hidden=True, help="Gate seconds per real second.")] = 1.0,
    crash_at: Annotated[
        str | None, typer.Option(hidden=True, help="Chaos: kill -9 self at POINT[:N][~MS] (MS ms after).")
    ] = None,
) -> None:
    """Watch Gate resources and walk each rollout through its stages."""
    from gatekeeper.controller.clock import ScaledClock, SystemClock
    from gatekeeper.controller.executor import KillAt
    from gatekeeper.controller.leader import LeaseSettings
    from gatekeeper.controller.runtime import Controller, Settings

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        index, shards = _parse_shard(shard)
        lease = LeaseSettings(
            name=lease_name if shards == 1 else f"{lease_name}-shard-{index}-of-{shards}",
            namespace=lease_namespace or namespace or "default",
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
        )
        hooks = KillAt.parse(crash_at) if crash_at else None
        clock = (
            ScaledClock(origin=clock_origin, rate=clock_rate, anchor=clock_anchor)
            if clock_origin is not None
            else SystemClock()
        )
        defaults = _load_config(config) if config is not None else None
        auth, warning = _auth(
            dashboard_port is not None,
            host=dashboard_host,
            token_file=token_file,
            tls_cert=tls_cert,
            tls_key=tls_key,
            client_ca=client_ca,
            insecure_no_auth=insecure_no_auth,
        )
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    api = _api_client(kubeconfig, context)
    identity = identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    api.user_agent = f"gatekeeper-controller/{__version__} ({identity})"  # audit logs name the replica
    settings = Settings(
        identity=identity,
        namespace=namespace,
        prometheus_url=prometheus,
        lease=lease,
        leader_election=leader_election,
        workers=workers,
        resync=resync,
        heartbeat=heartbeat,
        health_host=health_host,
        health_port=health_port,
        shard=index,
        shards=shards,
    )
    metrics = None
    if metrics_port is not None or dashboard_port is not None:
        from gatekeeper.web.metrics import GateMetrics

        metrics = GateMetrics()
    with contextlib.ExitStack() as servers:
        if metrics is not None and metrics_port is not None:
            url = _start(servers, metrics.asgi_app(), host=metrics_host, port=metrics_port, what="/metrics")
            log.info("serving metrics at %s/metrics", url)
        if metrics is not None and dashboard_port is not None:
            if warning:
                log.warning(warning)
            app = _dashboard(api, namespace=namespace, prometheus=prometheus, metrics=metrics, auth=auth)
            tls = auth.tls.uvicorn_options() if auth.tls is not None else None
            url = _start(
                servers, app, host=dashboard_host, port=dashboard_port, what="the dashboard", tls=tls
            )
            log.info("serving the read-only dashboard at %s/", url)
            log.info("/integrations/* authentication: %s", auth.describe())
        controller = Controller(
            api,
            settings,
            clock=clock,
            hooks=hooks,
            observer=metrics.observer() if metrics is not None else None,
            source_factory=_source_factory(defaults, override=prometheus) if defaults is not None else None,
        )
        code = asyncio.run(_serve(controller))
    raise typer.Exit(code)


async def _serve(controller: Any) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, controller.stop)
    code: int = await controller.run()
    return code


def _api_client(kubeconfig: str | None, context: str | None) -> Any:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
            return client.ApiClient()
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except (ConfigException, OSError, TypeError) as e:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        typer.echo(f"error: cannot load the kubeconfig ({where}): {e}; pass --kubeconfig PATH", err=True)
        raise typer.Exit(2) from None


def _auth(on: bool, *, host: str, insecure_no_auth: bool, **flags: Any) -> tuple[Any, str | None]:
    """The dashboard's `Auth` and the warning to log; ValueError when it may not listen as asked."""
    from gatekeeper.web.auth import Auth, check_exposure

    auth = Auth.configure(**flags)
    if not on:
        return auth, None
    warning = check_exposure(
        host=host, auth=auth, insecure_no_auth=insecure_no_auth, what="the dashboard and /integrations/*"
    )
    return auth, warning


def _start(
    stack: contextlib.ExitStack,
    app: Any,
    *,
    host: str,
    port: int,
    what: str,
    tls: dict[str, Any] | None = None,
) -> str:
    """Serve ``app`` on a background thread until ``stack`` closes; exit 2 when the address is taken."""
    from gatekeeper.web.serving import BackgroundServer

    try:
        server = stack.enter_context(
            BackgroundServer(app, host=host, port=port, name=f"gatekeeper {what}", tls=tls)
        )
    except (OSError, RuntimeError) as e:
        typer.echo(f"error: cannot serve {what} on {host}:{port}: {e}", err=True)
        raise typer.Exit(2) from None
    return server.url


def _dashboard(api: Any, *, namespace: str | None, prometheus: str | None, metrics: Any, auth: Any) -> Any:
    """The dashboard over the controller's own API client, read-only: approve/abort made with the controller's
    identity would hide who asked (and the chart's admission policy refuses them): people use ``gatekeeper
    approve|abort``. ``/integrations/*`` sit behind ``auth``. Its ``/metrics`` is the controller's; the
    Argo/Flagger endpoints' looks are not recorded there (they are not the controller's)."""
    from gatekeeper.ops.repository import KubernetesGateRepository
    from gatekeeper.web.app import create_app, default_evaluator

    return create_app(
        repository=KubernetesGateRepository(api, namespace=namespace),
        metrics=metrics,
        evaluate=default_evaluator(prometheus=prometheus),
        auth=auth,
        read_only=True,
    )


# -- --config ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Defaults:
    prometheus: Any  # PrometheusSettings; model_fields_set says which fields the file sets
    routers: tuple[str, ...]
    headers_dir: Path | None


def _load_config(path: Path) -> _Defaults:
    """Read and check the defaults file; ``ValueError`` naming the key and the fix."""
    import yaml
    from pydantic import ValidationError

    from gatekeeper.routing import RoutingError
    from gatekeeper.routing.base import parse_kind
    from gatekeeper.spec.models import SourceSettings

    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"--config {path}: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"--config {path}: expected a mapping with keys {', '.join(sorted(_CONFIG_KEYS))}")
    if unknown := sorted(set(raw) - _CONFIG_KEYS):
        raise ValueError(
            f"--config {path}: unknown key(s) {', '.join(unknown)}; known: {sorted(_CONFIG_KEYS)}"
        )
    try:
        source = SourceSettings.model_validate(raw.get("source") or {})
    except ValidationError as e:
        raise ValueError(f"--config {path}: source: {e}") from None
    extra = sorted(source.prometheus.model_fields_set - _SOURCE_DEFAULTS)
    if extra or source.traces is not None:
        what = ", ".join(
            [f"source.prometheus.{k}" for k in extra] + (["source.traces"] if source.traces else [])
        )
        raise ValueError(f"--config {path}: {what} cannot be a default; set it in each gate's source instead")
    routers = raw.get("routers") or []
    if not isinstance(routers, list):
        raise ValueError(f"--config {path}: routers must be a list of routing kinds")
    try:
        kinds = tuple(parse_kind(str(k)) for k in routers)
    except RoutingError as e:
        raise ValueError(f"--config {path}: routers: {e}") from None
    hdir = raw.get("prometheusHeadersDir")
    headers_dir = Path(hdir) if hdir else None
    if headers_dir is not None and not headers_dir.is_dir():
        raise ValueError(f"--config {path}: prometheusHeadersDir {headers_dir} is not a directory")
    log.info("defaults from %s: prometheus %s; routers allowed by RBAC: %s", path,
             source.prometheus.url if "url" in source.prometheus.model_fields_set else "(per gate)",
             ", ".join(kinds) or "none")  # fmt: skip
    return _Defaults(prometheus=source.prometheus, routers=kinds, headers_dir=headers_dir)


def _source_factory(defaults: _Defaults, *, override: str | None) -> Any:
    """A ``SourceFactory`` that fills what a gate's ``source.prometheus`` leaves unset from the defaults file;
    the gate's own values win, and ``--prometheus`` (``override``) wins over both for the URL."""
    from gatekeeper.evaluation import prometheus_source

    base = defaults.prometheus
    given = base.model_fields_set & (_SOURCE_DEFAULTS - {"headers"})

    def make(settings: Any, url: str) -> Any:
        update: dict[str, Any] = {k: getattr(base, k) for k in given if k not in settings.model_fields_set}
        if override is None and "url" in update:
            url = update["url"]
        update["headers"] = {**base.headers, **_read_headers(defaults.headers_dir), **settings.headers}
        return prometheus_source(settings.model_copy(update=update), url)

    return make


def _read_headers(directory: Path | None) -> dict[str, str]:
    """One header per file (a mounted Secret: the key is the header name); dot-files are the kubelet's."""
    if directory is None:
        return {}
    return {
        f.name: f.read_text().strip()
        for f in sorted(directory.iterdir())
        if not f.name.startswith(".") and f.is_file()
    }


def _parse_shard(text: str | None) -> tuple[int, int]:
    """``I/N`` -> (I, N); None -> (0, 1). ValueError naming the flag otherwise."""
    if text is None:
        return 0, 1
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"--shard {text!r}: write I/N, e.g. --shard 0/2 and --shard 1/2 for two shards")
    i, n = int(index), int(count)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: the shard index must be 0..N-1 and N at least 1")
    return i, n
