"""The transition machine: a look (a judgement) or an operator request in, the next status and the actions out.

Pure: no I/O, no clock (``now`` is an argument, unix seconds of the gate's clock), no randomness. The state is
the Gate's ``GateStatus``; the policy is the gate's stages and limits. One executor performs the actions.

Rules (docs/reliability.md lists the peer bugs behind them):

* The target weight comes from the gate's own stage index, never from the route (Flagger #1613); a routing
  change is recorded as an ``Intent`` in the status before it is made, and nothing else is decided while one
  is pending, so a crash in between resumes it exactly once.
* Advance only on a ``pass`` at or after the stage's minimum duration; never on nodata, error or inconclusive.
* ``fail``: revert while the rollback window is open, else halt + escalate (forward fix, runbook, owners). A
  non-critical failure waits for the stage minimum; a critical one acts at once. A revert only lowers exposure.
* ``nodata``/``error``: hold; once the outage budget (or ``consecutiveErrorLimit``) is spent, the stage's
  ``onDeadline`` acts — the same as an undecided stage at ``maxDuration``: ``rollback`` (revert or halt),
  ``hold`` (pause for a human) or ``advance-if-pass`` (keep holding until a pass).
* The rollback window closes for good (for the rest of the rollout) once a stage is ``forward-fix-only``, or
  a ``closes`` stage has lasted ``after`` or counted ``afterSideEffects`` canary side effects. A side-effect
  count that could not be queried is unknown, and unknown is treated as closed: gatekeeper never reverts
  when it cannot show that reverting is still safe. An absent counter series counts as zero (no side effect
  was ever reported).
* ``Paused`` stops progress, not protection: a failure while paused still reverts or halts.
* Lifecycle hooks (Flagger's hook points): the machine asks for a gating hook's answer with ``Ask`` and is
  called again with it (``hooks=``). ``confirm-rollout`` and ``pre-rollout`` run once before the first
  routing change; ``confirm-traffic-increase`` before each advance and ``confirm-promotion`` before the
  promotion; ``rollout`` with every look of the analysis; ``rollback`` with every look (a 2xx answer asks
  for a rollback). A confirm hook that refuses (4xx) waits for a person as long as it takes; one that never
  answers (timeout, refused connection, 5xx) holds, and fails the stage at its deadline (the stage's
  ``maxDuration``, else ``progressDeadline``, else 600 s as Flagger's default). Failed ``pre-rollout`` /
  ``rollout`` checks count like source errors: past ``consecutiveErrorLimit`` in a row the stage fails.
  ``post-rollout`` hooks fire (``Fire``) after a promotion, rollback or abort.
* ``inconclusiveLimit`` (per signal): one inconclusive look past it holds for a human (Argo pauses).
* ``progressDeadline``: a stage still undecided that long after its minimum duration (or a resume) takes its
  ``onDeadline`` action (missing evidence holds for a human instead); a routing change still failing that
  long pages the owners.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from gatekeeper.controller.bookkeeping import (
    conditions_for,
    evidence_of,
    push_history,
    side_effect_count,
)
from gatekeeper.judge import Judgement
from gatekeeper.spec.models import GateSpec, Stage, WindowMode
from gatekeeper.spec.outcome import Verdict
from gatekeeper.spec.status import Carried, GateStatus, Intent, Phase

__all__ = [
    "HOOK_DEADLINE",
    "TERMINAL",
    "Action",
    "Announce",
    "Ask",
    "Fire",
    "HookAnswer",
    "Policy",
    "Request",
    "Route",
    "applied",
    "approval_entry",
    "is_approved",
    "request",
    "route_failed",
    "transition",
]

TERMINAL = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED})  # Halted waits for a human
Severity = Literal["info", "warning", "critical"]
HOOK_DEADLINE = 600.0  # Flagger's default progressDeadlineSeconds: an unanswered gating hook fails after it


# -- inputs and outputs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    """What the machine needs from a gate spec."""

    stages: tuple[Stage, ...]
    outage_budget: float
    consecutive_error_limit: int
    owners: tuple[str, ...] = ()
    runbook: str | None = None
    forward_fix: str | None = None
    progress_deadline: float | None = None
    hook_types: frozenset[str] = frozenset()
    inconclusive_limits: tuple[tuple[str, int, float], ...] = ()  # (signal, limit, initial delay)

    @classmethod
    def from_gate(cls, gate: GateSpec) -> Policy:
        return cls(
            stages=tuple(gate.stages),
            outage_budget=gate.outage_budget,
            consecutive_error_limit=gate.consecutive_error_limit,
            owners=tuple(gate.owners),
            runbook=gate.runbook,
            forward_fix=gate.forward_fix,
            progress_deadline=gate.progress_deadline,
            hook_types=frozenset(h.type for h in gate.hooks),
            inconclusive_limits=tuple(
                (s.name, s.inconclusive_limit, s.initial_delay)
                for s in gate.signals
                if s.inconclusive_limit is not None and not s.dry_run
            ),
        )

    def hook_deadline(self, index: int) -> float:
        """How long a gating hook may stay unanswered in stage ``index`` before the stage fails."""
        stage = self.stage(index)
        if stage.max_duration is not None:
            return stage.max_duration
        return self.progress_deadline if self.progress_deadline is not None else HOOK_DEADLINE

    def stage(self, index: int) -> Stage:
        """The stage at ``index``; an index past the end (the spec lost stages mid-rollout) is the last."""
        return self.stages[min(max(index, 0), len(self.stages) - 1)]

    @property
    def last(self) -> int:
        return len(self.stages) - 1


@dataclass(frozen=True)
class Route:
    """Change the split: ``set`` the canary to ``intent.to_weight``, or ``revert`` to the saved original."""

    kind: Literal["set", "revert"]
    intent: Intent


@dataclass(frozen=True)
class Announce:
    """Tell people: a Kubernetes Event on the Gate and a notification to the gate's webhooks."""

    reason: str  # CamelCase, the Event reason: Started, Advanced, Promoted, RolledBack, Halted, ...
    message: str
    severity: Severity = "info"


@dataclass(frozen=True)
class Ask:
    """Call the gate's gating hooks of ``type`` and decide again with their answer (``transition(hooks=)``)."""

    type: str


@dataclass(frozen=True)
class Fire:
    """Call the gate's hooks of ``type`` once the status is written; nothing waits for their answer."""

    type: str


@dataclass(frozen=True)
class HookAnswer:
    """What the hooks of one type said: ``ok`` when every one answered 2xx; ``answered`` is false when one
    timed out, could not be reached or failed (5xx) after its retries, i.e. gave no decision at all."""

    ok: bool
    answered: bool = True
    message: str = ""


Action = Route | Announce | Ask | Fire
Hooks = Mapping[str, HookAnswer]


@dataclass(frozen=True)
class Request:
    """An operator's command (``gatekeeper approve|abort|pause|resume``), made through the API server."""

    action: Literal["approve", "abort", "pause", "resume"]
    by: str = "unknown"
    stage: int | None = None  # approve: the stage whose advance is approved (default: the current one)
    reason: str = ""


Step = tuple[GateStatus, tuple[Action, ...]]


def approval_entry(stage: int, user: str) -> str:
    """How an approval is written in ``status.approvals``: ``stage-<index>:<user>``."""
    return f"stage-{stage}:{user}"


def is_approved(state: GateStatus, stage: int) -> bool:
    return any(a.startswith(f"stage-{stage}:") for a in state.approvals)


# -- looks ----------------------------------------------------------------------------------------------------
def transition(
    state: GateStatus, judgement: Judgement | None, now: float, policy: Policy, hooks: Hooks | None = None
) -> Step:
    """The next status and actions after one look. ``judgement`` may be None when none was taken.

    ``hooks``: the answers of the gating hooks asked so far in this look. When the step is a lone ``Ask``,
    call those hooks and call ``transition`` again with their answer added; the asking step is not applied.
    """
    hooks = hooks or {}
    if state.intent is not None and not state.intent.done:
        return _resume(state, now, policy)  # resume the recorded change; decide nothing else
    if state.phase in TERMINAL or (state.phase == Phase.HALTED):
        return state, ()
    if state.phase == Phase.PENDING:
        return _start(state, now, policy, hooks)
    if judgement is None or state.stage_started_at is None:
        return state, ()
    rollback = _ask(policy, hooks, "rollback")
    if isinstance(rollback, Ask):
        return state, (rollback,)
    s = _observe(state, judgement, now, policy)
    if rollback is not None and rollback.ok:
        return _protect(s, now, judgement, policy, cause=f"a rollback hook asked for it ({rollback.message})")
    rollout: HookAnswer | None = None
    if s.phase in (Phase.PROGRESSING, Phase.AWAITING_APPROVAL):  # rollout hooks run with the analysis
        asked = _ask(policy, hooks, "rollout")
        if isinstance(asked, Ask):
            return state, (asked,)
        rollout = asked
        if rollout is not None:
            s = s.model_copy(update={"hook_failures": 0 if rollout.ok else s.hook_failures + 1})
    verdict = judgement.verdict
    if verdict == Verdict.FAIL:
        return _on_fail(s, judgement, now, policy)
    if rollout is not None and not rollout.ok and s.hook_failures > policy.consecutive_error_limit:
        cause = (
            f"rollout hooks failed {s.hook_failures} checks in a row "
            f"(limit {policy.consecutive_error_limit}): {rollout.message}"
        )
        return _protect(s, now, judgement, policy, cause=cause)
    if s.phase == Phase.PAUSED:
        return _keep_waiting(s, now, judgement, note="paused: no progress until resumed")
    over = _inconclusive_over(s, policy)
    if over:
        return _pause_for_human(s, now, judgement, cause=over, severity="warning")
    if rollout is not None and not rollout.ok:
        note = (
            f"rollout hook failed ({rollout.message}), check {s.hook_failures} of "
            f"{policy.consecutive_error_limit + 1} before the stage fails; not advancing"
        )
        first = state.hook_failures == 0
        s = s.model_copy(update={"reason": f"{note} ({judgement.reason})"})
        said = (Announce("HookFailed", note, "warning"),) if first else ()
        return _done(s, now, action="hold", judgement=judgement, actions=said)
    if verdict == Verdict.PASS:
        return _on_pass(s, judgement, now, policy, hooks)
    if verdict == Verdict.INCONCLUSIVE:
        if _smoke_done(s, judgement, now, policy):
            return _on_pass(s, judgement, now, policy, hooks, smoke=True)
        return _on_undecided(s, judgement, now, policy, prev=state)
    return _on_missing(s, judgement, now, policy, prev=state)


def _ask(policy: Policy, hooks: Hooks, kind: str) -> HookAnswer | Ask | None:
    """The answer of the gate's ``kind`` hooks: None when it has none, an ``Ask`` when not called yet."""
    if kind not in policy.hook_types:
        return None
    return hooks.get(kind) or Ask(kind)


def _resume(state: GateStatus, now: float, policy: Policy) -> Step:
    """Perform the recorded routing change again; page once when it is still not made at the progress
    deadline (the router keeps failing: conflicts, a webhook refusing the patch, RBAC)."""
    intent = state.intent
    assert intent is not None
    pd = policy.progress_deadline
    if pd is None or now - intent.recorded_at < pd or "progressDeadline" in state.escalation:
        return state, (_route_of(intent),)
    why = (
        f"the routing change ({intent.action} to {intent.to_weight:g}%) is still not made after "
        f"{now - intent.recorded_at:.0f}s (progressDeadline {pd:g}s): {state.reason}"
    )
    s = state.model_copy(update={"escalation": {**state.escalation, "progressDeadline": why, "at": now}})
    owners = ", ".join(policy.owners) or "no owners listed"
    return s, (_route_of(intent), Announce("ProgressDeadlineExceeded", f"{why}. Paging {owners}", "critical"))


def _start(state: GateStatus, now: float, policy: Policy, hooks: Hooks) -> Step:
    s = state
    for kind in ("confirm-rollout", "pre-rollout"):  # Flagger's order: confirmation, then pre-rollout checks
        if kind in s.hooks_passed:
            continue
        answer = _ask(policy, hooks, kind)
        if isinstance(answer, Ask):
            return state, (answer,)
        if answer is None:
            continue
        if not answer.ok:
            if kind == "confirm-rollout":
                return _wait_hook(s, now, None, policy, kind, answer)
            return _pre_rollout_failed(s, now, policy, answer)
        s = s.model_copy(
            update={
                "hooks_passed": [*s.hooks_passed, kind],
                "hook_failures": 0,
                "waiting_since": None,
                "waiting_for": "",
            }
        )
    to = policy.stage(0).weight
    s = s.model_copy(
        update={"phase": Phase.PROGRESSING, "stage": 0, "reason": f"starting stage 1 at {to:g}%"}
    )
    return _move(s, now, action="start", to=to, announce=Announce("Started", f"stage 1: canary to {to:g}%"))


def _pre_rollout_failed(s: GateStatus, now: float, policy: Policy, answer: HookAnswer) -> Step:
    """A failed pre-rollout check: retry at the next look; past ``consecutiveErrorLimit`` the rollout fails
    before any traffic moved (Flagger rolls back when the failed checks reach its threshold)."""
    n = s.hook_failures + 1
    s = s.model_copy(update={"hook_failures": n})
    if n > policy.consecutive_error_limit:
        cause = f"pre-rollout hooks failed {n} checks in a row (limit {policy.consecutive_error_limit}): {answer.message}"
        return _protect(s, now, None, policy, cause=cause)
    note = (
        f"pre-rollout hook failed ({answer.message}), check {n} of {policy.consecutive_error_limit + 1}; "
        "no traffic moves until it passes"
    )
    s = s.model_copy(update={"reason": note})
    said = (Announce("HookFailed", note, "warning"),) if n == 1 else ()
    return _done(s, now, action="hold", judgement=None, actions=said)


def _wait_hook(
    s: GateStatus, now: float, j: Judgement | None, policy: Policy, kind: str, answer: HookAnswer
) -> Step:
    """A confirm hook said no (wait for a person, however long) or did not answer (fail at the deadline)."""
    if answer.answered:
        reason = f"waiting for the {kind} hook: {answer.message}"
        first = s.waiting_for != kind or s.waiting_since is not None
        s = s.model_copy(update={"reason": reason, "waiting_since": None, "waiting_for": kind})
        said = (Announce("Waiting", reason),) if first else ()
        return _done(s, now, action="hold", judgement=j, actions=said)
    since = s.waiting_since if s.waiting_since is not None else now
    deadline = policy.hook_deadline(s.stage)
    if now - since >= deadline:
        cause = f"the {kind} hook has not answered for {now - since:.0f}s (deadline {deadline:g}s): {answer.message}"
        return _protect(
            s.model_copy(update={"waiting_since": None, "waiting_for": ""}), now, j, policy, cause=cause
        )
    reason = (
        f"the {kind} hook did not answer ({answer.message}); holding, the stage fails if it has not "
        f"answered {deadline:g}s after the first try"
    )
    said = (Announce("HookUnanswered", reason, "warning"),) if s.waiting_since is None else ()
    s = s.model_copy(update={"reason": reason, "waiting_since": since, "waiting_for": kind})
    return _done(s, now, action="hold", judgement=j, actions=said)


def _inconclusive_over(s: GateStatus, policy: Policy) -> str:
    for name, limit, _ in policy.inconclusive_limits:
        n = s.inconclusive.get(name, 0)
        if n > limit:
            return f"signal {name} was inconclusive {n} looks in a row (inconclusiveLimit {limit})"
    return ""


def _pause_for_human(
    s: GateStatus, now: float, j: Judgement | None, *, cause: str, severity: Severity
) -> Step:
    """Pause for a human: resume or abort."""
    s = s.model_copy(update={"phase": Phase.PAUSED, "reason": f"held for a human: {cause}; resume or abort"})
    return _done(s, now, action="hold", judgement=j, actions=(Announce("Held", s.reason, severity),))


def _observe(state: GateStatus, j: Judgement, now: float, policy: Policy) -> GateStatus:
    """Record the look: verdict, counters of missing evidence, side effects, rollback window."""
    missing = j.verdict in (Verdict.NODATA, Verdict.ERROR)
    count, known = side_effect_count(j.side_effects)
    s = state.model_copy(
        update={
            "verdict": j.verdict.value,
            "reason": j.reason,
            "last_evaluated_at": now,
            "nodata_since": (state.nodata_since if state.nodata_since is not None else now)
            if missing
            else None,
            "consecutive_errors": state.consecutive_errors + 1 if j.verdict == Verdict.ERROR else 0,
            "side_effects": count if known else state.side_effects,
            "inconclusive": _inconclusive_counts(state, j, now, policy),
        }
    )
    closed, why = _window(s, policy.stage(s.stage), now, known=known)
    if closed and not state.window_closed:
        esc = {**s.escalation, "windowClosed": why, "windowClosedAt": now}
        s = s.model_copy(update={"window_closed": True, "escalation": esc})
    return s


def _inconclusive_counts(state: GateStatus, j: Judgement, now: float, policy: Policy) -> dict[str, int]:
    """Consecutive inconclusive looks per signal with an ``inconclusiveLimit`` (looks in its initial delay
    and looks where it was not evaluated do not count; any other verdict resets it)."""
    if not policy.inconclusive_limits:
        return state.inconclusive
    verdicts = {o.name: o.verdict for o in j.signals}
    elapsed = now - (state.stage_started_at or now)
    counts: dict[str, int] = {}
    for name, _, delay in policy.inconclusive_limits:
        v = verdicts.get(name)
        if v == Verdict.INCONCLUSIVE and elapsed >= delay:
            counts[name] = state.inconclusive.get(name, 0) + 1
    return counts


def _window(s: GateStatus, stage: Stage, now: float, *, known: bool) -> tuple[bool, str]:
    if s.window_closed:
        return True, str(s.escalation.get("windowClosed", "closed earlier in the rollout"))
    rw = stage.rollback_window
    if rw.mode == WindowMode.FORWARD_FIX_ONLY:
        return True, f"stage {s.stage + 1} is forward-fix-only"
    if rw.mode != WindowMode.CLOSES:
        return False, ""
    elapsed = now - (s.stage_started_at or now)
    if rw.after is not None and elapsed >= rw.after:
        return True, f"stage {s.stage + 1} has run {elapsed:.0f}s, past its rollback window of {rw.after:g}s"
    if rw.after_side_effects is not None:
        if not known:
            return True, "canary side effects could not be counted, so a revert cannot be shown to be safe"
        if s.side_effects >= rw.after_side_effects:
            return True, (
                f"{s.side_effects} canary side effects in stage {s.stage + 1} "
                f"(the window closes at {rw.after_side_effects})"
            )
    return False, ""


def _on_fail(s: GateStatus, j: Judgement, now: float, policy: Policy) -> Step:
    stage = policy.stage(s.stage)
    left = stage.min_duration - (now - (s.stage_started_at or now))
    if not j.critical_failure and left > 0:
        return _keep_waiting(
            s, now, j, note=f"non-critical failure: acts at the stage minimum ({left:.0f}s left)"
        )
    return _protect(s, now, j, policy, cause=f"failed: {j.reason}")


def _protect(s: GateStatus, now: float, j: Judgement | None, policy: Policy, *, cause: str) -> Step:
    """Revert while the rollback window is open; past it, halt and escalate."""
    if not s.window_closed:
        s = s.model_copy(
            update={"phase": Phase.ROLLED_BACK, "reason": f"rolled back at stage {s.stage + 1}: {cause}"}
        )
        ann = Announce(
            "RolledBack", f"stage {s.stage + 1} at {s.weight:g}%: {cause}; canary traffic reverted", "warning"
        )
        step = _move(s, now, action="revert", to=0.0, judgement=j, announce=ann)
        return step[0], step[1] + _post_rollout(policy)
    esc = {
        **s.escalation,
        "reason": cause,
        "stage": s.stage,
        "weight": s.weight,
        "sideEffects": s.side_effects,
        "owners": list(policy.owners),
        "runbook": policy.runbook,
        "forwardFix": policy.forward_fix,
        "at": now,
    }
    why = s.escalation.get("windowClosed", "the rollback window is closed")
    reason = f"halted at stage {s.stage + 1} ({s.weight:g}%): {cause}; not reverted because {why}"
    s = s.model_copy(update={"phase": Phase.HALTED, "reason": reason, "escalation": esc})
    owners = ", ".join(policy.owners) or "no owners listed"
    more = "".join(
        f"; {k}: {v}" for k, v in (("forward fix", policy.forward_fix), ("runbook", policy.runbook)) if v
    )
    ann = Announce("Halted", f"{reason}. Paging {owners}{more}", "critical")
    return _done(s, now, action="halt", judgement=j, actions=(ann,))


def _post_rollout(policy: Policy) -> tuple[Action, ...]:
    return (Fire("post-rollout"),) if "post-rollout" in policy.hook_types else ()


def _smoke_done(s: GateStatus, j: Judgement, now: float, policy: Policy) -> bool:
    """A smoke stage (`requirePass: false`) advances on an inconclusive look once its minimum duration and
    samples are behind it: no harm was found at an exposure too small to prove health."""
    stage = policy.stage(s.stage)
    elapsed = now - (s.stage_started_at or now)
    return not stage.require_pass and j.minimums_met and elapsed >= stage.min_duration


def _on_pass(
    s: GateStatus, j: Judgement, now: float, policy: Policy, hooks: Hooks, *, smoke: bool = False
) -> Step:
    if smoke:
        j = replace(j, reason=f"smoke stage, no harm found ({j.reason})")
    stage = policy.stage(s.stage)
    left = stage.min_duration - (now - (s.stage_started_at or now))
    if left > 0:  # the judge already waits for the minimum; this guards the rule here too
        return _keep_waiting(s, now, j, note=f"passing, {left:.0f}s left of the stage minimum")
    if stage.authority.mode == "approval" and not is_approved(s, s.stage):
        if s.phase == Phase.AWAITING_APPROVAL:
            return _keep_waiting(
                s, now, j, note=f"passing; waiting for approval from {stage.authority.group}"
            )
        s = s.model_copy(
            update={
                "phase": Phase.AWAITING_APPROVAL,
                "reason": f"stage {s.stage + 1} passes; approval by group {stage.authority.group} is required",
            }
        )
        ann = Announce("AwaitingApproval", s.reason)
        return _done(s, now, action="await-approval", judgement=j, actions=(ann,))
    kind = "confirm-promotion" if s.stage >= policy.last else "confirm-traffic-increase"
    confirm = _ask(policy, hooks, kind)
    if isinstance(confirm, Ask):
        return s, (confirm,)
    if confirm is not None and not confirm.ok:
        return _wait_hook(s, now, j, policy, kind, confirm)
    s = s.model_copy(update={"phase": Phase.PROGRESSING, "waiting_since": None, "waiting_for": ""})
    if s.stage >= policy.last:
        s = s.model_copy(update={"phase": Phase.PROMOTED, "reason": f"promoted: {j.reason}"})
        ann = Announce("Promoted", f"every stage passed; canary at 100% ({j.reason})")
        if s.weight >= 100:
            return _done(s, now, action="promote", judgement=j, actions=(ann, *_post_rollout(policy)))
        step = _move(s, now, action="promote", to=100.0, judgement=j, announce=ann)
        return step[0], step[1] + _post_rollout(policy)
    nxt = s.stage + 1
    to = policy.stage(nxt).weight
    carried = Carried(stage=nxt, through=j.window.get("end"), signals={**s.carried_signals(), **j.carry()})
    s = s.model_copy(
        update={
            "stage": nxt,
            "side_effects": 0,
            "reason": f"advanced to stage {nxt + 1}: {j.reason}",
            "carried": carried,
        }
    )
    ann = Announce("Advanced", f"stage {nxt} passed ({j.reason}); canary {s.weight:g}% -> {to:g}%")
    return _move(s, now, action="advance", to=to, judgement=j, announce=ann)


def _on_undecided(s: GateStatus, j: Judgement, now: float, policy: Policy, *, prev: GateStatus) -> Step:
    stage = policy.stage(s.stage)
    if stage.max_duration is not None:
        deadline = (s.stage_started_at or now) + stage.max_duration
        if now >= deadline:
            crossed = prev.last_evaluated_at is None or prev.last_evaluated_at < deadline
            cause = f"stage {s.stage + 1} still undecided at its maximum duration ({stage.max_duration:g}s)"
            return _deadline(s, now, j, policy, cause=cause, crossed=crossed)
    overdue = _progress_overdue(s, now, policy, prev)
    if overdue is not None:
        return _deadline(s, now, j, policy, cause=overdue[0], crossed=overdue[1])
    return _keep_waiting(s, now, j)


def _progress_overdue(s: GateStatus, now: float, policy: Policy, prev: GateStatus) -> tuple[str, bool] | None:
    """(cause, crossed at this look) once a progressing stage has made no progress for ``progressDeadline``
    after it could first have advanced: its minimum duration, or a resume, whichever is later."""
    pd = policy.progress_deadline
    if pd is None or s.phase != Phase.PROGRESSING or s.stage_started_at is None:
        return None
    since = max(s.stage_started_at + policy.stage(s.stage).min_duration, s.progressed_at or 0.0)
    if now < since + pd:
        return None
    crossed = prev.last_evaluated_at is None or prev.last_evaluated_at < since + pd
    cause = f"stage {s.stage + 1} made no progress for {now - since:.0f}s past its minimum (progressDeadline {pd:g}s)"
    return cause, crossed


def _on_missing(s: GateStatus, j: Judgement, now: float, policy: Policy, *, prev: GateStatus) -> Step:
    overdue = _progress_overdue(s, now, policy, prev)
    if overdue is not None:  # no evidence is not evidence against the canary: hold for a human
        return _outage(s, now, j, policy, cause=f"{overdue[0]}: {j.reason}", crossed=overdue[1])
    since = s.nodata_since if s.nodata_since is not None else now
    budget_end = since + policy.outage_budget
    if now >= budget_end:
        crossed = prev.last_evaluated_at is None or prev.last_evaluated_at < budget_end
        cause = (
            f"no usable evidence for {now - since:.0f}s (outage budget {policy.outage_budget:g}s): {j.reason}"
        )
        return _outage(s, now, j, policy, cause=cause, crossed=crossed)
    if j.verdict == Verdict.ERROR and s.consecutive_errors > policy.consecutive_error_limit:
        crossed = prev.consecutive_errors <= policy.consecutive_error_limit
        cause = f"{s.consecutive_errors} errors in a row (limit {policy.consecutive_error_limit}): {j.reason}"
        return _outage(s, now, j, policy, cause=cause, crossed=crossed)
    return _on_undecided(s, j, now, policy, prev=prev)


def _outage(s: GateStatus, now: float, j: Judgement, policy: Policy, *, cause: str, crossed: bool) -> Step:
    """Missing evidence past its budget never advances and never reverts by itself (an outage of the
    monitoring is not evidence against the canary: Flagger #1163, Argo #1466). It holds for a human and pages
    the owners; `advance-if-pass` keeps waiting for a pass. A failure while held still reverts or halts."""
    if policy.stage(s.stage).on_deadline == "advance-if-pass":
        return _deadline(s, now, j, policy, cause=cause, crossed=crossed)
    owners = ", ".join(policy.owners) or "no owners listed"
    esc = {
        **s.escalation,
        "reason": cause,
        "owners": list(policy.owners),
        "runbook": policy.runbook,
        "at": now,
    }
    s = s.model_copy(
        update={
            "phase": Phase.PAUSED,
            "reason": f"held for a human: {cause}; resume or abort",
            "escalation": esc,
        }
    )
    ann = Announce("Held", f"{s.reason}. Paging {owners}", "critical")
    return _done(s, now, action="hold", judgement=j, actions=(ann,))


def _deadline(s: GateStatus, now: float, j: Judgement, policy: Policy, *, cause: str, crossed: bool) -> Step:
    """The stage's ``onDeadline``: rollback (revert or halt), hold (pause for a human), advance-if-pass (wait)."""
    mode = policy.stage(s.stage).on_deadline
    if mode == "rollback":
        return _protect(s, now, j, policy, cause=cause)
    if mode == "hold":
        s = s.model_copy(
            update={"phase": Phase.PAUSED, "reason": f"held for a human: {cause}; resume or abort"}
        )
        ann = Announce("Held", s.reason, "warning")
        return _done(s, now, action="hold", judgement=j, actions=(ann,))
    note = f"{cause}; waiting for a pass (onDeadline advance-if-pass)"
    if not crossed:
        return _keep_waiting(s, now, j, note=note)
    s = s.model_copy(update={"reason": note})
    return _done(s, now, action="hold", judgement=j, actions=(Announce("DeadlinePassed", note, "warning"),))


def _keep_waiting(s: GateStatus, now: float, j: Judgement | None, *, note: str = "") -> Step:
    """Stay at this stage and weight and look again (the look is recorded; nobody is asked to act)."""
    if note and j is not None:
        s = s.model_copy(update={"reason": f"{note} ({j.reason})"})
    return _done(s, now, action="hold", judgement=j, actions=())


# -- routing intents ------------------------------------------------------------------------------------------
def _move(
    s: GateStatus,
    now: float,
    *,
    action: str,
    to: float,
    judgement: Judgement | None = None,
    announce: Announce | None = None,
) -> Step:
    """Record a routing change as a pending intent; the executor makes it, then calls ``applied``."""
    kind: Literal["set", "revert"] = "revert" if action in ("revert", "abort") else "set"
    intent = Intent(
        id=f"{action}-s{s.stage}-w{to:g}-{now:.3f}",
        action=action,
        from_weight=s.weight,
        to_weight=to,
        recorded_at=now,
        stage=s.stage if action in ("start", "advance") else None,
    )
    s = s.model_copy(update={"intent": intent})
    actions: tuple[Action, ...] = (Route(kind, intent),) + ((announce,) if announce else ())
    return _done(s, now, action=action, judgement=judgement, actions=actions)


def _route_of(intent: Intent) -> Route:
    return Route("revert" if intent.action in ("revert", "abort") else "set", intent)


def applied(state: GateStatus, *, weight: float, now: float) -> GateStatus:
    """The pending intent's routing change is in place at ``weight``: the stage clock starts now."""
    intent = state.intent
    if intent is None or intent.done:
        return state
    update: dict[str, object] = {"intent": intent.model_copy(update={"done": True}), "weight": weight}
    if intent.action in ("start", "advance"):
        update |= {"stage_started_at": now, "progressed_at": now, "inconclusive": {}}
        update |= {"waiting_since": None, "waiting_for": ""}
    if "progressDeadline" in state.escalation:
        update["escalation"] = {k: v for k, v in state.escalation.items() if k != "progressDeadline"}
    return _done(state.model_copy(update=update), now, action="", judgement=None, actions=())[0]


def route_failed(state: GateStatus, *, message: str, now: float) -> Step:
    """The pending intent's routing change did not happen; it stays pending and is retried next look."""
    intent = state.intent
    if intent is None:
        return state, ()
    reason = f"routing {intent.action} to {intent.to_weight:g}% failed, retrying: {message}"
    if reason == state.reason:
        return state, ()
    s = state.model_copy(update={"reason": reason})
    return _done(s, now, action="", judgement=None, actions=(Announce("RoutingFailed", reason, "warning"),))


# -- operator requests ----------------------------------------------------------------------------------------
def request(state: GateStatus, req: Request, now: float, policy: Policy) -> Step:
    """Apply an operator's command. Every command is idempotent: applying it twice changes nothing more."""
    by = f" by {req.by}"
    why = f": {req.reason}" if req.reason else ""
    if state.phase in TERMINAL:
        return state, ()
    if req.action == "abort":
        if state.intent is not None and state.intent.action == "abort":
            return state, ()
        s = state.model_copy(update={"phase": Phase.ABORTED, "reason": f"aborted{by}{why}"})
        step = _move(s, now, action="abort", to=0.0, announce=Announce("Aborted", s.reason, "warning"))
        return step[0], step[1] + _post_rollout(policy)
    if req.action == "approve":
        stage = state.stage if req.stage is None else req.stage
        entry = approval_entry(stage, req.by)
        if stage < state.stage or entry in state.approvals:
            return state, ()
        s = state.model_copy(update={"approvals": [*state.approvals, entry]})
        return _done(
            s,
            now,
            action="approve",
            judgement=None,
            actions=(Announce("Approved", f"stage {stage + 1} approved{by}{why}"),),
        )
    if req.action == "pause":
        if state.phase not in (Phase.PROGRESSING, Phase.AWAITING_APPROVAL, Phase.PENDING):
            return state, ()
        s = state.model_copy(update={"phase": Phase.PAUSED, "reason": f"paused{by}{why}"})
        return _done(s, now, action="pause", judgement=None, actions=(Announce("Paused", s.reason),))
    if state.phase not in (Phase.PAUSED, Phase.HALTED):  # resume
        return state, ()
    update: dict[str, object] = {"phase": Phase.PROGRESSING, "reason": f"resumed{by}{why}"}
    update |= {"nodata_since": None, "consecutive_errors": 0, "progressed_at": now, "inconclusive": {}}
    update |= {"hook_failures": 0, "waiting_since": None, "waiting_for": ""}
    if state.phase == Phase.HALTED:  # a human took the decision (forward fix deployed): the stage starts over
        update["stage_started_at"] = now
        update["carried"] = None  # the evidence was about the version that was fixed
    if state.stage_started_at is None and state.intent is None:
        update["phase"] = Phase.PENDING  # paused before it ever started
    s = state.model_copy(update=update)
    return _done(s, now, action="resume", judgement=None, actions=(Announce("Resumed", s.reason),))


# -- bookkeeping ----------------------------------------------------------------------------------------------
def _done(
    s: GateStatus, now: float, *, action: str, judgement: Judgement | None, actions: Sequence[Action]
) -> Step:
    """Conditions follow the phase; the look or transition goes into the bounded history."""
    s = s.model_copy(update={"conditions": conditions_for(s, now)})
    if action or judgement is not None:
        signals, evidence = evidence_of(judgement) if judgement is not None else ({}, {})
        s = push_history(
            s,
            time=now,
            action=action,
            verdict=judgement.verdict.value if judgement is not None else s.verdict,
            signals=signals,
            evidence=evidence,
        )
    return s, tuple(actions)
