"""Aggregate signal outcomes into a Judgement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gatekeeper.spec.outcome import SignalOutcome, Verdict


@dataclass(frozen=True)
class Judgement:
    """The gate's answer for one look: verdict, the reason in one line, and every signal's outcome."""

    gate: str
    verdict: Verdict
    reason: str
    signals: tuple[SignalOutcome, ...]
    window: dict[str, float]
    stage: int = 0
    weight: float | None = None
    mode: str = "sequential"
    critical_failure: bool = False
    side_effects: dict[str, Any] = field(default_factory=dict)
    owners: tuple[str, ...] = ()

    @property
    def failing(self) -> tuple[SignalOutcome, ...]:
        return tuple(s for s in self.signals if s.verdict == Verdict.FAIL and not s.dry_run)

    @property
    def minimums_met(self) -> bool:
        """The stage's minimums are behind every voting signal, so a smoke stage may advance on an inconclusive
        look. Missing evidence never advances: a signal that did not measure the minimums (a threshold, health,
        Kayenta or Keptn signal: `Evidence.minimums_met` is None) counts as met only when it passed, and a look
        without voting signals meets nothing (see `gatekeeper.spec.evidence`)."""
        voting = [s for s in self.signals if not s.dry_run]
        return bool(voting) and all(_minimums_met(s) for s in voting)

    def carry(self) -> dict[str, dict[str, Any]]:
        """Per signal, the sequential evidence to continue in the next stage (signals with a sequential test)."""
        return {s.name: s.carry for s in self.signals if s.carry is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "window": self.window,
            "stage": self.stage,
            "weight": self.weight,
            "mode": self.mode,
            "critical_failure": self.critical_failure,
            "owners": list(self.owners),
            "side_effects": self.side_effects,
            "signals": [s.to_dict() for s in self.signals],
        }


def _minimums_met(s: SignalOutcome) -> bool:
    measured = s.evidence.minimums_met if s.evidence is not None else None
    return measured if measured is not None else s.verdict == Verdict.PASS


def aggregate(
    outcomes: list[SignalOutcome],
    *,
    gate: str,
    window: dict[str, float],
    stage: int = 0,
    weight: float | None = None,
    mode: str = "sequential",
    side_effects: dict[str, Any] | None = None,
    owners: tuple[str, ...] = (),
) -> Judgement:
    voting = [o for o in outcomes if not o.dry_run]
    verdict = Verdict.worst([o.verdict for o in voting])
    critical_failure = any(o.critical and o.verdict == Verdict.FAIL for o in voting)
    if not voting:
        reason = "no voting signals"
    elif verdict == Verdict.PASS:
        reason = f"all {len(voting)} signals pass"
    else:
        worst = [o for o in voting if o.verdict == verdict]
        worst.sort(key=lambda o: not o.critical)  # critical signals lead the explanation
        tag = "critical " if worst[0].critical else ""
        more = f" (+{len(worst) - 1} more {verdict.value})" if len(worst) > 1 else ""
        reason = f"{tag}signal {worst[0].name}: {worst[0].reason}{more}"
    return Judgement(
        gate=gate,
        verdict=verdict,
        reason=reason,
        signals=tuple(outcomes),
        window=window,
        stage=stage,
        weight=weight,
        mode=mode,
        critical_failure=critical_failure,
        side_effects=side_effects or {},
        owners=owners,
    )
