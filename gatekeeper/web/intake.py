"""The standalone trace intake (`gatekeeper intake`): OTLP/HTTP in, per-rule per-version counters out on
`/metrics`, for Prometheus to sum over replicas and the controller to read.

    store = TraceStore(clock=time.time, confirm_violations=bool(peers))
    app = create_intake_app(store, auth=auth, peers=peers)
    RuleWatcher(store).attach(api_client, namespace=None)        # rules from every Gate's invariant signals

Routes: `POST /v1/traces` (auth), `POST /v1/peer/holds` (auth; the peers' question "do you hold spans of
these traces?"), `GET /metrics` (`IntakeCollector`), `/healthz`, `/readyz` (ready once the Gates are listed).

Several replicas sit behind the OpenTelemetry Collector's load-balancing exporter (`routing_key: traceID`),
so every span of a trace normally reaches one replica. When the replica set changes, traces in flight split.
A replica that judges a trace as violating first asks its peers (`Peers`) whether they hold spans of it; if one
does, or a peer cannot answer, the trace counts as incomplete instead (the invariant signal treats lost
evidence as a gap, never as a violation).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gatekeeper.sources.traces import IntakeCollector, TraceStore
from gatekeeper.web.auth import Auth

__all__ = ["Peers", "RuleWatcher", "Settler", "create_intake_app"]

log = logging.getLogger("gatekeeper.intake")
_MAX_IDS = 10_000  # trace ids per peer question


def create_intake_app(
    store: TraceStore,
    *,
    auth: Auth,
    ready: Callable[[], bool] = lambda: True,
    registry: CollectorRegistry | None = None,
    **intake_options: Any,
) -> Starlette:
    from gatekeeper.web.app import _AsgiEndpoint
    from gatekeeper.web.otlp import otlp_routes

    registry = registry or CollectorRegistry()
    registry.register(IntakeCollector(store))

    async def holds(request: Request) -> Response:
        if (denied := auth.deny(request)) is not None:
            return denied
        try:
            body = await request.json()
            ids = [bytes.fromhex(t) for t in body["traceIds"]][:_MAX_IDS]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'body: {"traceIds": ["<32 hex digits>", ...]}'}, status_code=400)
        held = await run_in_threadpool(store.holds, ids)
        return JSONResponse({"held": [t.hex() for t in held]})

    def readyz(request: Request) -> Response:
        ok = ready()
        return PlainTextResponse("ok\n" if ok else "gates not listed yet\n", status_code=200 if ok else 503)

    routes = [
        *otlp_routes(store, auth=auth, **intake_options),
        Route("/v1/peer/holds", holds, methods=["POST"]),
        Route("/metrics", _AsgiEndpoint(make_asgi_app(registry)), methods=["GET"]),
        Route("/healthz", lambda request: PlainTextResponse("ok\n")),
        Route("/readyz", readyz),
    ]
    return Starlette(routes=routes)


class Peers:
    """The other intake replicas: fixed URLs, or every address a DNS name resolves to (a headless Service)
    except this pod's own. `__call__(ids)` is the `held_elsewhere` of `TraceStore.settle`."""

    def __init__(
        self,
        *,
        urls: tuple[str, ...] = (),
        dns: str | None = None,
        self_ip: str | None = None,
        token: Callable[[], str | None] = lambda: None,
        scheme: str = "http",
        timeout: float = 2.0,
        verify: Any = True,
    ) -> None:
        if dns is not None and ":" not in dns:
            raise ValueError(f"--peers-dns {dns!r}: write HOST:PORT, e.g. gatekeeper-intake-peers:4318")
        self.urls, self.dns, self.self_ip, self.token = urls, dns, self_ip, token
        self.scheme = scheme
        self._client = httpx.Client(timeout=timeout, verify=verify)

    def __bool__(self) -> bool:
        return bool(self.urls or self.dns)

    def targets(self) -> list[str]:
        if self.dns is None:
            return list(self.urls)
        host, _, port = self.dns.rpartition(":")
        addresses = sorted({ai[4][0] for ai in socket.getaddrinfo(host, int(port), proto=socket.IPPROTO_TCP)})
        return [
            f"{self.scheme}://{a if ':' not in a else f'[{a}]'}:{port}"
            for a in addresses
            if a != self.self_ip
        ]

    def __call__(self, trace_ids: list[bytes]) -> set[bytes]:
        """Trace ids some peer holds spans of; raises when a peer cannot answer (nothing can be confirmed)."""
        headers = {"Authorization": f"Bearer {t}"} if (t := self.token()) else {}
        held: set[bytes] = set()
        for base in self.targets():
            for i in range(0, len(trace_ids), _MAX_IDS):
                chunk = [t.hex() for t in trace_ids[i : i + _MAX_IDS]]
                r = self._client.post(f"{base}/v1/peer/holds", json={"traceIds": chunk}, headers=headers)
                r.raise_for_status()
                held.update(bytes.fromhex(t) for t in r.json()["held"])
        return held

    def close(self) -> None:
        self._client.close()


class Settler:
    """A thread that judges completed traces every `interval` seconds and settles held violations with the
    peers (so counts advance on an idle intake too)."""

    def __init__(self, store: TraceStore, *, peers: Peers | None, interval: float = 1.0) -> None:
        self.store, self.peers, self.interval = store, peers, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="intake-settle", daemon=True)

    def __enter__(self) -> Settler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.store.sweep()
                if self.peers:
                    _, i = self.store.settle(self.peers)
                    if i:
                        log.info("%d violating trace(s) had spans on a peer intake: counted incomplete", i)
            except Exception:  # never let the loop die
                log.exception("intake settle failed")


class RuleWatcher:
    """Every invariant signal of every Gate becomes a rule the store judges, from the first listing on (so
    spans that arrive before a gate's first look are judged too). Rules stay watched for the process's life:
    their counters must not go backwards."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store
        self.synced = threading.Event()
        self._watcher: Any = None
        self._problems: dict[str, str] = {}

    def attach(self, api_client: Any, *, namespace: str | None, resync: float = 300.0) -> RuleWatcher:
        from gatekeeper.controller.kube import Watcher

        self._watcher = Watcher(
            api_client, namespace=namespace, resync=resync, on_sync=self.sync, on_event=self.event
        )
        self._watcher.start()
        return self

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    def sync(self, objs: list[dict[str, Any]]) -> None:
        for obj in objs:
            self.event("ADDED", obj)
        self.synced.set()

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            return
        from gatekeeper.controller.kube import GateRef, parse_gate

        ref = str(GateRef.of(obj))
        try:
            gate = parse_gate(obj)
        except Exception as e:  # one bad Gate never stops the intake
            if self._problems.get(ref) != str(e):
                self._problems[ref] = str(e)
                log.warning("Gate %s: its rules are not judged: %s", ref, e)
            return
        self.watch_gate(gate, where=ref)

    def watch_gate(self, gate: Any, *, where: str) -> int:
        n = 0
        for signal in gate.signals:
            if getattr(signal, "kind", None) == "invariant":
                self.store.watch(signal)
                n += 1
        traces = gate.source.traces
        if n and traces is not None and traces.version_attribute != self.store.version_attribute:
            log.warning(
                "Gate %s tells versions apart by %s, this intake by %s: its counts will be empty",
                where, traces.version_attribute, self.store.version_attribute,
            )  # fmt: skip
        return n


def wait_ready(url: str, *, timeout: float = 30.0) -> None:
    """Poll `url`/healthz until it answers (tests and the demo start intakes as processes)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1, verify=False).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no intake answered at {urlsplit(url).netloc} within {timeout:g}s")
        time.sleep(0.1)
