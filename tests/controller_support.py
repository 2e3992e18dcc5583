"""Helpers for the controller tests and benchmarks: Gate and HTTPRoute objects, a route recorder, the
controller in-process or as a subprocess, a regression scenario, a webhook sink.

Everything here talks to the real API server and the real Prometheus; nothing is faked.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from gatekeeper.controller.clock import ScaledClock
from gatekeeper.controller.leader import LeaseSettings
from gatekeeper.controller.looks import warm_up
from gatekeeper.controller.runtime import Controller, Settings
from gatekeeper.routing.base import OWNER_ANNOTATION
from gatekeeper.sim.remote_write import RemoteWriteClient, Series
from gatekeeper.sim.scenario import ArmProfile, Scenario, canary_scenario
from gatekeeper.spec.crd import GROUP, PLURAL, VERSION, gate_crd

ROOT = Path(__file__).resolve().parents[1]
CANARY, STABLE = "web-canary", "web-stable"
BUSY = {"requests_per_second": 500.0, "error_ratio": 0.01}
FIVE_STAGES = [
    {"weight": w, "minDuration": "1m", "minSamples": 500, "rollbackWindow": {"mode": "reversible"}}
    for w in (1, 5, 25, 50, 100)
]


def wait_for(what: str, predicate: Callable[[], Any], *, timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


# -- objects ------------------------------------------------------------------------------------------------
def install_gate_crd(api: Any) -> None:
    ext = client.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(gate_crd())
    except ApiException as e:
        if e.status != 409:
            raise
    custom = client.CustomObjectsApi(api)
    wait_for("the Gate CRD to serve", lambda: _serves(custom), timeout=20)


def _serves(custom: Any) -> bool:
    try:
        custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)
        return True
    except ApiException:
        return False


def httproute(
    api: Any, namespace: str, *, name: str = "web", owner: str = "web", canary: int = 0
) -> dict[str, Any]:
    body = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "annotations": {OWNER_ANNOTATION: owner}, "labels": {"app": "web"}},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["web.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": STABLE, "port": 80, "weight": 100 - canary},
                        {"name": CANARY, "port": 80, "weight": canary},
                    ],
                }
            ],
        },
    }
    out: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", body
    )
    return out


def read_route(api: Any, namespace: str, name: str = "web") -> dict[str, Any]:
    out: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", name
    )
    return out


def canary_weight(route: dict[str, Any]) -> int:
    refs = route["spec"]["rules"][0]["backendRefs"]
    return int(next(r["weight"] for r in refs if r["name"] == CANARY))


def gate_body(
    name: str,
    *,
    service: str,
    stages: list[dict[str, Any]] | None = None,
    route: str | None = "web",
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "args": [{"name": "service", "value": service}],
        "source": {"prometheus": {"timeout": "5s", "retries": 0, "step": "15s", "maxStaleness": "2m"}},
        "scopes": {
            "canary": {"service": "${service}", "track": "canary"},
            "baseline": {"service": "${service}", "track": "baseline"},
        },
        "interval": "15s",
        "stages": stages or FIVE_STAGES,
        "signals": [
            {
                "name": "error-rate",
                "kind": "ratio",
                "bad": 'http_requests_total{code=~"5.."}',
                "total": "http_requests_total",
                "tolerance": 0.5,
                "critical": True,
            }
        ],
        "owners": ["team-checkout"],
        "runbook": "https://runbooks.example/checkout-reconcile",
        "forwardFix": "ship the fix behind the checkout-v2 flag",
        **extra,
    }
    if route:
        spec["routing"] = {
            "kind": "gateway-api",
            "name": route,
            "canaryBackend": CANARY,
            "stableBackend": STABLE,
        }
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Gate", "metadata": {"name": name}, "spec": spec}


def create_gate(api: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return out


def read_gate(api: Any, namespace: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return out


def gate_status(api: Any, namespace: str, name: str) -> dict[str, Any]:
    return read_gate(api, namespace, name).get("status") or {}


def gate_events(api: Any, namespace: str, name: str) -> list[Any]:
    items = client.CoreV1Api(api).list_namespaced_event(namespace).items
    return [e for e in items if e.involved_object.name == name and e.involved_object.kind == "Gate"]


# -- the route's history, from the API server ------------------------------------------------------------
@dataclass
class RouteRecorder:
    """Watches one HTTPRoute and records every canary weight the API server stored, with its resourceVersion."""

    api: Any
    namespace: str
    name: str = "web"
    weights: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._watch = watch.Watch()
        self._stopped = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        args = ("gateway.networking.k8s.io", "v1", self.namespace, "httproutes")
        start = custom.list_namespaced_custom_object(*args, field_selector=f"metadata.name={self.name}")
        rv = start["metadata"]["resourceVersion"]
        self._ready.set()
        try:
            for ev in self._watch.stream(
                custom.list_namespaced_custom_object, *args, field_selector=f"metadata.name={self.name}",
                resource_version=rv, timeout_seconds=600,
            ):  # fmt: skip
                obj = ev["object"]
                if ev["type"] == "MODIFIED":
                    self.weights.append((obj["metadata"]["resourceVersion"], canary_weight(obj)))
        except Exception:  # stop() closes the stream under the reader
            if not self._stopped:
                raise

    def values(self) -> list[int]:
        return [w for _, w in self.weights]

    def stop(self) -> None:
        self._stopped = True
        self._watch.stop()


# -- data -------------------------------------------------------------------------------------------------
def load(remote_write_url: str, series: tuple[Series, ...] | list[Series]) -> None:
    RemoteWriteClient(remote_write_url).write(series)


def regression_scenario(
    *, service: str, end_ms: int, switch_ms: int, bad: ArmProfile, seed: int = 7, duration: float = 1800
) -> Scenario:
    """Both arms healthy until ``switch_ms``; then the canary turns ``bad`` (counters continue, no reset)."""
    good = ArmProfile(**BUSY)
    before = canary_scenario(
        service=service, end_ms=switch_ms, duration_seconds=duration - (end_ms - switch_ms) / 1000,
        canary=good, baseline=good, seed=seed,
    )  # fmt: skip
    after = canary_scenario(
        service=service, end_ms=end_ms, duration_seconds=(end_ms - switch_ms) / 1000,
        canary=bad, baseline=good, seed=seed + 1,
    )  # fmt: skip
    last = {tuple(sorted(s.labels.items())): s.samples[-1][1] for s in before.series}
    series = list(before.series)
    for s in after.series:
        offset = last.get(tuple(sorted(s.labels.items())), 0.0)
        series.append(Series(labels=s.labels, samples=[(t, v + offset) for t, v in s.samples]))
    return Scenario(
        service=service, start_ms=before.start_ms, end_ms=end_ms, step_ms=before.step_ms, series=tuple(series)
    )


# -- the controller ---------------------------------------------------------------------------------------
FAST_LEASE = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}


@contextmanager
def controller_in_process(
    api: Any,
    *,
    namespace: str,
    origin: float,
    rate: float = 60.0,
    identity: str = "in-process",
    **settings: Any,
) -> Iterator[Controller]:
    """A Controller on its own event loop thread, with a scaled gate clock; stopped gracefully on exit."""
    warm_up()  # imports take seconds; gate time must not run while they load
    lease = LeaseSettings(name=f"gk-{identity}", namespace=namespace, **FAST_LEASE)
    s = Settings(
        identity=identity, namespace=namespace, lease=lease, health_port=0, exit_on_lost=False, **settings
    )
    ctl = Controller(api, s, clock=ScaledClock(origin=origin, rate=rate))
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(ctl.run())), daemon=True)
    thread.start()
    try:
        yield ctl
    finally:
        ctl.stop()
        thread.join(30)
        assert not thread.is_alive(), "the controller did not stop within 30 s"


class ControllerProcess:
    """A controller in its own OS process: a real ``gatekeeper controller run`` subprocess (``cli=True``), or
    a child forked from a preloaded fork server running the same CLI entry point (starts in ~0.1 s instead
    of seconds of imports, which matters when a test restarts the controller many times). Either way it is a
    separate process that ``kill -9``, SIGSTOP and SIGTERM act on."""

    def __init__(self, args: list[str], *, log: Path, cli: bool) -> None:
        self.log = log
        if cli:
            with log.open("ab") as out:
                self._popen: subprocess.Popen[bytes] | None = subprocess.Popen(
                    [sys.executable, "-m", "gatekeeper.cli.main", *args], cwd=ROOT, stdout=out,
                    stderr=subprocess.STDOUT, env={**os.environ},
                )  # fmt: skip
            self._proc = None
            self.pid = self._popen.pid
        else:
            self._popen = None
            self._proc = _fork_context().Process(target=_child, args=(args, str(log)), daemon=True)
            self._proc.start()
            self.pid = int(self._proc.pid or 0)

    def wait(self, timeout: float) -> int:
        if self._popen is not None:
            return self._popen.wait(timeout)
        assert self._proc is not None
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise TimeoutError(f"controller {self.pid} still running after {timeout:g}s (log {self.log})")
        return self._proc.exitcode

    def poll(self) -> int | None:
        if self._popen is not None:
            return self._popen.poll()
        assert self._proc is not None
        return self._proc.exitcode

    def signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except (TimeoutError, subprocess.TimeoutExpired):
            self.signal(signal.SIGKILL)
            return self.wait(10)


def _child(args: list[str], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from gatekeeper.cli.main import app

    app(args=args, prog_name="gatekeeper")


_FORK: Any = None


def _fork_context() -> Any:
    global _FORK
    if _FORK is None:
        import multiprocessing

        from gatekeeper.signals.registry import KIND_MODULES

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(
            ["tests.controller_support", "gatekeeper.cli.main", *sorted(set(KIND_MODULES.values()))]
        )
        _FORK = ctx
    return _FORK


def spawn_controller(
    kubeconfig: Path,
    *,
    namespace: str,
    prometheus: str,
    identity: str,
    origin: float,
    anchor: float,
    rate: float,
    log: Path,
    crash_at: str | None = None,
    lease: dict[str, float] = FAST_LEASE,
    lease_name: str = "gatekeeper-controller",
    cli: bool = False,
) -> ControllerProcess:
    args = [
        "controller", "run", "--kubeconfig", str(kubeconfig),
        "--namespace", namespace, "--prometheus", prometheus, "--identity", identity,
        "--lease-name", lease_name, "--lease-duration", str(lease["lease_duration"]),
        "--renew-deadline", str(lease["renew_deadline"]), "--retry-period", str(lease["retry_period"]),
        "--health-port", "0", "--health-host", "127.0.0.1", "--clock-origin", f"{origin:.3f}",
        "--clock-anchor", f"{anchor:.3f}", "--clock-rate", str(rate), "--log-level", "info",
    ]  # fmt: skip
    if crash_at:
        args += ["--crash-at", crash_at]
    return ControllerProcess(args, log=log, cli=cli)


def lease_holder(api: Any, namespace: str, name: str = "gatekeeper-controller") -> str | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(name, namespace)
    except ApiException:
        return None
    return lease.spec.holder_identity or None


def status_managers(gate: dict[str, Any]) -> dict[str, str]:
    """Field managers that wrote the Gate's status subresource -> the time of their last write."""
    return {
        m["manager"]: m.get("time", "")
        for m in gate["metadata"].get("managedFields") or []
        if m.get("subresource") == "status"
    }


# -- a webhook receiver -----------------------------------------------------------------------------------
class HookServer:
    """A real HTTP server answering each path as told: a status code, or ``"hang"`` (no answer for 3 s)."""

    def __init__(self, answers: dict[str, int | str], *, delay: float = 0.0) -> None:
        """``delay``: seconds every answer waits (so a client can be killed mid-call)."""
        self.answers = dict(answers)
        self.calls: list[tuple[str, dict[str, Any], float]] = []
        self.received_at: list[float] = []  # wall-clock time of each call, for comparing with other logs
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                outer.received_at.append(time.time())
                outer.calls.append((self.path, body, time.monotonic()))
                time.sleep(delay)
                answer = outer.answers.get(self.path, 200)
                if answer == "hang":
                    time.sleep(3)
                    return
                try:
                    self.send_response(int(answer))
                    self.end_headers()
                    self.wfile.write(b"gate closed" if int(answer) == 403 else b"")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller was killed mid-call (the crash soak does this on purpose)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.calls]

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [b for p, b, _ in self.calls if p == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class WebhookSink(HookServer):
    """A real HTTP server on 127.0.0.1 collecting JSON bodies POSTed to it (always answering 200)."""

    def __init__(self) -> None:
        super().__init__({})

    @property
    def received(self) -> list[tuple[str, dict[str, Any]]]:
        return [(p, b) for p, b, _ in self.calls]
