"""The executor: the one place that performs the machine's actions.

Order of writes for a routing change (each write fenced by the Lease):

1. the status with the change recorded as a pending ``intent`` (and the decision that caused it);
2. the routing write through the gate's router (idempotent: no write when the split already is the target);
3. the status with the intent done and the weight read back from the route (``machine.applied``).

A crash between 1 and 2 or between 2 and 3 leaves a pending intent; the next look (by this replica or the next
leader) performs it again before deciding anything, and step 2 finds the split already in place, so a change
is neither lost nor doubled. Events and notifications follow the status write that records them: a crash in
between loses an announcement, never repeats it.

A decision (an advance, revert, halt, promotion, approval wait, abort, or a hold for a human) is recorded
after the status writes that make it (``recorder``, `gatekeeper.controller.decision_store`): its judgement,
so its report never needs the source again. Like an Event, a record lost to a crash in between is lost, never
repeated; a record that cannot be written is a Warning Event, never a reason to undo the decision.

A revert only lowers exposure: if the split saved before the first write had more canary traffic than now
(or nothing was saved), the canary is set to 0 instead.

Lifecycle hooks: the machine asks for a gating hook's answer (``Ask``); the executor calls the hooks of that
type and decides again with the answer, within the same look (answers are kept across a retried decision, so
a hook is called once per look). ``post-rollout`` hooks (``Fire``) and ``event`` hooks (one per Event) are
called after the status write, at most once, like notifications.

Routing a stage: a stage's ``mirror`` and ``match`` go with its weight (mirror off before live traffic, the
A/B rule set or removed after the weight). A whole-gate ``dryRun`` validates every routing write on the API
server (``dryRun=All``) and changes nothing, calls no hooks and sends no notifications; its Events say
"[dry run]" and its status carries ``dryRun: true``.

``CrashPoints`` marks each edge above (and the query) so a test can kill the process exactly there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gatekeeper.controller.fights import GUARDED, guard
from gatekeeper.controller.kube import GateClient, GateRef, StaleObject, spec_hash, status_of
from gatekeeper.controller.leader import NotLeader
from gatekeeper.controller.machine import (
    Action,
    Announce,
    Ask,
    Fire,
    HookAnswer,
    Policy,
    Request,
    Route,
    applied,
    request,
    route_failed,
    transition,
)
from gatekeeper.controller.notify import Message, Notifier, wants
from gatekeeper.controller.webhooks import HookCaller, HttpHooks, call_all, event_body, hook_body
from gatekeeper.judge import Judgement
from gatekeeper.routing import MatchRouter, MirrorRouter, RouteFailure, Router, RoutingError
from gatekeeper.routing.match import Match
from gatekeeper.spec.models import GateSpec, Stage
from gatekeeper.spec.status import GateStatus, Intent

if TYPE_CHECKING:
    from gatekeeper.controller.decision_store import Recorder

__all__ = ["KILL_POINTS", "MID_POINTS", "POINTS", "CrashPoints", "Executor", "KillAt", "NoCrash", "Outcome"]

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
# reached right before a request leaves: with a delay (``POINT:N~MS``) the kill lands while it is in flight
MID_POINTS = (
    "during-route-write",  # after the Lease check, before each routing PATCH
    "during-hook-call",  # before a gating hook's HTTP call
)
KILL_POINTS = POINTS + MID_POINTS


class CrashPoints(Protocol):
    def reached(self, point: str) -> None:
        """Called at each edge of ``POINTS``; production does nothing, a chaos test kills the process."""
        ...


class NoCrash:
    def reached(self, point: str) -> None:
        return None


class KillAt:
    """A chaos tool: SIGKILL this process the ``count``-th time ``point`` is reached (``kill -9``, no cleanup),
    or ``delay`` seconds after it (from a timer thread: the work at that point, a write or a hook call, goes on
    and is cut off wherever it is)."""

    def __init__(self, point: str, count: int = 1, *, delay: float = 0.0) -> None:
        if point not in KILL_POINTS:
            raise ValueError(f"crash point {point!r} is unknown; use one of: {', '.join(KILL_POINTS)}")
        if count < 1 or delay < 0:
            raise ValueError(f"crash point {point!r}: count must be >= 1 and delay >= 0")
        self.point, self.count, self.delay, self.seen = point, count, delay, 0

    @classmethod
    def parse(cls, text: str) -> KillAt:
        """``POINT``, ``POINT:N`` or ``POINT:N~MS`` (kill MS milliseconds after the N-th time)."""
        point, _, rest = text.partition(":")
        n, _, ms = rest.partition("~")
        try:
            return cls(point, int(n) if n else 1, delay=float(ms) / 1000 if ms else 0.0)
        except ValueError as e:
            raise ValueError(f"--crash-at {text!r}: {e}; write POINT[:N][~MS]") from None

    def reached(self, point: str) -> None:
        if point != self.point:
            return
        self.seen += 1
        if self.seen == self.count:
            import threading

            log.warning(
                "chaos: killing this process at %s (#%d) in %.0f ms", point, self.seen, self.delay * 1e3
            )
            if self.delay:
                threading.Timer(self.delay, _kill_self).start()
            else:
                _kill_self()


def _kill_self() -> None:
    import os
    import signal

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
        webhooks: HookCaller | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.gates, self.router_for, self.notifier = gates, router_for, notifier
        self.recorder = recorder
        self._submit, self._clock, self.hooks = submit, clock, hooks
        self.heartbeat, self.attempts = heartbeat, attempts
        self.webhooks: HookCaller = webhooks or HttpHooks()

    # -- entry points ---------------------------------------------------------------------------------------
    def act(self, obj: dict[str, Any], gate: GateSpec, judgement: Judgement | None) -> Outcome:
        """Decide on one look's judgement (None: no look, e.g. an intent to resume) and act on it; on a lost
        race re-read the Gate and decide again (bounded)."""
        policy = Policy.from_gate(gate)
        answers: dict[str, HookAnswer] = {}
        ref = GateRef.of(obj)

        def decide(s: GateStatus, now: float) -> tuple[GateStatus, tuple[Action, ...]]:
            for _ in range(8):
                nxt, actions = transition(s, judgement, now, policy, answers)
                asks = [a for a in actions if isinstance(a, Ask)]
                if not asks:
                    return nxt, actions
                for a in asks:
                    answers[a.type] = self._ask(ref, gate, s, a.type)
            raise RuntimeError(f"gate {ref}: the machine kept asking for hooks: {sorted(answers)}")

        out = self._retrying(obj, gate, decide)
        self._record(obj, out, judgement)
        return out

    def _ask(self, ref: GateRef, gate: GateSpec, s: GateStatus, kind: str) -> HookAnswer:
        if gate.dry_run:
            return HookAnswer(ok=True, message="not called: dry run")
        hooks = [h for h in gate.hooks if h.type == kind]
        if hooks:
            self.hooks.reached("during-hook-call")
        return call_all(
            self.webhooks, hooks, lambda h: hook_body(h, name=ref.name, namespace=ref.namespace, status=s)
        )

    def guard(self, obj: dict[str, Any], gate: GateSpec) -> Outcome | None:
        """Before a look: read the route; if another writer changed its weights, restore them or, past the
        gate's ``fightLimit``, hold for a human (``fights.guard``). None when there was nothing to do."""
        state = status_of(obj)
        settled = state.intent is None or state.intent.done
        if gate.routing is None or gate.dry_run or state.phase not in GUARDED or not settled:
            return None
        if state.stage_started_at is None:
            return None  # not started: the route is not gatekeeper's to hold yet
        ref = GateRef.of(obj)
        router = self.router_for(ref, gate)
        try:
            split = router.read()
        except (RouteFailure, RoutingError) as e:  # the next routing change reports it as usual
            log.info("Gate %s: route not read before the look: %s", ref, e)
            return None
        now = self._clock()
        nxt, actions = guard(
            state,
            found=split.canary_percent,
            by=split.changed_by,
            where=router.target.describe(),
            now=now,
            limit=gate.routing.fight_limit,
        )
        if nxt is state:
            return None
        out = self.apply(obj, gate, state, nxt, actions, now)
        self._record(obj, out, None)  # a hold for a human when the fight is given up
        return out

    def request(
        self, obj: dict[str, Any], gate: GateSpec, req: Request, *, last: Judgement | None = None
    ) -> Outcome:
        """Apply an operator's request; ``last``: the gate's latest judgement, recorded with an abort."""
        out = self._retrying(obj, gate, lambda s, now: request(s, req, now, Policy.from_gate(gate)))
        self._record(obj, out, last, by=req.by)
        return out

    def _record(
        self, before: dict[str, Any], out: Outcome, judgement: Judgement | None, by: str = ""
    ) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.record(
                gate=out.obj, before=status_of(before), after=out.status, judgement=judgement, by=by
            )
        except NotLeader:
            raise
        except Exception as e:  # a record is an explanation: losing one never undoes or blocks a decision
            ref = GateRef.of(out.obj)
            log.warning("Gate %s: decision not recorded: %s", ref, e)
            self.gates.event(out.obj, kind="Warning", reason="DecisionNotRecorded",
                             message=f"the decision was made but its record could not be stored: {e}",
                             now=self._clock())  # fmt: skip

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
        fires = [a for a in actions if isinstance(a, Fire)]
        nxt = nxt.model_copy(
            update={
                "observed_generation": obj["metadata"].get("generation"),
                "spec_hash": spec_hash(obj),
                "dry_run": gate.dry_run,
            }
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
        for f in fires:
            self._fire(ref, gate, nxt, f.type)
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

    def revert_route(self, ref: GateRef, gate: GateSpec) -> float:
        """Revert the gate's route now, by the same rules as a revert (only lowers exposure; removes the A/B rule
        and the mirror); the canary weight after. For a Gate deleted mid-rollout (``revertOnDeletion``)."""
        now = self._clock()
        intent = Intent(id=f"delete-{now:.3f}", action="revert", from_weight=0, to_weight=0, recorded_at=now)
        return self._route(ref, gate, Route("revert", intent))

    def _route(self, ref: GateRef, gate: GateSpec, r: Route) -> float:
        router = self.router_for(ref, gate)
        dry = gate.dry_run
        if r.kind == "set":
            i = r.intent.stage
            stage = gate.stages[i] if i is not None and 0 <= i < len(gate.stages) else None
            return _set_stage(router, stage, _percent(r.intent.to_weight), dry=dry)
        preview = router.revert(dry_run=True)
        if not preview.written or preview.after.canary_percent > preview.before.canary_percent:
            # nothing saved, or the saved split had more canary traffic: lower to 0 instead of restoring it
            if preview.before.canary_weight == 0 and not preview.written:
                return 0.0
            return _set_stage(router, None, 0, dry=dry)
        return router.revert(dry_run=dry).after.canary_percent

    def _should_write(
        self, state: GateStatus, nxt: GateStatus, actions: tuple[Action, ...], now: float
    ) -> bool:
        """Write on any action or material change; an unchanged hold only as a heartbeat."""
        if actions or _material(state) != _material(nxt):
            return True
        return state.last_evaluated_at is None or now - state.last_evaluated_at >= self.heartbeat

    def _announce(self, obj: dict[str, Any], gate: GateSpec, s: GateStatus, a: Announce, now: float) -> None:
        kind = "Normal" if a.severity == "info" else "Warning"
        if gate.dry_run:  # recorded, never sent: a dry run acts on nothing and pages nobody
            self.gates.event(obj, kind=kind, reason=a.reason, message=f"[dry run] {a.message}", now=now)
            return
        self.gates.event(obj, kind=kind, reason=a.reason, message=a.message, now=now)
        ref = GateRef.of(obj)
        for h in (h for h in gate.hooks if h.type == "event"):
            body = event_body(h, name=ref.name, namespace=ref.namespace, status=s, message=a.message,
                              warning=kind == "Warning", at=now)  # fmt: skip
            self._submit(lambda h=h, body=body: self.webhooks.call(h, body))
        targets = [t for t in gate.notify if wants(t, a.severity)]
        if not targets:
            return
        m = Message(
            gate=ref.name, namespace=ref.namespace, event=a.reason, severity=a.severity, message=a.message,
            phase=s.phase.value, stage=s.stage, weight=s.weight, verdict=s.verdict, time=now,
            owners=tuple(gate.owners), runbook=gate.runbook, forward_fix=gate.forward_fix,
        )  # fmt: skip
        for t in targets:
            self._submit(lambda t=t: self.notifier.send(t, m))

    def _fire(self, ref: GateRef, gate: GateSpec, s: GateStatus, kind: str) -> None:
        """Call the ``kind`` hooks after the fact (post-rollout): a failure is logged, nothing waits on it."""
        if gate.dry_run:
            return
        for h in (h for h in gate.hooks if h.type == kind):
            body = hook_body(h, name=ref.name, namespace=ref.namespace, status=s)
            self._submit(lambda h=h, body=body: self.webhooks.call(h, body))


def _set_stage(router: Router, stage: Stage | None, weight: int, *, dry: bool) -> float:
    """Put a stage's routing in place: its weight, its A/B match (or none) and its mirror (or none).

    A mirror goes off before the canary takes live traffic and on after its weight is 0 (a mirrored request
    must never reach a canary that also takes live requests); the A/B rule follows the weight. ``stage=None``
    (promote, revert to 0) removes both. A router without the capability is asked only when the stage needs
    it, and then refuses with a RoutingError (the spec check keeps that from happening)."""
    match = _match_of(stage) if stage is not None else None
    mirror = stage.mirror if stage is not None and stage.mirror else 0.0
    mirrors = router if isinstance(router, MirrorRouter) else None
    if mirror and mirrors is None:
        raise RoutingError(
            f"{router.target.describe()} cannot mirror traffic; stage asks for mirror {mirror:g}%"
        )
    if match is not None and not isinstance(router, MatchRouter):
        raise RoutingError(
            f"{router.target.describe()} cannot route by header or cookie; the stage has a match"
        )
    if mirrors is not None and not mirror:
        mirrors.set_mirror(0, dry_run=dry)
    after = router.set_weight(weight, dry_run=dry).after.canary_percent
    if isinstance(router, MatchRouter):
        router.set_match(match, dry_run=dry)
    if mirrors is not None and mirror:
        mirrors.set_mirror(mirror, dry_run=dry)
    return after


def _match_of(stage: Stage) -> Match | None:
    m = stage.match
    if m is None:
        return None
    return Match(
        headers=tuple(m.headers.items()), cookie=(m.cookie.name, m.cookie.value) if m.cookie else None
    )


def _material(s: GateStatus) -> dict[str, Any]:
    """What a reader must see at once; reason text, evidence numbers and look times may wait for a heartbeat."""
    d = s.model_dump(exclude={"last_evaluated_at", "reason", "history", "conditions"})
    d["history"] = [(h.action, h.stage, h.verdict) for h in s.history]
    return d


def _percent(weight: float) -> int:
    if float(weight).is_integer():
        return int(weight)
    raise RoutingError(f"stage weight {weight:g}% is not a whole percent; routers set whole percents 0..100")
