"""Replay: what would the gate have done over a past window? ("last Tuesday's incident")

Walks `[start, end]` look by look, every `step` seconds (the gate's `interval` by default: how often the live
controller looks). Each look judges the window from the current stage's start to that instant through
`gatekeeper.evaluation.safe_judgement`, exactly as the controller does (a crash is an ERROR look), and hands the judgement to the controller's own pure machine
(`gatekeeper.controller.machine.transition`). Routing changes are taken as made at once (the executor
assumed to succeed), so the next stage's clock starts at the look that advanced it.

What replay cannot know: traffic in the past followed whatever routing was live then, not the weights the
gate would have set; approvals that would have been given (a stage that awaits approval stays there); hooks.

Looks closer to the stage start than one source step are skipped (there is not one full step of evidence);
the walk stops at a terminal phase (promoted, rolled back, aborted) or a halt (which waits for a human).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gatekeeper.controller.machine import TERMINAL, Announce, Policy, Route, applied, transition
from gatekeeper.evaluation import safe_judgement
from gatekeeper.judge import Judgement
from gatekeeper.sources.base import MetricsSource
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.outcome import Verdict
from gatekeeper.spec.status import GateStatus, Phase
from gatekeeper.spec.window import Window

__all__ = ["MAX_LOOKS", "Look", "Replay", "ReplayError", "plan_looks", "replay"]

MAX_LOOKS = 5000  # a typo in --from should not queue a million evaluations

Progress = Callable[[int, int], None]  # (looks done, looks planned)


class ReplayError(ValueError):
    """Bad replay input (range, step); the message names the option and the fix."""


@dataclass(frozen=True)
class Look:
    """One look of the replay: the judgement and what the stage machine did with it."""

    time: float
    stage: int  # 0-based stage the look judged
    weight: float | None
    verdict: Verdict
    reason: str  # the judgement's
    decision: str  # the machine's reason after the transition
    action: str  # the machine's: hold, advance, revert, halt, promote, await-approval ("" = none)
    events: tuple[str, ...]  # what the controller would have announced (Event reason: message)
    phase: str  # phase after the transition
    stage_started: float
    judgement: Judgement
    status: GateStatus = field(repr=False, default_factory=GateStatus)  # after the transition

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "stage": self.stage,
            "weight": self.weight,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "decision": self.decision,
            "action": self.action,
            "events": list(self.events),
            "phase": self.phase,
            "stage_started": self.stage_started,
            "signals": {s.name: _signal_point(s) for s in self.judgement.signals},
        }


@dataclass(frozen=True)
class Replay:
    gate: str
    start: float
    end: float
    step: float
    policy: str  # which transition function decided
    looks: tuple[Look, ...]
    final: GateStatus
    skipped: int = 0  # looks too close to a stage start to judge
    stopped_early: bool = False  # a terminal phase ended the walk before `end`
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def last(self) -> Judgement | None:
        return self.looks[-1].judgement if self.looks else None

    @property
    def verdict(self) -> Verdict:
        """The last look's verdict (NODATA when no look could be made)."""
        return self.looks[-1].verdict if self.looks else Verdict.NODATA

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "from": self.start,
            "to": self.end,
            "step": self.step,
            "policy": self.policy,
            "looks": [lk.to_dict() for lk in self.looks],
            "actions": [
                {"time": lk.time, "action": lk.action, "stage": lk.stage, "reason": lk.reason}
                for lk in self.looks
                if lk.action not in ("", "hold")
            ],
            "final": {
                "phase": self.final.phase.value,
                "stage": self.final.stage,
                "weight": self.final.weight,
                "verdict": self.verdict.value,
                "reason": self.final.reason,
            },
            "skipped_looks": self.skipped,
            "stopped_early": self.stopped_early,
            "notes": list(self.notes),
        }


def _execute(status: GateStatus, actions: tuple[Any, ...], *, now: float) -> GateStatus:
    """What the executor would do, assumed to succeed at once: every routing change is in place at `now`."""
    for action in actions:
        if isinstance(action, Route):
            status = applied(status, weight=action.intent.to_weight, now=now)
    return status


def _action_name(status: GateStatus, actions: tuple[Any, ...], *, now: float) -> str:
    """The machine's own name for what it did at `now` (its history entry), else the routing intent's."""
    if status.history and status.history[-1].time == now and status.history[-1].action:
        return status.history[-1].action
    routes = [a.intent.action for a in actions if isinstance(a, Route)]
    return routes[0] if routes else ""


def plan_looks(*, start: float, end: float, step: float) -> list[float]:
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ReplayError("--from and --to must be finite times")
    if end <= start:
        raise ReplayError("--to must be after --from")
    if step <= 0:
        raise ReplayError("--step must be positive, e.g. --step 1m")
    n = math.floor((end - start) / step + 1e-9)
    if n < 1:
        raise ReplayError(f"the range ({end - start:g}s) is shorter than one --step ({step:g}s): widen it")
    if n > MAX_LOOKS:
        raise ReplayError(f"{n} looks is more than {MAX_LOOKS}: use a larger --step or a shorter range")
    return [start + k * step for k in range(1, n + 1)]


def replay(
    gate: GateSpec,
    *,
    metrics: MetricsSource,
    start: float,
    end: float,
    step: float | None = None,
    progress: Progress | None = None,
) -> Replay:
    """Walk the gate over `[start, end]`; the rollout is taken to begin (stage 1) at `start`."""
    look_step = step if step is not None else gate.interval
    times = plan_looks(start=start, end=end, step=look_step)
    source_step = gate.source.prometheus.step
    policy = Policy.from_gate(gate)
    status, actions = transition(GateStatus(), None, start, policy)  # Pending -> stage 1 intent
    status = _execute(status, actions, now=start)
    looks: list[Look] = []
    skipped = 0
    stopped = False
    for i, t in enumerate(times):
        if status.phase in TERMINAL or status.phase == Phase.HALTED:
            stopped = True
            break
        stage_started = status.stage_started_at if status.stage_started_at is not None else start
        if t - stage_started < source_step - 1e-9:
            skipped += 1
        else:
            looks.append(
                _look(gate, metrics, policy, status, t=t, stage_started=stage_started, step=source_step)
            )
            status = looks[-1].status
        if progress is not None:
            progress(i + 1, len(times))
    return Replay(
        gate=gate.name,
        start=start,
        end=end,
        step=look_step,
        policy="gatekeeper.controller.machine.transition",
        looks=tuple(looks),
        final=status,
        skipped=skipped,
        stopped_early=stopped,
        notes=(
            "traffic followed the routing that was live at the time, not the weights this gate would have set",
            "routing changes are assumed made at once; approvals are assumed never given",
        ),
    )


def _look(
    gate: GateSpec,
    metrics: MetricsSource,
    policy: Policy,
    status: GateStatus,
    *,
    t: float,
    stage_started: float,
    step: float,
) -> Look:
    window = Window(start=stage_started, end=t, step=step)
    judgement = safe_judgement(
        gate,
        metrics=metrics,
        window=window,
        stage=status.stage,
        stage_started=stage_started,
        carried=status.carried_signals(),
    )
    new, actions = transition(status, judgement, t, policy)
    name = _action_name(new, actions, now=t)
    new = _execute(new, actions, now=t)
    return Look(
        time=t,
        stage=status.stage,
        weight=judgement.weight,
        verdict=judgement.verdict,
        reason=judgement.reason,
        decision=new.reason,
        action=name,
        events=tuple(f"{a.reason}: {a.message}" for a in actions if isinstance(a, Announce)),
        phase=new.phase.value,
        stage_started=stage_started,
        judgement=judgement,
        status=new,
    )


def _signal_point(s: Any) -> dict[str, Any]:
    """The numbers of one signal at one look, compact enough for a long JSON timeline."""
    out: dict[str, Any] = {"verdict": s.verdict.value}
    recorded = s.evidence.recorded() if s.evidence is not None else {}
    out |= {k: v for k, v in recorded.items() if k != "samples"}
    if s.effect is not None:
        out["effect"] = {
            "estimate": s.effect.estimate,
            "lower": s.effect.lower,
            "upper": s.effect.upper,
            "limit": s.effect.limit,
        }
    for arm in ("canary", "baseline"):
        rate = (getattr(s, arm) or {}).get("rate")
        if rate is not None:
            out[f"{arm}_rate"] = rate
    return out
