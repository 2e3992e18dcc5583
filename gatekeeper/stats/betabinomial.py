"""Closed-form e-value for a constant canary share: the Beta-binomial mixture (docs/statistics.md §8).

With the canary share ρ fixed, the canary's share θ of all bad events is Binomial(m, θ) and H0 says θ = θ0
(θ0 = θ(1 + margin), equal to ρ when the margin is 0). Mixing the likelihood ratio over a Beta(a, b) prior
with a = kθ0, b = k(1 − θ0) gives

    E = B(a + C, b + B) / ( B(a, b) · θ0^C · (1 − θ0)^B ),

C and B being the canary's and baseline's bad events. The one-sided version (harm only) truncates the prior
to θ > θ0, multiplying numerator and denominator by the Beta tail above θ0. Both are test martingales in the
number of events; they serve as an outside check of the grid e-process and as a compact alternative when
the share never changes.

Reference: Lindon & Malek (2022), NeurIPS, §3 (conjugate Dirichlet–multinomial mixtures); Robbins (1970).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special, stats

from gatekeeper.stats import _check
from gatekeeper.stats.errors import StatsInputError

__all__ = ["BetaBinomialEvalue", "beta_binomial_evalue"]


@dataclass(frozen=True)
class BetaBinomialEvalue:
    """`log_e` is exact in log space; `e_value` is inf beyond float range. `a`, `b` are the prior's shape."""

    log_e: float
    e_value: float
    a: float
    b: float
    null_probability: float
    one_sided: bool


def beta_binomial_evalue(
    *,
    canary_bad: int,
    baseline_bad: int,
    canary_share: float,
    margin: float = 0.0,
    concentration: float = 10.0,
    one_sided: bool = True,
) -> BetaBinomialEvalue:
    """E-value of H0: r <= 1 + margin (one-sided) or r = 1 + margin (two-sided) from total bad events."""
    c = _check.count(canary_bad, field="canary_bad")
    b_ = _check.count(baseline_bad, field="baseline_bad")
    rho = float(canary_share)
    if not (0.0 < rho < 1.0):
        raise StatsInputError(
            "canary_share",
            f"{canary_share!r} is not strictly between 0 and 1",
            "pass the constant canary traffic share",
        )
    k = float(concentration)
    if not (k > 0 and math.isfinite(k)):
        raise StatsInputError("concentration", f"{concentration!r} is not > 0", "pass e.g. 10")
    r0 = 1.0 + _check.nonneg(margin, field="margin")
    theta0 = rho * r0 / (rho * r0 + 1.0 - rho)
    a, b = k * theta0, k * (1.0 - theta0)
    log_e = (
        special.betaln(a + c, b + b_) - special.betaln(a, b) - c * math.log(theta0) - b_ * math.log1p(-theta0)
    )
    if one_sided:
        log_e += float(stats.beta.logsf(theta0, a + c, b + b_)) - float(stats.beta.logsf(theta0, a, b))
    log_e = float(log_e)
    return BetaBinomialEvalue(log_e, math.exp(log_e) if log_e < 709 else math.inf, a, b, theta0, one_sided)
