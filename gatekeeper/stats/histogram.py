"""Latency from Prometheus histogram buckets: PromQL-style quantiles and a fixed-horizon arm comparison.

Inputs are what `sum by (le) (increase(x_bucket[w]))` returns: cumulative counts per upper bound `le`
(strings like "0.25" and "+Inf" or floats), the last bound +Inf. `quantile_from_buckets` reproduces
PromQL's `histogram_quantile` for classic buckets exactly (sorting, merging equal bounds, the 1e-12
precision fix, forced monotonicity, linear interpolation, 0 as the natural lower bound, the +Inf bucket
answered with the highest finite bound). `compare_buckets` tests whether the canary is slower: the share of
requests slower than a threshold (an exact conditional binomial test, `proportions`) and a Mann–Whitney
rank test on the bucketed requests (ties = same bucket), with the common-language effect size.

References: prometheus/prometheus promql/quantile.go (`bucketQuantile`, `histogramFraction`);
Mann & Whitney (1947) with the tie correction of Lehmann (1975), §1.4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.proportions import ProportionTest, conditional_binomial_test

__all__ = [
    "BucketComparison",
    "Buckets",
    "compare_buckets",
    "count_above",
    "fraction_above",
    "parse_le",
    "per_bucket_counts",
    "quantile_from_buckets",
]


@dataclass(frozen=True)
class Buckets:
    """A normalised classic histogram: sorted unique bounds (last +Inf) and cumulative counts."""

    le: np.ndarray
    cumulative: np.ndarray
    forced_monotonic: bool

    @property
    def counts(self) -> np.ndarray:
        """Observations per bucket (le[i-1], le[i]]."""
        return np.diff(self.cumulative, prepend=0.0)

    @property
    def total(self) -> float:
        return float(self.cumulative[-1]) if self.cumulative.size else 0.0


#: bucket upper bounds (`le` label values or numbers) and cumulative counts, as lists or arrays
Bounds = Sequence[str | float] | np.ndarray
Counts = Sequence[float] | np.ndarray


def parse_le(le: Bounds) -> np.ndarray:
    try:
        bounds = np.array([float(x) for x in le], dtype=float)
    except (TypeError, ValueError):
        raise StatsInputError(
            "le",
            f"{list(le)!r} has a bound that is not a number",
            "pass the `le` label values, e.g. ['0.1', '0.5', '+Inf']",
        ) from None
    if bounds.ndim != 1 or bounds.size == 0 or np.any(np.isnan(bounds)):
        raise StatsInputError("le", "is empty or has NaN", "pass the `le` label values of the buckets")
    return bounds


def per_bucket_counts(*, le: Bounds, cumulative: Counts) -> Buckets:
    """Sort by bound, merge equal bounds, fix precision errors and force monotonic counts (as PromQL does)."""
    bounds = parse_le(le)
    values = np.asarray(cumulative, dtype=float)
    if values.shape != bounds.shape:
        raise StatsInputError(
            "cumulative",
            f"has {values.size} values for {bounds.size} bounds",
            "pass one cumulative count per `le`",
        )
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise StatsInputError("cumulative", "has a negative, NaN or Inf count", "pass bucket increases >= 0")
    if not math.isinf(bounds.max()) or bounds.max() < 0:
        raise StatsInputError("le", "has no +Inf bucket", 'include the le="+Inf" series')
    order = np.argsort(bounds, kind="stable")
    bounds, values = bounds[order], values[order]
    uniq, start = np.unique(bounds, return_index=True)
    merged = np.add.reduceat(values, start)
    merged = _fix_precision(merged, 1e-12)
    forced = bool(np.any(np.diff(merged) < 0))
    return Buckets(le=uniq, cumulative=np.maximum.accumulate(merged), forced_monotonic=forced)


def _fix_precision(values: np.ndarray, tolerance: float) -> np.ndarray:
    out = values.copy()
    prev = out[0]
    for i in range(1, out.size):
        delta = abs(out[i] - prev)
        if delta == 0:
            continue
        if delta / out[i] <= tolerance:
            out[i] = prev
        else:
            prev = out[i]
    return out


def quantile_from_buckets(q: float, *, le: Bounds, cumulative: Counts) -> float:
    """PromQL `histogram_quantile(q, ...)` for one classic histogram. NaN when it has no observations."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    h = per_bucket_counts(le=le, cumulative=cumulative)
    if h.le.size < 2 or h.total == 0:
        return math.nan
    rank = q * h.total
    b = int(np.searchsorted(h.cumulative[:-1], rank, side="left"))
    if b == h.le.size - 1:
        return float(h.le[-2])
    if b == 0 and h.le[0] <= 0:
        return float(h.le[0])
    start, count = 0.0, h.cumulative[b]
    if b > 0:
        start = h.le[b - 1]
        count -= h.cumulative[b - 1]
        rank -= h.cumulative[b - 1]
    return float(start + (h.le[b] - start) * (rank / count))


def fraction_above(threshold: float, *, le: Sequence[str | float], cumulative: Sequence[float]) -> float:
    """Share of observations slower than `threshold`, interpolating linearly inside a bucket like PromQL's
    `histogram_fraction`; exact when `threshold` is a bucket bound. NaN without observations."""
    h = per_bucket_counts(le=le, cumulative=cumulative)
    if h.total == 0:
        return math.nan
    return 1.0 - _cdf(h, float(threshold)) / h.total


def _cdf(h: Buckets, x: float) -> float:
    i = int(np.searchsorted(h.le, x, side="left"))  # first bound >= x
    if i < h.le.size and h.le[i] == x:
        return float(h.cumulative[i])
    if i >= h.le.size - 1:  # beyond the highest finite bound: the +Inf bucket cannot be interpolated
        return float(h.cumulative[-2]) if h.le.size > 1 else 0.0
    lower = h.le[i - 1] if i > 0 else (0.0 if h.le[0] > 0 else -math.inf)
    below = h.cumulative[i - 1] if i > 0 else 0.0
    if not math.isfinite(lower) or x <= lower:
        return float(below)
    return float(below + (h.cumulative[i] - below) * (x - lower) / (h.le[i] - lower))


def count_above(threshold: float, *, le: Sequence[str | float], cumulative: Sequence[float]) -> float:
    """Observations slower than `threshold`, which must be one of the bucket bounds (no interpolation)."""
    h = per_bucket_counts(le=le, cumulative=cumulative)
    hits = np.flatnonzero(h.le == float(threshold))
    if hits.size == 0 or math.isinf(threshold):
        finite = ", ".join(f"{x:g}" for x in h.le[:-1])
        raise StatsInputError(
            "threshold",
            f"{threshold!r} is not a bucket bound",
            f"choose one of the `le` bounds ({finite}) so counts are exact",
        )
    return float(h.total - h.cumulative[hits[0]])


@dataclass(frozen=True)
class BucketComparison:
    """Fixed-horizon comparison of canary vs baseline latency buckets.

    `slow_test` tests H0: canary slow share <= (1 + margin) · baseline slow share (None without a threshold
    or when an arm has no requests). `u`, `z`, `p_value_slower` and `cles` come from the one-sided
    Mann–Whitney test that canary latencies are stochastically larger (buckets as tied ranks), with
    continuity and tie corrections; `cles` = P(canary slower) + ½ P(same bucket).
    """

    canary_total: float
    baseline_total: float
    quantile: float | None
    canary_quantile: float | None
    baseline_quantile: float | None
    threshold: float | None
    canary_fraction_above: float | None
    baseline_fraction_above: float | None
    slow_test: ProportionTest | None
    u: float
    z: float
    p_value_slower: float
    cles: float
    forced_monotonic: bool


def compare_buckets(
    *,
    le: Sequence[str | float],
    canary_counts: Sequence[float],
    baseline_counts: Sequence[float],
    threshold: float | None = None,
    quantile: float | None = None,
    margin: float = 0.0,
    confidence: float = 0.95,
) -> BucketComparison:
    """Compare two arms' cumulative bucket counts over the same window.

    Counts from `increase()` can be fractional (extrapolation); quantiles use them as they are, the tests
    round them to whole requests.
    """
    canary = per_bucket_counts(le=le, cumulative=canary_counts)
    base = per_bucket_counts(le=le, cumulative=baseline_counts)
    q_c = q_b = None
    if quantile is not None:
        q_c = quantile_from_buckets(quantile, le=le, cumulative=canary_counts)
        q_b = quantile_from_buckets(quantile, le=le, cumulative=baseline_counts)
    f_c = f_b = None
    slow = None
    if threshold is not None:
        f_c = fraction_above(threshold, le=le, cumulative=canary_counts) if canary.total else None
        f_b = fraction_above(threshold, le=le, cumulative=baseline_counts) if base.total else None
        slow_c = round(count_above(threshold, le=le, cumulative=canary_counts))
        slow_b = round(count_above(threshold, le=le, cumulative=baseline_counts))
        n_c, n_b = round(canary.total), round(base.total)
        if n_c > 0 and n_b > 0:
            slow = conditional_binomial_test(
                canary_bad=slow_c,
                canary_total=n_c,
                baseline_bad=slow_b,
                baseline_total=n_b,
                margin=margin,
                confidence=confidence,
            )
    u, z, p, cles = _rank_test(np.rint(canary.counts), np.rint(base.counts))
    return BucketComparison(
        canary_total=canary.total,
        baseline_total=base.total,
        quantile=quantile,
        canary_quantile=q_c,
        baseline_quantile=q_b,
        threshold=threshold,
        canary_fraction_above=f_c,
        baseline_fraction_above=f_b,
        slow_test=slow,
        u=u,
        z=z,
        p_value_slower=p,
        cles=cles,
        forced_monotonic=canary.forced_monotonic or base.forced_monotonic,
    )


def _rank_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """One-sided Mann–Whitney from per-bucket counts (a = canary, b = baseline), O(buckets)."""
    n, m = float(a.sum()), float(b.sum())
    if n == 0 or m == 0:
        return math.nan, math.nan, 1.0, math.nan
    below_b = np.cumsum(b) - b
    u = float(np.sum(a * (below_b + 0.5 * b)))
    t = a + b
    total = n + m
    var = n * m / 12.0 * ((total + 1) - float(np.sum(t**3 - t)) / (total * (total - 1)))
    if var <= 0:
        return u, 0.0, 1.0, u / (n * m)
    z = (u - n * m / 2 - 0.5) / math.sqrt(var)
    return u, z, float(stats.norm.sf(z)), u / (n * m)
