"""How many canary requests a sequential ratio test needs: for the INCONCLUSIVE message and for planning stages.

These are first-order (Wald) approximations for the grid-mixture e-process of `sequential`: the log e-value
of alternative j grows by the Kullback–Leibler drift d_j per bad event, so crossing log(1/α) + log(1/w_j)
takes about (log(1/α) + log(1/w_j)) / d_j events; the best j wins. Bad events per canary request are
p_b·(r + (1 − ρ)/ρ) with p_b the baseline's bad-event rate and ρ the canary share. Overshoot at look
boundaries is ignored, so real runs need somewhat more (bench/detection.py measures how much).

Reference: Wald (1945), "Sequential tests of statistical hypotheses", Ann. Math. Statist. 16(2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from gatekeeper.stats import _check
from gatekeeper.stats._ratio_math import DEFAULT_GRID, DEFAULT_WEIGHTS
from gatekeeper.stats.errors import StatsInputError

__all__ = [
    "fixed_noninferiority_requests",
    "requests_needed",
    "requests_to_detect",
    "share_probability",
    "silence_requests",
]


def share_probability(ratio: float | np.ndarray, share: float) -> np.ndarray:
    """θ(r) = ρr / (ρr + 1 − ρ): the chance that a bad event is the canary's (an array of `ratio`'s shape)."""
    theta: np.ndarray = share * np.asarray(ratio) / (share * np.asarray(ratio) + 1.0 - share)
    return theta


def _drift(theta: float, theta_alt: np.ndarray, theta_null: float) -> np.ndarray:
    return theta * np.log(theta_alt / theta_null) + (1 - theta) * np.log((1 - theta_alt) / (1 - theta_null))


def _events(theta: float, alts: np.ndarray, null: float, share: float, alpha: float, w: np.ndarray) -> float:
    d = _drift(theta, share_probability(alts, share), float(share_probability(null, share)))
    need = np.where(d > 0, (math.log(1 / alpha) - np.log(w)) / np.where(d > 0, d, 1.0), np.inf)
    return float(np.min(need))


def _inputs(baseline_rate: float, canary_share: float, alpha: float) -> tuple[float, float, float]:
    p = float(baseline_rate)
    if not (0 < p <= 1):
        raise StatsInputError(
            "baseline_rate",
            f"{baseline_rate!r} is not in (0, 1]",
            "estimate it from the baseline's bad events / requests (needs at least one event)",
        )
    rho = float(canary_share)
    if not (0 < rho < 1):
        raise StatsInputError(
            "canary_share",
            f"{canary_share!r} is not strictly between 0 and 1",
            "pass the canary's traffic share",
        )
    return p, rho, _check.alpha(alpha)


def requests_to_detect(
    *,
    baseline_rate: float,
    canary_share: float,
    ratio: float,
    alpha: float,
    margin: float = 0.0,
    grid: Sequence[float] | None = None,
    weights: Sequence[float] | None = None,
) -> float:
    """Approximate canary requests until FAIL when the true rate ratio is `ratio` (> 1 + margin); inf if never."""
    p, rho, a = _inputs(baseline_rate, canary_share, alpha)
    g = _check.ratio_grid(grid, DEFAULT_GRID, field="grid")
    w = _check.weights(DEFAULT_WEIGHTS if weights is None and grid is None else weights, size=g.size)
    r0 = 1.0 + _check.nonneg(margin, field="margin")
    if ratio <= r0:
        return math.inf
    events = _events(float(share_probability(ratio, rho)), r0 * g, r0, rho, a, w)
    return events / (p * (ratio + (1 - rho) / rho))


def requests_needed(
    *,
    baseline_rate: float,
    canary_share: float,
    limit: float,
    alpha: float = 0.01,
    ratio: float = 1.0,
) -> float | None:
    """Approximate total canary requests until the safety e-process at `limit` reaches 1/α (the upper bound
    of the confidence sequence falls below `limit`: a PASS).

    `ratio` is the assumed true rate ratio (1: the canary is as good as the baseline). None when it cannot
    happen (ratio >= limit). Subtract the canary requests already served to get "how many more".
    """
    p, rho, a = _inputs(baseline_rate, canary_share, alpha)
    g, w = np.asarray(DEFAULT_GRID), np.asarray(DEFAULT_WEIGHTS)
    if not (limit > 0 and ratio > 0) or ratio >= limit:
        return None
    events = _events(float(share_probability(ratio, rho)), limit / g, limit, rho, a, w)
    if math.isinf(events):
        return None
    return events / (p * (ratio + (1 - rho) / rho))


def silence_requests(*, detectable_rate: float, alpha: float) -> int:
    """Canary requests after which zero bad events rules out a bad-event rate of `detectable_rate` or more.

    With rate p >= f, P(no event in n requests) <= (1 − f)^n <= exp(−f·n) (Bernoulli or Poisson), which is at
    most α once n >= log(1/α) / f. The event "no bad event yet" only shrinks as requests accrue, so checking
    it at every look spends α once: the first look past n decides, and any later look can only see fewer
    silent runs. (The "rule of three" is the α = 0.05 case: 3/n.)
    """
    f = float(detectable_rate)
    if not (f > 0 and math.isfinite(f)):
        raise StatsInputError(
            "detectable_rate", f"{detectable_rate!r} is not a positive rate", "pass e.g. 0.001 (0.1 %)"
        )
    a = _check.alpha(alpha)
    return math.ceil(math.log(1.0 / a) / f)


def fixed_noninferiority_requests(
    *, baseline_rate: float, canary_share: float, limit: float, alpha: float, power: float = 0.8
) -> float:
    """Canary requests a fixed-horizon one-sided test of H0: r >= `limit` needs to reject it with `power` when
    the arms are equal (r = 1), by the normal approximation to the conditional binomial: the reference the
    sequential test's time to PASS is compared with (Chow, Shao & Wang (2008), "Sample size calculations in
    clinical research", §4.2, one-sample proportion non-inferiority)."""
    from scipy import stats

    p, rho, a = _inputs(baseline_rate, canary_share, alpha)
    if not limit > 1.0:
        raise StatsInputError("limit", f"{limit!r} is not above 1", "pass 1 + tolerance")
    theta0 = float(share_probability(limit, rho))
    theta1 = rho
    za, zb = stats.norm.ppf(1.0 - a), stats.norm.ppf(power)
    m = (
        (za * math.sqrt(theta0 * (1 - theta0)) + zb * math.sqrt(theta1 * (1 - theta1))) / (theta0 - theta1)
    ) ** 2
    return float(m * rho / p)
