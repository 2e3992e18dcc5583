"""Anytime-valid latency tests on Prometheus histogram buckets.

Two count-based tests reuse the rate-ratio e-process of `sequential` (docs/statistics.md §7):

- `slow_counts`: per interval, the canary's and baseline's requests slower than a threshold (a bucket
  bound) and the canary's share of requests. Feed them to `sequential.ratio_eprocess` (or the incremental
  `update_ratio`): the test is then on the ratio of "slow" rates, canary / baseline.
- `bucket_eprocess` / `update_buckets`: the same test at several thresholds at once, combined by averaging
  the e-values (Vovk & Wang 2021), so a shift anywhere in the distribution is caught with one α. The average
  is a test martingale when both arms have the same latency distribution (the A/A case a false rollback
  comes from); each single-threshold process is also valid for its own composite null (slow-rate ratio
  <= 1 + margin).

The quantile comparison with time-uniform bands is in `quantile_band`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gatekeeper.stats import _check
from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.histogram import parse_le
from gatekeeper.stats.sequential import RatioState, new_ratio_state, update_ratio

__all__ = [
    "BucketSequentialResult",
    "BucketState",
    "bucket_eprocess",
    "new_bucket_state",
    "slow_counts",
    "update_buckets",
]


def _per_interval(le: Sequence[str | float], buckets: Any, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted bounds and a (intervals × bounds) array of cumulative bucket increases."""
    bounds = parse_le(le)
    arr = np.asarray(buckets, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != bounds.size:
        raise StatsInputError(
            field,
            f"has shape {arr.shape} for {bounds.size} bounds",
            "pass one row per interval with one cumulative count per `le`",
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise StatsInputError(field, "has a negative, NaN or Inf count", "pass bucket increases >= 0")
    if not math.isinf(bounds.max()):
        raise StatsInputError("le", "has no +Inf bucket", 'include the le="+Inf" series')
    order = np.argsort(bounds, kind="stable")
    return bounds[order], np.maximum.accumulate(np.rint(arr[:, order]), axis=1)


def _tails(bounds: np.ndarray, cum: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(bounds, thresholds)
    tails: np.ndarray = cum[:, -1:] - cum[:, idx]
    return tails


def _thresholds(bounds: np.ndarray, thresholds: Sequence[float] | None) -> np.ndarray:
    finite = bounds[np.isfinite(bounds)]
    chosen = finite if thresholds is None else np.asarray(thresholds, dtype=float)
    if chosen.size == 0 or not np.all(np.isin(chosen, finite)):
        listed = ", ".join(f"{x:g}" for x in finite)
        raise StatsInputError(
            "thresholds",
            f"{thresholds!r} are not all finite bucket bounds",
            f"choose among the `le` bounds ({listed})",
        )
    return chosen


def slow_counts(
    *, le: Sequence[str | float], canary_buckets: Any, baseline_buckets: Any, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(canary_slow, baseline_slow, canary_share, canary_requests) per interval for a bucket-bound threshold.

    Intervals where neither arm had requests get share 0.5 and no events (they change nothing).
    """
    bounds, cc = _per_interval(le, canary_buckets, "canary_buckets")
    _, bc = _per_interval(le, baseline_buckets, "baseline_buckets")
    if cc.shape != bc.shape:
        raise StatsInputError(
            "baseline_buckets",
            "has a different number of intervals than canary_buckets",
            "align both arms on the same steps",
        )
    th = _thresholds(bounds, [threshold])
    c_slow, b_slow = _tails(bounds, cc, th)[:, 0], _tails(bounds, bc, th)[:, 0]
    nc, nb = cc[:, -1], bc[:, -1]
    total = nc + nb
    share = np.divide(nc, total, out=np.full(nc.shape, 0.5), where=total > 0)
    return c_slow, b_slow, share, nc


@dataclass(frozen=True)
class BucketState:
    """One `RatioState` per threshold plus the running maximum of the averaged log e-value."""

    thresholds: tuple[float, ...]
    states: tuple[RatioState, ...]
    max_log_e: float
    crossed_at: int | None

    @property
    def alpha(self) -> float:
        return self.states[0].alpha

    @property
    def log_e(self) -> float:
        logs = np.array([s.log_e for s in self.states])
        top = logs.max()
        return float(top + math.log(np.mean(np.exp(logs - top))))

    @property
    def e_value(self) -> float:
        return math.exp(self.log_e) if self.log_e < 709 else math.inf

    @property
    def crossed(self) -> bool:
        return self.crossed_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": list(self.thresholds),
            "states": [s.to_dict() for s in self.states],
            "max_log_e": self.max_log_e,
            "crossed_at": self.crossed_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BucketState:
        states = tuple(RatioState.from_dict(s) for s in data["states"])
        return cls(
            tuple(map(float, data["thresholds"])), states, float(data["max_log_e"]), data.get("crossed_at")
        )


def new_bucket_state(
    *, le: Sequence[str | float], alpha: float, margin: float = 0.0, thresholds: Sequence[float] | None = None
) -> BucketState:
    bounds = np.sort(parse_le(le))
    th = _thresholds(bounds, thresholds)
    state = new_ratio_state(alpha=alpha, margin=margin)
    return BucketState(tuple(map(float, th)), (state,) * th.size, 0.0, None)


def update_buckets(
    state: BucketState, *, le: Sequence[str | float], canary_cumulative: Any, baseline_cumulative: Any
) -> BucketState:
    """Advance by one interval of cumulative bucket increases (one value per `le`) for each arm."""
    bounds, cc = _per_interval(le, canary_cumulative, "canary_cumulative")
    _, bc = _per_interval(le, baseline_cumulative, "baseline_cumulative")
    if cc.shape[0] != 1 or bc.shape[0] != 1:
        raise StatsInputError("canary_cumulative", "holds more than one interval", "pass one row per update")
    return _advance(state, bounds, cc[0], bc[0])


def _advance(state: BucketState, bounds: np.ndarray, cc: np.ndarray, bc: np.ndarray) -> BucketState:
    th = np.asarray(state.thresholds)
    c_slow, b_slow = _tails(bounds, cc[None, :], th)[0], _tails(bounds, bc[None, :], th)[0]
    total = cc[-1] + bc[-1]
    share = cc[-1] / total if total > 0 else 0.5
    states = tuple(
        update_ratio(s, canary_bad=int(c), baseline_bad=int(b), canary_share=share)
        for s, c, b in zip(state.states, c_slow, b_slow, strict=True)
    )
    new = replace(state, states=states)
    log_e = new.log_e
    crossed_at = state.crossed_at
    if crossed_at is None and log_e >= math.log(1.0 / new.alpha):
        crossed_at = states[0].intervals - 1
    return replace(new, max_log_e=max(state.max_log_e, log_e), crossed_at=crossed_at)


@dataclass(frozen=True)
class BucketSequentialResult:
    """Averaged e-value across thresholds, its path, and the per-threshold states (bounds, estimates)."""

    e_value: float
    log_e: float
    log_path: np.ndarray
    crossed_at: int | None
    threshold: float
    worst_threshold: float
    state: BucketState

    @property
    def crossed(self) -> bool:
        return self.crossed_at is not None


def bucket_eprocess(
    *,
    le: Sequence[str | float],
    canary_buckets: Any,
    baseline_buckets: Any,
    alpha: float,
    margin: float = 0.0,
    thresholds: Sequence[float] | None = None,
) -> BucketSequentialResult:
    """Batch form of `update_buckets` over (intervals × bounds) arrays; agrees exactly with it."""
    bounds, cc = _per_interval(le, canary_buckets, "canary_buckets")
    _, bc = _per_interval(le, baseline_buckets, "baseline_buckets")
    if cc.shape != bc.shape:
        raise StatsInputError(
            "baseline_buckets",
            "has a different number of intervals than canary_buckets",
            "align both arms on the same steps",
        )
    _check.alpha(alpha)
    state = new_bucket_state(le=le, alpha=alpha, margin=margin, thresholds=thresholds)
    log_path = np.empty(cc.shape[0])
    for k in range(cc.shape[0]):
        state = _advance(state, bounds, cc[k], bc[k])
        log_path[k] = state.log_e
    worst = int(np.argmax([s.log_e for s in state.states]))
    log_e = state.log_e
    return BucketSequentialResult(
        e_value=math.exp(log_e) if log_e < 709 else math.inf,
        log_e=log_e,
        log_path=log_path,
        crossed_at=state.crossed_at,
        threshold=1.0 / state.alpha,
        worst_threshold=state.thresholds[worst],
        state=state,
    )
