"""The controller process: many gates concurrently on one replica, each on its interval, behind a Lease.

asyncio schedules; blocking work (Prometheus queries, API calls) runs in a bounded thread pool. Each gate has
one task, so a gate's looks never overlap; its first look is offset by a stable hash of its UID to spread load.
While not leading, the replica only campaigns. On losing the Lease every writer stops at once (the fence fails
every write in flight, the gate tasks are cancelled) and the replica exits (``exit_on_lost``) or campaigns again.
A graceful stop lets looks in flight finish (bounded), then releases the Lease so a standby takes over at once.

Sharding (``Settings.shards`` > 1): each shard owns the Gates whose UID hashes to its index (stable for the
object's life) and elects its own leader on its own Lease, so N shards spread the looks over N processes
while no Gate ever has two writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from gatekeeper.controller.clock import Clock, SystemClock
from gatekeeper.controller.decision_store import DecisionStore, Recorder
from gatekeeper.controller.executor import CrashPoints, Executor, NoCrash
from gatekeeper.controller.health import HealthServer
from gatekeeper.controller.kube import (
    FINALIZER,
    BadStatus,
    GateClient,
    GateRef,
    Watcher,
    deleting,
    has_requests,
    parse_gate,
    read_requests,
    status_of,
)
from gatekeeper.controller.leader import Leader, LeaseSettings, NotLeader
from gatekeeper.controller.looks import Looker, warm_up
from gatekeeper.controller.machine import TERMINAL
from gatekeeper.controller.notify import Notifier, WebhookNotifier
from gatekeeper.evaluation import SourceFactory
from gatekeeper.judge import Judgement
from gatekeeper.routing import RouteFailure, Router, RouteTarget, RoutingError, make_router
from gatekeeper.routing.nop import NopRouter
from gatekeeper.sources.base import TraceSource
from gatekeeper.spec import GateSpec, SpecError
from gatekeeper.spec.status import GateStatus, Phase

__all__ = ["Controller", "Observer", "Settings", "shard_of"]

log = logging.getLogger("gatekeeper.controller")
_NOT_JUDGED = TERMINAL | {Phase.HALTED, Phase.PENDING}


@dataclass(frozen=True)
class Settings:
    identity: str
    namespace: str | None = None  # None: every namespace
    prometheus_url: str | None = None  # overrides each gate's source URL
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    leader_election: bool = True
    workers: int = 8
    resync: float = 300.0
    heartbeat: float = 60.0  # gate seconds between status writes of an unchanged hold
    health_host: str = "127.0.0.1"
    health_port: int | None = 8081  # None: no probe server
    exit_on_lost: bool = True
    grace: float = 10.0
    shard: int = 0  # this replica's shard, 0 <= shard < shards
    shards: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.shard < self.shards:
            raise ValueError(
                f"shard {self.shard} of {self.shards}: use 0 <= shard < shards, e.g. --shard 0/2"
            )

    def owns(self, obj: dict[str, Any]) -> bool:
        """True when the Gate belongs to this shard (always, unsharded)."""
        if self.shards <= 1:
            return True
        return shard_of(obj, self.shards) == self.shard


def shard_of(obj: dict[str, Any], shards: int) -> int:
    """The shard of a Gate: a stable hash of its UID (of namespace/name before it has one)."""
    meta = obj.get("metadata") or {}
    key = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % shards


class Observer(Protocol):
    """Told about every look and every transition (the process wires ``/metrics`` here; the controller may
    not import the web room). Called from worker threads; must be thread-safe, quick and never raise."""

    def looked(self, gate: GateSpec, judgement: Judgement, seconds: float) -> None:
        """A look was judged in ``seconds`` (queries and statistics)."""
        ...

    def acted(self, gate: GateSpec, action: str, *, by_operator: bool) -> None:
        """A transition was written: ``action`` is the history action (advance, revert, halt, promote,
        hold, abort, ...); ``by_operator`` when an operator's command caused it."""
        ...

    def settled(self, gate: GateSpec, status: GateStatus) -> None:
        """After each reconcile: the status as stored (phase, stage, weight actually in place)."""
        ...


@dataclass
class _Slot:
    obj: dict[str, Any]
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    gate: GateSpec | None = None
    gate_key: tuple[Any, ...] = ()
    router: Router | None = None
    router_key: tuple[Any, ...] = ()
    reported: str = ""  # the last problem reported as an Event (once per distinct problem)
    last: Judgement | None = None  # the latest look's judgement (recorded with an operator's abort)


class Controller:
    def __init__(
        self,
        api_client: Any,
        settings: Settings,
        *,
        clock: Clock | None = None,
        hooks: CrashPoints | None = None,
        notifier: Notifier | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        traces: TraceSource | None = None,
        source_factory: SourceFactory | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.api, self.settings = api_client, settings
        self.observer = observer
        _size_pool(api_client, settings.workers + 8)
        self.clock = clock or SystemClock()
        self._mono = monotonic
        self.leader = Leader(
            api_client, identity=settings.identity, settings=settings.lease, monotonic=monotonic
        )
        fence = self.leader.fence if settings.leader_election else (lambda: None)
        self._confirm = self.leader.confirm if settings.leader_election else (lambda: None)
        # the API server's fence policy (charts/gatekeeper) refuses a write whose writer the Lease does not name
        self.writer = f"{settings.lease.name}/{settings.identity}" if settings.leader_election else ""
        self.gates = GateClient(
            api_client, field_manager=f"gatekeeper@{settings.identity}", fence=fence, writer=self.writer
        )
        self.looker = Looker(
            prometheus_url=settings.prometheus_url, traces=traces, source_factory=source_factory
        )
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="gate")
        self._notify_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="notify")
        self.executor = Executor(
            gates=self.gates,
            router_for=self._router_for,
            notifier=notifier or WebhookNotifier(),
            submit=self._notify_pool.submit,
            clock=self.clock.now,
            hooks=hooks or NoCrash(),
            heartbeat=settings.heartbeat,
            recorder=Recorder(
                DecisionStore(
                    api_client,
                    field_manager=f"gatekeeper@{settings.identity}",
                    fence=fence,
                    writer=self.writer,
                )
            ),
        )
        self._slots: dict[GateRef, _Slot] = {}
        self._watcher: Watcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._stop_requested = False
        self._inflight: set[asyncio.Future[Any]] = set()
        self.latencies: deque[float] = deque(maxlen=200_000)  # real seconds from a look's due time to its end
        self.looks = 0
        self.errors = 0
        self.health: HealthServer | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask for a graceful stop (thread-safe; before ``run`` starts too)."""
        self._stop_requested = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def run(self) -> int:
        """Campaign, lead, stop. Returns 0 after a graceful stop, 1 when leadership was lost (``exit_on_lost``)."""
        self._loop = asyncio.get_running_loop()
        if self._stop_requested:
            self._stop.set()
        s = self.settings
        if s.health_port is not None:
            health = HealthServer(
                host=s.health_host, port=s.health_port, healthy=self._healthy, ready=self._ready
            )
            await health.start()
            self.health = health  # published only once it listens: callers may connect at once
        await asyncio.to_thread(warm_up)
        try:
            while not self._stop.is_set():
                if s.leader_election and not await self.leader.acquire(self._stop):
                    break
                lost = asyncio.Event()
                keeper = (
                    asyncio.create_task(self.leader.keep(self._stop, lost.set)) if s.leader_election else None
                )
                await self._lead(lost)
                if keeper is not None:
                    keeper.cancel()
                if lost.is_set() and s.exit_on_lost:
                    return 1
            return 0
        finally:
            if s.leader_election:
                await asyncio.to_thread(self.leader.release)
            if self.health is not None:
                await self.health.stop()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._notify_pool.shutdown(wait=True)

    async def _lead(self, lost: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._watcher = Watcher(
            self.api,
            namespace=self.settings.namespace,
            resync=self.settings.resync,
            on_sync=lambda objs: loop.call_soon_threadsafe(self._sync, objs),
            on_event=lambda kind, obj: loop.call_soon_threadsafe(self._event, kind, obj),
        )
        self._watcher.start()
        stop_wait = asyncio.create_task(self._stop.wait())
        lost_wait = asyncio.create_task(lost.wait())
        await asyncio.wait({stop_wait, lost_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        lost_wait.cancel()
        self._watcher.stop()
        for slot in self._slots.values():  # every writer at once; the fence already fails writes in flight
            if slot.task is not None:
                slot.task.cancel()
        if self._inflight and not lost.is_set():
            await asyncio.wait(set(self._inflight), timeout=self.settings.grace)
        self._slots.clear()

    # -- the gate set ---------------------------------------------------------------------------------------
    def _sync(self, objs: list[dict[str, Any]]) -> None:
        objs = [o for o in objs if self.settings.owns(o)]
        seen = {GateRef.of(o): o for o in objs}
        for ref in set(self._slots) - set(seen):
            self._drop(ref)
        for o in objs:
            self._event("ADDED", o)

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        ref = GateRef.of(obj)
        if kind == "DELETED" or not self.settings.owns(obj):
            self._drop(ref)
            return
        slot = self._slots.get(ref)
        if slot is None:
            slot = self._slots[ref] = _Slot(obj=obj)
            slot.task = asyncio.get_running_loop().create_task(self._gate_loop(ref, slot), name=f"gate {ref}")
            return
        if not _older(obj, slot.obj):
            slot.obj = obj
        if has_requests(obj) or deleting(obj):
            slot.wake.set()  # an operator command or a deletion: act now, not at the next interval

    def _drop(self, ref: GateRef) -> None:
        slot = self._slots.pop(ref, None)
        if slot is not None and slot.task is not None:
            slot.task.cancel()

    async def _gate_loop(self, ref: GateRef, slot: _Slot) -> None:
        """Look every interval on a fixed cadence. A look's latency runs from when it was due (so queueing for a
        worker and event-loop lag count); a late gate starts at once, carrying at most one interval of debt."""
        loop = asyncio.get_running_loop()
        rate = float(getattr(self.clock, "rate", 1.0))
        uid = str(slot.obj["metadata"].get("uid") or ref)
        spread = int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        due = self._mono() + spread * self._interval(slot) / rate
        while True:
            delay = due - self._mono()
            if delay > 0 and await self._sleep_or_wake(slot, delay * rate):
                due = self._mono()  # woken by an operator request
            slot.wake.clear()
            fut = loop.run_in_executor(self._pool, self._reconcile, ref, slot)
            # in flight until the thread is done, not until this task is cancelled: a graceful stop waits for
            # the reconcile itself before it releases the Lease (shielded: cancelling the task leaves it be)
            self._inflight.add(fut)
            fut.add_done_callback(self._inflight.discard)
            await asyncio.shield(fut)
            end = self._mono()
            self.latencies.append(end - due)
            period = self._interval(slot) / rate
            due = max(due + period, end - period)

    async def _sleep_or_wake(self, slot: _Slot, seconds: float) -> bool:
        """Sleep ``seconds`` of gate time; True when the gate's wake event cut the sleep short."""
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(slot.wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            return waker.done() and not sleeper.done()
        finally:
            sleeper.cancel()
            waker.cancel()

    def _interval(self, slot: _Slot) -> float:
        return slot.gate.interval if slot.gate is not None else 30.0

    # -- one reconcile (a pool thread) ----------------------------------------------------------------------
    def _reconcile(self, ref: GateRef, slot: _Slot) -> None:
        obj = slot.obj
        try:
            gate = self._gate_of(slot)
            state = status_of(obj)
        except (SpecError, BadStatus) as e:
            if deleting(obj) and _finalized(obj):  # unreadable: let it go rather than block the deletion
                with contextlib.suppress(Exception):
                    self._report(
                        slot, "DeletedWithoutRevert", f"the Gate cannot be read ({e}); route left as is"
                    )
                    self.gates.set_finalizer(obj, False)
                return
            self._report(slot, "InvalidGate", f"not acted on: {e}")
            return
        try:
            if deleting(obj):
                self._deletion(ref, slot, obj, gate)
                return
            want = gate.revert_on_deletion and gate.routing is not None and state.phase not in TERMINAL
            if _finalized(obj) != want:
                obj = slot.obj = self.gates.set_finalizer(obj, want)
            obj = self._requests(obj, gate, slot)
            guarded = self.executor.guard(obj, gate)  # another writer on the route: restore, or hold
            if guarded is not None:
                self._observe_actions(gate, status_of(obj), guarded.status, by_operator=False)
                obj = slot.obj = guarded.obj
            state = status_of(obj)
            judgement = None
            if state.phase not in _NOT_JUDGED and (state.intent is None or state.intent.done):
                self.executor.hooks.reached("during-query")
                t0 = time.perf_counter()
                judgement = slot.last = self.looker.judge(gate, state, now=self.clock.now())
                self._observe(lambda o: o.looked(gate, judgement, time.perf_counter() - t0))
            out = self.executor.act(obj, gate, judgement)
            self._observe_actions(gate, state, out.status, by_operator=False)
            self._observe(lambda o: o.settled(gate, out.status))
            self.looks += 1
            if not _older(out.obj, slot.obj):
                slot.obj = out.obj
        except NotLeader as e:
            log.info("Gate %s: not written: %s", ref, e)
        except Exception as e:  # one gate's trouble never stops the others
            self.errors += 1
            log.warning("Gate %s: reconcile failed: %s", ref, e, exc_info=not isinstance(e, RuntimeError))
            with contextlib.suppress(Exception):
                fresh = self.gates.get(ref)
                if fresh is not None:
                    slot.obj = fresh

    def _deletion(self, ref: GateRef, slot: _Slot, obj: dict[str, Any], gate: GateSpec) -> None:
        """A Gate deleted while it holds the finalizer: revert its route if the rollout is still reversible,
        then let the deletion finish. A route that cannot be written now keeps the finalizer (retried every
        interval, reported); a route that no longer exists has nothing to revert."""
        if not _finalized(obj):
            return
        s = status_of(obj)
        where = f"phase {s.phase.value}, stage {s.stage + 1}, canary {s.weight:g}%"
        now = self.clock.now()
        if s.phase in TERMINAL or s.phase == Phase.HALTED or s.window_closed:
            why = "the rollout is finished" if s.phase in TERMINAL else "its rollback window is closed"
            self.gates.event(obj, kind="Warning" if s.phase == Phase.HALTED else "Normal",
                             reason="DeletedWithoutRevert", message=f"deleted at {where}; route left as is: {why}",
                             now=now)  # fmt: skip
        else:
            try:
                weight = self.executor.revert_route(ref, gate)
            except RoutingError as e:
                self.gates.event(obj, kind="Warning", reason="DeletedWithoutRevert",
                                 message=f"deleted at {where}; nothing to revert: {e}", now=now)  # fmt: skip
            except RouteFailure as e:
                self._report(slot, "RevertOnDeletionFailed", f"deleted at {where}; the route could not be "
                             f"reverted, retrying (remove finalizer {FINALIZER} to delete without it): {e}")  # fmt: skip
                return
            else:
                self.gates.event(obj, kind="Normal", reason="RevertedOnDeletion",
                                 message=f"deleted at {where}; route reverted, canary now {weight:g}%", now=now)  # fmt: skip
        self.gates.set_finalizer(obj, False)

    def _requests(self, obj: dict[str, Any], gate: GateSpec, slot: _Slot) -> dict[str, Any]:
        """Apply pending operator requests (status first), then remove each annotation applied."""
        reqs, bad = read_requests(obj)
        for b in bad:
            self._report(slot, "InvalidRequest", str(b))
            obj = self.gates.clear_request(obj, b.key, b.value)
        for req, key, value in reqs:
            before = status_of(obj)
            out = self.executor.request(obj, gate, req, last=slot.last)
            self._observe_actions(gate, before, out.status, by_operator=True)
            obj = self.gates.clear_request(out.obj, key, value)
        return obj

    def _observe(self, call: Callable[[Observer], None]) -> None:
        if self.observer is None:
            return
        try:
            call(self.observer)
        except Exception:  # metrics never stop a decision
            log.exception("observer failed")

    def _observe_actions(self, gate: GateSpec, before: Any, after: Any, *, by_operator: bool) -> None:
        """Report the transitions a write added to the history (holds excluded: they are looks)."""
        if self.observer is None:
            return
        seen = {(h.time, h.action) for h in before.history}
        for h in after.history:
            if h.action and h.action != "hold" and (h.time, h.action) not in seen:
                self._observe(lambda o, a=h.action: o.acted(gate, a, by_operator=by_operator))

    def _gate_of(self, slot: _Slot) -> GateSpec:
        meta = slot.obj["metadata"]
        key = (
            meta.get("uid"),
            meta.get("generation"),
            meta.get("resourceVersion") if meta.get("generation") is None else None,
        )
        if slot.gate is None or slot.gate_key != key:
            slot.gate, slot.gate_key = parse_gate(slot.obj), key
        return slot.gate

    def _router_for(self, ref: GateRef, gate: GateSpec) -> Router:
        slot = self._slots.get(ref)
        r = gate.routing
        key = (
            (r.kind, r.namespace, r.name, r.canary_backend, r.stable_backend) if r is not None else ("none",)
        )
        if slot is not None and slot.router is not None and slot.router_key == key:
            return slot.router
        if r is None:  # a gate without routing: decisions are recorded, no traffic moves
            target = RouteTarget("nop", ref.namespace, gate.name, "canary", "stable", gate.name)
            router: Router = NopRouter(target, fence=self._confirm)
        else:
            target = RouteTarget(
                r.kind, r.namespace or ref.namespace, r.name, r.canary_backend, r.stable_backend, gate.name
            )
            router = make_router(target, self.api, fence=self._route_fence, writer=self.writer)
        if slot is not None:
            slot.router, slot.router_key = router, key
        return router

    def _route_fence(self) -> None:
        """Before every routing write: the Lease check (one GET), then the chaos point right before the PATCH."""
        self._confirm()
        self.executor.hooks.reached("during-route-write")

    def _report(self, slot: _Slot, reason: str, message: str) -> None:
        if slot.reported == message:
            return
        slot.reported = message
        log.warning("Gate %s: %s", GateRef.of(slot.obj), message)
        with contextlib.suppress(NotLeader):
            self.gates.event(slot.obj, kind="Warning", reason=reason, message=message, now=self.clock.now())

    # -- probes ---------------------------------------------------------------------------------------------
    def _healthy(self) -> tuple[bool, dict[str, Any]]:
        leading = self.leader.leading or not self.settings.leader_election
        watching = self._watcher is not None and self._watcher.alive()
        return (not leading or watching), {"identity": self.settings.identity, "leading": leading}

    def _ready(self) -> tuple[bool, dict[str, Any]]:
        leading = self.leader.leading or not self.settings.leader_election
        synced = self._watcher is not None and self._watcher.synced.is_set()
        return (not leading or synced), {"leading": leading, "gates": len(self._slots), "synced": synced}


def _size_pool(api_client: Any, size: int) -> None:
    """Give the API client a connection pool as large as the writers using it: urllib3 discards connections
    beyond its pool size (default 10), so each extra worker would pay a new TLS handshake per request."""
    cfg = getattr(api_client, "configuration", None)
    if cfg is None or (cfg.connection_pool_maxsize or 0) >= size:
        return
    from kubernetes.client.rest import RESTClientObject

    cfg.connection_pool_maxsize = size
    api_client.rest_client = RESTClientObject(cfg)


def _finalized(obj: dict[str, Any]) -> bool:
    return FINALIZER in ((obj.get("metadata") or {}).get("finalizers") or [])


def _older(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when ``a`` is provably an older version than ``b`` (etcd's numeric resourceVersions)."""
    ra, rb = a["metadata"].get("resourceVersion", ""), b["metadata"].get("resourceVersion", "")
    return ra.isdigit() and rb.isdigit() and int(ra) < int(rb)
