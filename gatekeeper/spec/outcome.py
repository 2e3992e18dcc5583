"""The vocabulary of answers: the verdict enum and the per-signal outcome every room passes upward.

These are value types of the gate language, so they live in `spec`: signals produce outcomes, the judge
aggregates them, the controller and the shells display them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


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


@dataclass(frozen=True)
class SignalOutcome:
    """One signal's verdict with everything needed to explain it."""

    name: str
    kind: str
    verdict: Verdict
    reason: str
    canary: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    effect: Effect | None = None
    queries: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    critical: bool = False
    dry_run: bool = False
    # The signal's sequential evidence to continue in the next stage of the same rollout (plain JSON, a few KB;
    # kept out of `to_dict`, which is for people): see `gatekeeper.signals.counts`.
    carry: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("carry", None)
        d["verdict"] = self.verdict.value
        return d
