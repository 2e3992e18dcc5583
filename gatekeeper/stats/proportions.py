"""Fixed-horizon test for a ratio signal: is the canary's bad-event rate above the baseline's?

Conditional on the total number of bad events m = c + b, each bad event is a canary one with probability
θ(r) = ρr / (ρr + 1 − ρ), where ρ = n_c / (n_c + n_b) is the canary's share of requests and r the rate ratio
(canary rate / baseline rate). The exact test of H0: r <= 1 + margin is then a one-sided binomial test of
c ~ Binomial(m, θ(1 + margin)), and inverting two one-sided tests gives the exact (Clopper–Pearson) interval
for r. This is R's two-sample `poisson.test` (the "comparison of Poisson rates") and the test of
Lindon & Malek (2022) without the sequential layer. With `method="hypergeometric"` (margin 0 only) the
p-value is Fisher's exact test on the 2×2 table instead, which conditions on both margins.

References: R `stats::poisson.test`; Clopper & Pearson (1934), Biometrika 26(4); Fisher (1935).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats

from gatekeeper.stats import _check
from gatekeeper.stats.errors import StatsInputError

__all__ = ["ProportionTest", "conditional_binomial_test", "ratio_from_share"]


@dataclass(frozen=True)
class ProportionTest:
    """Result of `conditional_binomial_test`.

    `p_value` is one-sided for H0: r <= 1 + margin. `ratio` is the rate ratio estimate (None when neither arm
    had a bad event, inf when only the canary had). `ratio_lower`/`ratio_upper` is the two-sided exact
    interval at `confidence` (0 and inf when the data cannot bound it). `p_value_two_sided` is R's
    `poisson.test` two-sided p-value for r = 1 + margin, kept for comparison with R output.
    """

    p_value: float
    p_value_two_sided: float
    ratio: float | None
    ratio_lower: float
    ratio_upper: float
    confidence: float
    margin: float
    canary_bad: int
    canary_total: int
    baseline_bad: int
    baseline_total: int
    events: int
    canary_share: float
    null_probability: float
    expected_canary_bad: float
    method: str


def ratio_from_share(theta: float, share: float) -> float:
    """Map the canary's share θ of bad events back to the rate ratio r (inverse of θ(r))."""
    if theta <= 0.0:
        return 0.0
    if theta >= 1.0:
        return math.inf
    return theta / (1.0 - theta) * (1.0 - share) / share


def conditional_binomial_test(
    *,
    canary_bad: int,
    canary_total: int,
    baseline_bad: int,
    baseline_total: int,
    margin: float = 0.0,
    confidence: float = 0.95,
    method: Literal["binomial", "hypergeometric"] = "binomial",
) -> ProportionTest:
    """Exact one-sided test of H0: canary rate <= (1 + margin) · baseline rate, conditional on all bad events.

    Parameters are whole counts: bad events and requests per arm over the same window. With no bad events at
    all the p-value is 1 and the interval is [0, inf): no evidence either way, never a pass by itself.

    Examples
    --------
    R's `poisson.test(c(11, 21), c(800, 3011))` (the eba1977 example in `?poisson.test`):

    >>> t = conditional_binomial_test(canary_bad=11, canary_total=800, baseline_bad=21, baseline_total=3011)
    >>> round(t.ratio, 6), round(t.ratio_lower, 7), round(t.ratio_upper, 7), round(t.p_value_two_sided, 5)
    (1.971488, 0.8584264, 4.2772659, 0.07967)
    """
    c = _check.count(canary_bad, field="canary_bad")
    nc = _check.count(canary_total, field="canary_total")
    b = _check.count(baseline_bad, field="baseline_bad")
    nb = _check.count(baseline_total, field="baseline_total")
    margin = _check.nonneg(margin, field="margin")
    conf = _check.alpha(confidence, field="confidence")
    if c > nc:
        raise StatsInputError(
            "canary_bad", f"{c} bad events exceed {nc} requests", "pass bad <= total per arm"
        )
    if b > nb:
        raise StatsInputError(
            "baseline_bad", f"{b} bad events exceed {nb} requests", "pass bad <= total per arm"
        )
    if nc == 0 or nb == 0:
        which = "canary_total" if nc == 0 else "baseline_total"
        raise StatsInputError(which, "is 0: that arm served no requests", "report NODATA instead of testing")
    if method not in ("binomial", "hypergeometric"):
        raise StatsInputError("method", f"unknown method {method!r}", "use 'binomial' or 'hypergeometric'")
    if method == "hypergeometric" and margin != 0.0:
        raise StatsInputError(
            "margin", "Fisher's test only tests r = 1", "use method='binomial' with a margin"
        )

    share = nc / (nc + nb)
    r0 = 1.0 + margin
    theta0 = share * r0 / (share * r0 + 1.0 - share)
    m = c + b
    if m == 0:
        p_one, p_two = 1.0, 1.0
    elif method == "binomial":
        p_one = float(stats.binom.sf(c - 1, m, theta0))
        p_two = float(stats.binomtest(c, m, theta0, alternative="two-sided").pvalue)
    else:
        table = [[c, nc - c], [b, nb - b]]
        p_one = float(stats.fisher_exact(table, alternative="greater").pvalue)
        p_two = float(stats.fisher_exact(table, alternative="two-sided").pvalue)
    lo, hi = _clopper_pearson(c, m, 1.0 - conf)
    return ProportionTest(
        p_value=min(p_one, 1.0),
        p_value_two_sided=min(p_two, 1.0),
        ratio=_ratio(c, nc, b, nb),
        ratio_lower=ratio_from_share(lo, share),
        ratio_upper=ratio_from_share(hi, share),
        confidence=conf,
        margin=margin,
        canary_bad=c,
        canary_total=nc,
        baseline_bad=b,
        baseline_total=nb,
        events=m,
        canary_share=share,
        null_probability=theta0,
        expected_canary_bad=m * theta0,
        method=method,
    )


def _clopper_pearson(k: int, n: int, a: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def _ratio(c: int, nc: int, b: int, nb: int) -> float | None:
    if b == 0:
        return None if c == 0 else math.inf
    return (c / nc) / (b / nb)
