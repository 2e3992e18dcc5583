"""The executor: the one place that performs the machine's actions.

Order of writes for a routing change (each write fenced by the Lease):

1. the status with the change recorded as a pending ``intent`` (and the decision that caused it);
2. the routing write through the gate's router (idempotent: no write when the split already is the target);
3. the status with the intent done and the weight read back from the route (``machine.applied``).

A crash between 1 and 2 or between 2 and 3 leaves a pending intent; the next look (by this replica or the next
leader) performs it again before deciding anything, and step 2 finds the split already in place, so a change
is neither lost nor doubled. Events and notifications follow the status write that records them: a crash in
between loses an announcement, never repeats it.

A revert only lowers exposure: if the split saved before the first write had more canary traffic than now
(or nothing was saved), the canary is set to 0 instead.

``CrashPoints`` marks each edge above (and the query) so a test can kill the process exactly there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gatekeeper.controller.kube import GateClient, GateRef, StaleObject, spec_hash, status_of
from gatekeeper.controller.leader import NotLeader
from gatekeeper.controller.machine import (
    Action,
    Announce,
    Policy,
    Request,
    Route,
    applied,
    request,
    route_failed,
    transition,
)
from gatekeeper.controller.notify import Message, Notifier, wants
from gatekeeper.judge import Judgement
from gatekeeper.routing import RouteFailure, Router, RoutingError
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.status import GateStatus

__all__ = ["POINTS", "CrashPoints", "Executor", "KillAt", "NoCrash", "Outcome"]

log = logging.getLogger("gatekeeper.controller")

POINTS = (
    "during-query",
    "before-intent-write",
    "after-intent-write",
    "after-route-write",
    "after-result-write",
    "before-status-write",  # a status write without a routing change (a hold, a request)
    "after-status-write",
)


class CrashPoints(Protocol):
    def reached(self, point: str) -> None:
        """Called at each edge of ``POINTS``; production does nothing, a chaos test kills the process."""
        ...


class NoCrash:
    def reached(self, point: str) -> None:
        return None


class KillAt:
    """A chaos tool: SIGKILL this process the ``count``-th time ``point`` is reached (``kill -9``, no cleanup)."""

    def __init__(self, point: str, count: int = 1) -> None:
        if point not in POINTS:
            raise ValueError(f"crash point {point!r} is unknown; use one of: {', '.join(POINTS)}")
        self.point, self.count, self.seen = point, count, 0

    @classmethod
    def parse(cls, text: str) -> KillAt:
        """``POINT`` or ``POINT:N``."""
        point, _, n = text.partition(":")
        return cls(point, int(n) if n else 1)

    def reached(self, point: str) -> None:
        if point != self.point:
            return
        self.seen += 1
        if self.seen >= self.count:
            import os
            import signal

            log.warning("chaos: killing this process at %s (#%d)", point, self.seen)
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did: the status now stored, and what was written or said."""

    obj: dict[str, Any]
    status: GateStatus
    status_writes: int
    routing: tuple[str, ...]  # e.g. ("set 5",)
    announced: tuple[str, ...]


class Executor:
    def __init__(
        self,
        *,
        gates: GateClient,
        router_for: Callable[[GateRef, GateSpec], Router],
        notifier: Notifier,
        submit: Callable[[Callable[[], Any]], Any],
        clock: Callable[[], float],
        hooks: CrashPoints = NoCrash(),
        heartbeat: float = 60.0,
        attempts: int = 3,
    ) -> None:
        self.gates, self.router_for, self.notifier = gates, router_for, notifier
        self._submit, self._clock, self.hooks = submit, clock, hooks
        self.heartbeat, self.attempts = heartbeat, attempts

    # -- entry points ---------------------------------------------------------------------------------------
    def look(self, obj: dict[str, Any], gate: GateSpec, judgement: Judgement | None) -> Outcome:
        """Decide on one look and act; on a lost race re-read the Gate and decide again (bounded)."""
        return self._retrying(obj, gate, lambda s, now: transition(s, judgement, now, Policy.from_gate(gate)))

    def request(self, obj: dict[str, Any], gate: GateSpec, req: Request) -> Outcome:
        return self._retrying(obj, gate, lambda s, now: request(s, req, now, Policy.from_gate(gate)))

    def _retrying(self, obj: dict[str, Any], gate: GateSpec, decide: Callable[..., Any]) -> Outcome:
        ref = GateRef.of(obj)
        for attempt in range(1, self.attempts + 1):
            state = status_of(obj)
            now = self._clock()
            nxt, actions = decide(state, now)
            try:
                return self.apply(obj, gate, state, nxt, actions, now)
            except StaleObject:
                if attempt == self.attempts:
                    raise
                fresh = self.gates.get(ref)
                if fresh is None:
                    raise
                obj = fresh
        raise AssertionError("unreachable")

    # -- the write protocol ---------------------------------------------------------------------------------
    def apply(
        self,
        obj: dict[str, Any],
        gate: GateSpec,
        state: GateStatus,
        nxt: GateStatus,
        actions: tuple[Action, ...],
        now: float,
    ) -> Outcome:
        ref = GateRef.of(obj)
        routes = [a for a in actions if isinstance(a, Route)]
        said = [a for a in actions if isinstance(a, Announce)]
        nxt = nxt.model_copy(
            update={"observed_generation": obj["metadata"].get("generation"), "spec_hash": spec_hash(obj)}
        )
        writes = 0
        resumed = bool(routes) and state.intent is not None and state.intent == routes[0].intent
        if not resumed and self._should_write(state, nxt, actions, now):
            edge = "intent-write" if routes else "status-write"
            self.hooks.reached(f"before-{edge}")
            # a StaleObject here means nothing was done yet: the caller re-reads and decides again
            obj = self.gates.write_status(obj, nxt)
            writes += 1
            self.hooks.reached(f"after-{edge}")
        done: list[str] = []
        for r in routes:
            try:
                weight = self._route(ref, gate, r)
                self.hooks.reached("after-route-write")
                nxt = applied(nxt, weight=weight, now=self._clock())
                done.append(f"{r.kind} {weight:g}")
            except NotLeader:
                raise
            except (RouteFailure, RoutingError) as e:
                log.warning("Gate %s: routing %s failed: %s", ref, r.kind, e)
                nxt, more = route_failed(nxt, message=str(e), now=self._clock())
                said += [a for a in more if isinstance(a, Announce)]
            obj, nxt = self._write_result(obj, ref, nxt, r)
            writes += 1
            self.hooks.reached("after-result-write")
        for a in said:
            self._announce(obj, gate, nxt, a, now)
        return Outcome(
            obj=obj,
            status=nxt,
            status_writes=writes,
            routing=tuple(done),
            announced=tuple(a.reason for a in said),
        )

    def _write_result(
        self, obj: dict[str, Any], ref: GateRef, nxt: GateStatus, r: Route
    ) -> tuple[dict[str, Any], GateStatus]:
        """Write the routing result; if the Gate moved meanwhile, carry the result onto the fresh status."""
        for attempt in range(1, self.attempts + 1):
            try:
                return self.gates.write_status(obj, nxt), nxt
            except StaleObject:
                fresh = self.gates.get(ref)
                if fresh is None or attempt == self.attempts:
                    raise
                current = status_of(fresh)
                if current.intent is None or current.intent.id != r.intent.id:
                    raise  # another decision replaced the intent: the next look settles it
                carried = nxt.intent if nxt.intent is not None else r.intent
                nxt = current.model_copy(
                    update={"intent": carried, "weight": nxt.weight, "stage_started_at": nxt.stage_started_at,
                            "reason": nxt.reason, "conditions": nxt.conditions}
                )  # fmt: skip
                obj = fresh
        raise AssertionError("unreachable")

    def _route(self, ref: GateRef, gate: GateSpec, r: Route) -> float:
        router = self.router_for(ref, gate)
        if r.kind == "set":
            return router.set_weight(_percent(r.intent.to_weight)).after.canary_percent
        preview = router.revert(dry_run=True)
        if not preview.written or preview.after.canary_percent > preview.before.canary_percent:
            # nothing saved, or the saved split had more canary traffic: lower to 0 instead of restoring it
            if preview.before.canary_weight == 0:
                return 0.0
            return router.set_weight(0).after.canary_percent
        return router.revert().after.canary_percent

    def _should_write(
        self, state: GateStatus, nxt: GateStatus, actions: tuple[Action, ...], now: float
    ) -> bool:
        """Write on any action or material change; an unchanged hold only as a heartbeat."""
        if actions or _material(state) != _material(nxt):
            return True
        return state.last_evaluated_at is None or now - state.last_evaluated_at >= self.heartbeat

    def _announce(self, obj: dict[str, Any], gate: GateSpec, s: GateStatus, a: Announce, now: float) -> None:
        kind = "Normal" if a.severity == "info" else "Warning"
        self.gates.event(obj, kind=kind, reason=a.reason, message=a.message, now=now)
        targets = [t for t in gate.notify if wants(t, a.severity)]
        if not targets:
            return
        ref = GateRef.of(obj)
        m = Message(
            gate=ref.name, namespace=ref.namespace, event=a.reason, severity=a.severity, message=a.message,
            phase=s.phase.value, stage=s.stage, weight=s.weight, verdict=s.verdict, time=now,
            owners=tuple(gate.owners), runbook=gate.runbook, forward_fix=gate.forward_fix,
        )  # fmt: skip
        for t in targets:
            self._submit(lambda t=t: self.notifier.send(t, m))


def _material(s: GateStatus) -> dict[str, Any]:
    """What a reader must see at once; reason text, evidence numbers and look times may wait for a heartbeat."""
    d = s.model_dump(exclude={"last_evaluated_at", "reason", "history", "conditions"})
    d["history"] = [(h.action, h.stage, h.verdict) for h in s.history]
    return d


def _percent(weight: float) -> int:
    if float(weight).is_integer():
        return int(weight)
    raise RoutingError(f"stage weight {weight:g}% is not a whole percent; routers set whole percents 0..100")
