"""From sequential evidence to a decision: the closed set PASS / FAIL / INCONCLUSIVE, with the numbers.

The judge maps `Decision` to its verdicts; NODATA and ERROR are the judge's (missing series, failed query),
because statistics only ever sees numbers. Rules (docs/statistics.md §2):

- FAIL when the one-sided harm e-process against r <= 1 + margin has reached 1/α at any look so far.
- PASS when the confidence sequence's upper bound on r is at most 1 + tolerance (the bound is strict:
  r < upper) and the caller says the stage's minimum samples and duration are met.
- INCONCLUSIVE otherwise, including when there are no bad events at all: the conditional test learns
  about r only from bad events, so none means no evidence, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from gatekeeper.stats import _check

__all__ = ["Decision", "RatioDecision", "RatioEvidence", "decide_ratio"]


class Decision(StrEnum):
    """Closed set; the judge maps it to its verdict enum."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class RatioEvidence(Protocol):
    """What `decide_ratio` reads; both `RatioSequentialResult` and `RatioState` provide it."""

    @property
    def alpha(self) -> float: ...
    @property
    def margin(self) -> float: ...
    @property
    def max_log_e(self) -> float: ...
    @property
    def log_e(self) -> float: ...
    @property
    def ratio_lower(self) -> float: ...
    @property
    def ratio_upper(self) -> float: ...
    @property
    def canary_bad(self) -> int: ...
    @property
    def baseline_bad(self) -> int: ...


@dataclass(frozen=True)
class RatioDecision:
    """A decision with the evidence behind it and a one-line human reason."""

    decision: Decision
    reason: str
    e_value: float
    max_e_value: float
    threshold: float
    ratio_lower: float
    ratio_upper: float
    limit: float
    canary_bad: int
    baseline_bad: int

    @property
    def events(self) -> int:
        return self.canary_bad + self.baseline_bad


def decide_ratio(evidence: RatioEvidence, *, tolerance: float, min_samples_met: bool) -> RatioDecision:
    """Apply the rules in the module docstring. `tolerance` is the allowed increase (0.2 = +20 %)."""
    tol = _check.nonneg(tolerance, field="tolerance")
    limit = 1.0 + tol
    threshold = 1.0 / evidence.alpha
    lower, upper = evidence.ratio_lower, evidence.ratio_upper
    events = evidence.canary_bad + evidence.baseline_bad

    def out(decision: Decision, reason: str) -> RatioDecision:
        return RatioDecision(
            decision,
            reason,
            _exp(evidence.log_e),
            _exp(evidence.max_log_e),
            threshold,
            lower,
            upper,
            limit,
            evidence.canary_bad,
            evidence.baseline_bad,
        )

    if evidence.max_log_e >= math.log(threshold):
        return out(
            Decision.FAIL,
            f"e-value reached {_exp(evidence.max_log_e):.3g} >= {threshold:.3g}: "
            f"the canary's rate is above {1 + evidence.margin:.2f}x the baseline's "
            f"(ratio > {lower:.2f})",
        )
    if events == 0:
        return out(Decision.INCONCLUSIVE, "no bad events in either arm yet: no evidence about the rate ratio")
    bound = f"rate ratio in ({lower:.2f}, {_fmt(upper)})"
    if upper <= limit:
        if min_samples_met:
            return out(Decision.PASS, f"{bound}: below the tolerated {limit:.2f}x")
        return out(
            Decision.INCONCLUSIVE, f"{bound} is below {limit:.2f}x but the stage minimum is not met yet"
        )
    return out(Decision.INCONCLUSIVE, f"{bound}: upper bound not yet below the tolerated {limit:.2f}x")


def _exp(x: float) -> float:
    return math.exp(x) if x < 709.0 else math.inf


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}"
