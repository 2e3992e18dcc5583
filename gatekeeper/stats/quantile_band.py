"""Time-uniform confidence bands for a CDF and its quantiles (Howard & Ramdas 2022), from histogram buckets.

Theorem 2 of Howard & Ramdas: for i.i.d. observations and any m >= 1, with probability at least 1 − α,
for all t >= m at once,

    sup_x |F̂_t(x) − F(x)| <= A · sqrt( (log(1 + log(t/m)) + C) / t ),

with A = 0.85 and C = C(α, A) the smallest constant whose error bound 4·e^{−γ²C}(1 + 1/((γ² − 1) log η)),
γ² = (2/η)(A − sqrt(2(η − 1)/C))², minimised over the epoch ratio η, equals α (C ≈ 8.12 at α = 0.05,
9.28 at 0.01, 10.94 at 0.001). Because the band holds at every t, a gate may look as often as it likes.

From bucket counts the band brackets each quantile between two bucket bounds. `compare_quantiles` declares a
regression of quantile q when the canary's lower bound is at or above (1 + tolerance) × the baseline's upper
bound (each arm's band at α/2), and non-inferiority when the canary's upper bound is at or below
(1 + tolerance) × the baseline's lower bound.

References: Howard & Ramdas (2022), "Sequential estimation of quantiles with applications to A/B-testing and
best-arm identification", Bernoulli 28(3), Theorem 2 and §7; gostevehoward/confseq (`empirical_process_lil_bound`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize

from gatekeeper.stats import _check
from gatekeeper.stats.decision import Decision
from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.histogram import per_bucket_counts

__all__ = ["QuantileComparison", "cdf_band_radius", "compare_quantiles", "hr_constant", "quantile_bounds"]

HR_A = 0.85


def _error_bound(c: float, eta: float, a: float) -> float:
    gamma_sq = 2.0 / eta * (a - math.sqrt(2.0 * (eta - 1.0) / c)) ** 2
    if gamma_sq <= 1.0:
        return math.inf
    return 4.0 * math.exp(-gamma_sq * c) * (1.0 + 1.0 / ((gamma_sq - 1.0) * math.log(eta)))


def _optimum_error(c: float, a: float) -> float:
    eta_max = optimize.brentq(lambda e: math.sqrt(e / 2) + math.sqrt(2 * (e - 1) / c) - a, 1.0, 2 * a * a)
    res = optimize.minimize_scalar(
        lambda e: _error_bound(c, e, a),
        bounds=(1.0 + 1e-12, eta_max),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(res.fun)


@lru_cache(maxsize=64)
def hr_constant(alpha: float, *, a: float = HR_A) -> float:
    """The constant C(α, A) of Theorem 2, found numerically (cached)."""
    alpha = _check.alpha(alpha)
    lo, hi = 1.0, 5.0
    while _optimum_error(hi, a) > alpha:
        lo, hi = hi, hi * 2
    return float(optimize.brentq(lambda c: _optimum_error(c, a) - alpha, lo, hi, xtol=1e-10))


def cdf_band_radius(t: float, *, alpha: float, t_min: float = 100.0, a: float = HR_A) -> float:
    """Half-width of the time-uniform CDF band after t observations (inf before t_min)."""
    if t_min < 1:
        raise StatsInputError(
            "t_min", f"{t_min!r} is below 1", "pass the first sample size to look at, e.g. 100"
        )
    if t < t_min:
        return math.inf
    return a * math.sqrt((math.log(1.0 + math.log(t / t_min)) + hr_constant(alpha, a=a)) / t)


def quantile_bounds(
    q: float, *, le: Sequence[str | float], cumulative: Sequence[float], alpha: float, t_min: float = 100.0
) -> tuple[float, float]:
    """Bounds (lower, upper) with lower < Q(q) <= upper, at bucket resolution, valid at every t.

    lower is the highest bound whose band-upper CDF is still below q (the natural lower edge, 0 or -inf,
    when none); upper is the lowest bound whose band-lower CDF reaches q (inf when none).
    """
    if not (0.0 < q < 1.0):
        raise StatsInputError("q", f"{q!r} is not strictly between 0 and 1", "pass e.g. 0.99")
    h = per_bucket_counts(le=le, cumulative=cumulative)
    eps = cdf_band_radius(h.total, alpha=alpha, t_min=t_min) if h.total > 0 else math.inf
    if math.isinf(eps):
        return (0.0 if h.le[0] > 0 else -math.inf), math.inf
    cdf = h.cumulative / h.total
    below = np.flatnonzero(cdf + eps < q)
    lower = float(h.le[below[-1]]) if below.size else (0.0 if h.le[0] > 0 else -math.inf)
    reach = np.flatnonzero(cdf - eps >= q)
    upper = float(h.le[reach[0]]) if reach.size else math.inf
    return lower, upper


@dataclass(frozen=True)
class QuantileComparison:
    """Bounds of quantile q per arm and the decision. FAIL = regression; PASS = within tolerance."""

    q: float
    decision: Decision
    reason: str
    canary_lower: float
    canary_upper: float
    baseline_lower: float
    baseline_upper: float
    canary_total: float
    baseline_total: float
    alpha: float


def compare_quantiles(
    q: float,
    *,
    le: Sequence[str | float],
    canary_cumulative: Sequence[float],
    baseline_cumulative: Sequence[float],
    alpha: float,
    tolerance: float = 0.0,
    t_min: float = 100.0,
) -> QuantileComparison:
    """Compare quantile q of the two arms' cumulative-since-start bucket counts; see the module docstring."""
    a = _check.alpha(alpha)
    tol = _check.nonneg(tolerance, field="tolerance")
    cl, cu = quantile_bounds(q, le=le, cumulative=canary_cumulative, alpha=a / 2, t_min=t_min)
    bl, bu = quantile_bounds(q, le=le, cumulative=baseline_cumulative, alpha=a / 2, t_min=t_min)
    nc = per_bucket_counts(le=le, cumulative=canary_cumulative).total
    nb = per_bucket_counts(le=le, cumulative=baseline_cumulative).total
    label = f"p{100 * q:g}"
    if cl >= (1 + tol) * bu and math.isfinite(bu):
        decision = Decision.FAIL
        reason = f"canary {label} > {cl:g} >= {1 + tol:g} x baseline {label} upper bound {bu:g}"
    elif cu <= (1 + tol) * bl and math.isfinite(cu) and bl > 0:
        decision = Decision.PASS
        reason = f"canary {label} <= {cu:g}, within {1 + tol:g} x baseline lower bound {bl:g}"
    else:
        decision = Decision.INCONCLUSIVE
        reason = f"canary {label} in ({cl:g}, {cu:g}], baseline in ({bl:g}, {bu:g}]: bands still overlap"
    return QuantileComparison(q, decision, reason, cl, cu, bl, bu, nc, nb, a)
