"""``gatekeeper controller run``: the gate controller (one replica; run two or more for failover).

    gatekeeper controller run --kubeconfig ~/.kube/config --namespace shop --prometheus http://prometheus:9090

Inside a cluster (no ``--kubeconfig`` and ``KUBERNETES_SERVICE_HOST`` set) it uses the pod's service account.
Replicas elect a leader through the Lease ``--lease-name`` in ``--lease-namespace``; only the leader acts.
Exit codes: 0 after a graceful stop (SIGTERM/SIGINT), 1 when leadership was lost (the pod restarts and
campaigns again), 2 bad input.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from typing import Annotated, Any

import typer

__all__ = ["register"]

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
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    clock_origin: Annotated[
        float | None, typer.Option(hidden=True, help="Gate time at start (unix s).")
    ] = None,
    clock_anchor: Annotated[
        float | None, typer.Option(hidden=True, help="Unix time the origin is at.")
    ] = None,
    clock_rate: Annotated[float, typer.Option(hidden=True, help="Gate seconds per real second.")] = 1.0,
    crash_at: Annotated[
        str | None, typer.Option(hidden=True, help="Chaos: kill -9 self at POINT[:N].")
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
        lease = LeaseSettings(
            name=lease_name,
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
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    api = _api_client(kubeconfig, context)
    settings = Settings(
        identity=identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}",
        namespace=namespace,
        prometheus_url=prometheus,
        lease=lease,
        leader_election=leader_election,
        workers=workers,
        resync=resync,
        heartbeat=heartbeat,
        health_host=health_host,
        health_port=health_port,
    )
    controller = Controller(api, settings, clock=clock, hooks=hooks)
    raise typer.Exit(asyncio.run(_serve(controller)))


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
