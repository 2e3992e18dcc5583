"""The vocabulary of answers: the verdict enum and the per-signal outcome every room passes upward.

These are value types of the gate language, so they live in `spec`: signals produce outcomes, the judge
aggregates them, the controller and the shells display them.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from gatekeeper.spec.evidence import Evidence


class Verdict(StrEnum):
    """Closed set with a worst-of order: PASS < INCONCLUSIVE < NODATA < ERROR < FAIL. Nothing is PASS by default."""

    PASS = "pass"
    INCONCLUSIVE = "inconclusive"
    NODATA = "nodata"
    ERROR = "error"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @staticmethod
    def worst(verdicts: list[Verdict]) -> Verdict:
        return max(verdicts, key=lambda v: v.rank) if verdicts else Verdict.NODATA


_RANK = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.NODATA: 2, Verdict.ERROR: 3, Verdict.FAIL: 4}


@dataclass(frozen=True)
class Effect:
    """How different the canary is, direction-aware, with its confidence bounds (None when unknown)."""

    measure: str  # e.g. "rate ratio", "shift (s)", "value"
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    limit: float | None = None  # the tolerated bound the effect is judged against


class Measured(Protocol):
    """What an outcome takes from the signal it is about (every spec signal has these)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def critical(self) -> bool: ...
    @property
    def dry_run(self) -> bool: ...


@dataclass(frozen=True)
class SignalOutcome:
    """One signal's verdict with everything needed to explain it. Build one with `SignalOutcome.of(signal, ...)`
    (name, kind, critical and dry-run come from the signal); `evidence` is one of `gatekeeper.spec.evidence`."""

    name: str
    kind: str
    verdict: Verdict
    reason: str
    canary: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    effect: Effect | None = None
    queries: dict[str, str] = field(default_factory=dict)
    evidence: Evidence | None = None
    critical: bool = False
    dry_run: bool = False
    # The signal's sequential evidence to continue in the next stage of the same rollout (plain JSON, a few KB;
    # kept out of `to_dict`, which is for people): see `gatekeeper.signals.counts`.
    carry: dict[str, Any] | None = None

    @classmethod
    def of(
        cls,
        signal: Measured,
        verdict: Verdict,
        reason: str,
        *,
        canary: dict[str, Any] | None = None,
        baseline: dict[str, Any] | None = None,
        effect: Effect | None = None,
        queries: dict[str, str] | None = None,
        evidence: Evidence | None = None,
        carry: dict[str, Any] | None = None,
        critical: bool | None = None,
    ) -> SignalOutcome:
        """The outcome of `signal`: its name, kind, `critical` (unless given) and `dryRun` with the verdict."""
        return cls(
            name=signal.name,
            kind=signal.kind,
            verdict=verdict,
            reason=reason,
            canary=canary or {},
            baseline=baseline or {},
            effect=effect,
            queries=queries or {},
            evidence=evidence,
            critical=signal.critical if critical is None else critical,
            dry_run=signal.dry_run,
            carry=carry,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the outcome (without `carry`): what `evaluate -o json`, reports and records show."""
        return {
            "name": self.name,
            "kind": self.kind,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "canary": copy.deepcopy(self.canary),
            "baseline": copy.deepcopy(self.baseline),
            "effect": None if self.effect is None else asdict(self.effect),
            "queries": dict(self.queries),
            "evidence": {} if self.evidence is None else self.evidence.to_dict(),
            "critical": self.critical,
            "dry_run": self.dry_run,
        }
