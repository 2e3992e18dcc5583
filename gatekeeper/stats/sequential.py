"""Anytime-valid test of a count signal's rate ratio: the conditional "which arm" e-process.

Per interval k the canary has c_k bad events, the baseline b_k, and the canary's share of traffic is ρ_k.
Given m_k = c_k + b_k, each bad event is a canary one with probability θ_k(r) = ρ_k r / (ρ_k r + 1 − ρ_k),
r being the rate ratio canary / baseline. The harm e-process against H0: r <= r0 = 1 + margin mixes the
likelihood ratios of a grid of alternatives r0·g_j (weights w_j):

    E_K = Σ_j w_j Π_{k<=K} [θ_k(r0 g_j)/θ_k(r0)]^{c_k} [(1 − θ_k(r0 g_j))/(1 − θ_k(r0))]^{b_k}.

Each factor has conditional mean <= 1 for every r <= r0, whatever ρ_k does between intervals (stages, traffic
peaks), so E is a test supermartingale and P(E ever >= 1/α) <= α (Ville). The shared base rate cancels,
so a payment provider failing for both arms moves neither. The confidence sequence for r inverts the same
mixtures on a lattice of ratios, with its own alternatives close to each candidate (see `_ratio_math`), so
FAIL (harm e-process) and the lower bound come from different mixtures: both are valid at level α.

The batch function and the incremental state run the same per-interval update, so they agree exactly.
The state is a frozen dataclass of plain numbers with `to_dict`/`from_dict` for a controller's status.

References: Lindon & Malek (2022), "Anytime-valid inference for multinomial count data", NeurIPS;
Lindon, Sanden, Shirikian et al. (2022), "Rapid regression detection in software deployments through
sequential testing", KDD; Ville (1939); Ramdas, Grünwald, Vovk & Shafer (2023), "Game-theoretic statistics
and safe anytime-valid inference", Statistical Science.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from gatekeeper.stats import _check
from gatekeeper.stats import _ratio_math as rm
from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.planning import requests_needed, requests_to_detect

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_WEIGHTS",
    "RatioSequentialResult",
    "RatioState",
    "new_ratio_state",
    "ratio_eprocess",
    "requests_needed",
    "requests_to_detect",
    "update_ratio",
]

DEFAULT_GRID = rm.DEFAULT_GRID
DEFAULT_WEIGHTS = rm.DEFAULT_WEIGHTS
_STATE_VERSION = 1


@dataclass(frozen=True)
class RatioState:
    """Everything the e-process needs to continue, as plain numbers (a few KB of JSON).

    `harm_llr[j]` is the log likelihood ratio of r0·grid[j] against r0 so far; `support_f` is F on the
    confidence lattice; `max_log_e` the running maximum of the harm log e-value (a FAIL stays a FAIL).
    Build one with `new_ratio_state`, advance it with `update_ratio`.
    """

    alpha: float
    margin: float
    grid: tuple[float, ...]
    weights: tuple[float, ...]
    harm_llr: tuple[float, ...]
    support_f: tuple[float, ...]
    max_log_e: float
    canary_bad: int
    baseline_bad: int
    intervals: int
    crossed_at: int | None

    @property
    def threshold(self) -> float:
        return 1.0 / self.alpha

    @property
    def events(self) -> int:
        return self.canary_bad + self.baseline_bad

    @property
    def log_e(self) -> float:
        return _logsumexp([math.log(w) + h for w, h in zip(self.weights, self.harm_llr, strict=True)])

    @property
    def e_value(self) -> float:
        return _exp(self.log_e)

    @property
    def max_e_value(self) -> float:
        return _exp(self.max_log_e)

    @property
    def crossed(self) -> bool:
        return self.crossed_at is not None

    @property
    def ratio_bounds(self) -> tuple[float, float]:
        return rm.confidence_bounds(np.asarray(self.support_f), math.log(self.threshold))

    @property
    def ratio_lower(self) -> float:
        return self.ratio_bounds[0]

    @property
    def ratio_upper(self) -> float:
        return self.ratio_bounds[1]

    @property
    def estimate(self) -> float | None:
        return rm.point_estimate(np.asarray(self.support_f), self.canary_bad, self.baseline_bad)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "alpha": self.alpha,
            "margin": self.margin,
            "grid": list(self.grid),
            "weights": list(self.weights),
            "harm_llr": list(self.harm_llr),
            "support_f": list(self.support_f),
            "max_log_e": self.max_log_e,
            "canary_bad": self.canary_bad,
            "baseline_bad": self.baseline_bad,
            "intervals": self.intervals,
            "crossed_at": self.crossed_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RatioState:
        if data.get("version") != _STATE_VERSION:
            raise StatsInputError(
                "version",
                f"state version {data.get('version')!r} is not {_STATE_VERSION}",
                "start a new state with new_ratio_state()",
            )
        fresh = new_ratio_state(
            alpha=data["alpha"], margin=data["margin"], grid=data["grid"], weights=data["weights"]
        )
        harm, support = tuple(map(float, data["harm_llr"])), tuple(map(float, data["support_f"]))
        if len(harm) != len(fresh.harm_llr) or len(support) != len(fresh.support_f):
            raise StatsInputError("harm_llr", "has the wrong length for its grid", "start a new state")
        return replace(
            fresh,
            harm_llr=harm,
            support_f=support,
            max_log_e=float(data["max_log_e"]),
            canary_bad=int(data["canary_bad"]),
            baseline_bad=int(data["baseline_bad"]),
            intervals=int(data["intervals"]),
            crossed_at=data.get("crossed_at"),
        )


@dataclass(frozen=True)
class RatioSequentialResult:
    """Result of `ratio_eprocess` over a whole series of intervals.

    `e_value`/`log_e` are the harm e-process now; `path`/`log_path` one value per interval; `max_e_value` and
    `crossed_at` (first interval index with E >= 1/α, or None) make a FAIL sticky. `ratio_lower` /
    `ratio_upper` are the current one-sided bounds of the confidence sequence, each at level α (r > lower,
    r < upper; 0 and inf when unbounded). `estimate` is the conditional MLE of r (None without events).
    """

    e_value: float
    log_e: float
    max_e_value: float
    path: np.ndarray
    log_path: np.ndarray
    crossed_at: int | None
    threshold: float
    alpha: float
    margin: float
    ratio_lower: float
    ratio_upper: float
    estimate: float | None
    canary_bad: int
    baseline_bad: int
    events: int
    intervals: int
    state: RatioState

    @property
    def crossed(self) -> bool:
        return self.crossed_at is not None

    @property
    def max_log_e(self) -> float:
        return self.state.max_log_e


def new_ratio_state(
    *,
    alpha: float,
    margin: float = 0.0,
    grid: Sequence[float] | None = None,
    weights: Sequence[float] | None = None,
) -> RatioState:
    """An empty e-process: E = 1, no events, the widest bounds."""
    a = _check.alpha(alpha)
    margin = _check.nonneg(margin, field="margin")
    g = _check.ratio_grid(grid, DEFAULT_GRID, field="grid")
    w = _check.weights(rm.DEFAULT_WEIGHTS if weights is None and grid is None else weights, size=g.size)
    return RatioState(
        alpha=a,
        margin=margin,
        grid=tuple(map(float, g)),
        weights=tuple(map(float, w)),
        harm_llr=(0.0,) * g.size,
        support_f=(0.0,) * rm.SUPPORT.size,
        max_log_e=0.0,
        canary_bad=0,
        baseline_bad=0,
        intervals=0,
        crossed_at=None,
    )


def update_ratio(state: RatioState, *, canary_bad: int, baseline_bad: int, canary_share: float) -> RatioState:
    """Advance the e-process by one interval; returns a new state (the old one is unchanged)."""
    c = _check.count(canary_bad, field="canary_bad")
    b = _check.count(baseline_bad, field="baseline_bad")
    rho = _check.shares([canary_share], field="canary_share", length=1)[0]
    _check_share_consistency(np.array([c]), np.array([b]), np.array([rho]))
    return _advance(state, float(c), float(b), float(rho))[0]


def ratio_eprocess(
    *,
    canary_bad: Sequence[int] | np.ndarray,
    baseline_bad: Sequence[int] | np.ndarray,
    canary_share: Sequence[float] | np.ndarray | float,
    alpha: float,
    margin: float = 0.0,
    grid: Sequence[float] | None = None,
    weights: Sequence[float] | None = None,
) -> RatioSequentialResult:
    """Run the harm e-process and confidence sequence over aligned per-interval arrays.

    `canary_share` is the canary's fraction of requests in each interval (or one number for all). Intervals
    with no bad events change nothing; with no bad events at all E stays 1 and the bounds stay [0, inf).

    Examples
    --------
    >>> r = ratio_eprocess(canary_bad=[3, 5, 4], baseline_bad=[9, 10, 8], canary_share=0.1, alpha=0.01)
    >>> r.crossed, round(r.estimate, 1)
    (True, 4.0)
    """
    c = _check.counts(canary_bad, field="canary_bad")
    b = _check.counts(baseline_bad, field="baseline_bad")
    n = _check.same_length(canary_bad=c, baseline_bad=b)
    rho = _check.shares(canary_share, field="canary_share", length=n)
    _check_share_consistency(c, b, rho)
    state = new_ratio_state(alpha=alpha, margin=margin, grid=grid, weights=weights)
    state, log_path = _advance_many(state, c, b, rho)
    lower, upper = state.ratio_bounds
    log_e = state.log_e
    return RatioSequentialResult(
        e_value=_exp(log_e),
        log_e=log_e,
        max_e_value=state.max_e_value,
        path=np.exp(np.minimum(log_path, 700.0)),
        log_path=log_path,
        crossed_at=state.crossed_at,
        threshold=state.threshold,
        alpha=state.alpha,
        margin=state.margin,
        ratio_lower=lower,
        ratio_upper=upper,
        estimate=state.estimate,
        canary_bad=state.canary_bad,
        baseline_bad=state.baseline_bad,
        events=state.events,
        intervals=n,
        state=state,
    )


@lru_cache(maxsize=32)
def _layout(margin: float, grid: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, int]:
    """Ratios where F is tracked (r0, r0·g_j, then the lattice), their logs, and how many are harm points."""
    r0 = 1.0 + margin
    points = np.concatenate([[r0], r0 * np.asarray(grid), rm.SUPPORT])
    return points, np.log(points), 1 + len(grid)


def _advance(state: RatioState, c: float, b: float, rho: float) -> tuple[RatioState, float]:
    """One interval. Returns the new state and its harm log e-value (computed once, used twice)."""
    log_w = [math.log(w) for w in state.weights]
    if c == 0 and b == 0:  # no bad events: the likelihood ratio of this interval is 1 for every r
        log_e = _logsumexp([lw + h for lw, h in zip(log_w, state.harm_llr, strict=True)])
        return replace(state, intervals=state.intervals + 1), log_e
    points, log_points, n_harm = _layout(state.margin, state.grid)
    f = rm.log_lik_increments(c, b, rho, points, log_ratios=log_points)
    harm = [h + float(x) for h, x in zip(state.harm_llr, f[1:n_harm] - f[0], strict=True)]
    support_f = np.asarray(state.support_f) + f[n_harm:]
    log_e = _logsumexp([lw + h for lw, h in zip(log_w, harm, strict=True)])
    crossed_at = state.crossed_at
    if crossed_at is None and log_e >= math.log(1.0 / state.alpha):
        crossed_at = state.intervals
    new = replace(
        state,
        harm_llr=tuple(harm),
        support_f=tuple(support_f.tolist()),
        max_log_e=max(state.max_log_e, log_e),
        canary_bad=state.canary_bad + int(c),
        baseline_bad=state.baseline_bad + int(b),
        intervals=state.intervals + 1,
        crossed_at=crossed_at,
    )
    return new, log_e


def _advance_many(
    state: RatioState, c: np.ndarray, b: np.ndarray, rho: np.ndarray
) -> tuple[RatioState, np.ndarray]:
    """``_advance`` over every interval at once: the same sums in the same order (cumulative sums seeded with
    the state), so the result equals interval-by-interval updating exactly; only the per-interval mixture is
    a loop (math.exp/log, as ``_advance`` uses)."""
    n = len(c)
    if n == 0:
        return state, np.empty(0)
    points, log_points, n_harm = _layout(state.margin, state.grid)
    cf, bf = c.astype(float), b.astype(float)
    quiet = (cf == 0) & (bf == 0)
    f = rm.log_lik_increments(cf, bf, rho.astype(float), points, log_ratios=log_points)
    f[quiet] = 0.0  # no bad events: this interval changes nothing (adding 0.0 leaves every sum as it was)
    harm = np.cumsum(np.vstack([np.asarray(state.harm_llr)[None, :], f[:, 1:n_harm] - f[:, :1]]), axis=0)[1:]
    support = np.cumsum(np.vstack([np.asarray(state.support_f)[None, :], f[:, n_harm:]]), axis=0)[1:]
    log_w = [math.log(w) for w in state.weights]
    log_path = np.array(
        [_logsumexp([lw + h for lw, h in zip(log_w, row, strict=True)]) for row in harm.tolist()]
    )
    limit = math.log(1.0 / state.alpha)
    crossed_at = state.crossed_at
    if crossed_at is None:
        hits = np.flatnonzero(~quiet & (log_path >= limit))
        crossed_at = state.intervals + int(hits[0]) if len(hits) else None
    moving = log_path[~quiet]
    new = replace(
        state,
        harm_llr=tuple(harm[-1].tolist()),
        support_f=tuple(support[-1].tolist()),
        max_log_e=max(state.max_log_e, float(moving.max())) if len(moving) else state.max_log_e,
        canary_bad=state.canary_bad + int(c.sum()),
        baseline_bad=state.baseline_bad + int(b.sum()),
        intervals=state.intervals + n,
        crossed_at=crossed_at,
    )
    return new, log_path


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    if math.isinf(top):
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


def _check_share_consistency(c: np.ndarray, b: np.ndarray, rho: np.ndarray) -> None:
    if np.any((rho == 0) & (c > 0)):
        raise StatsInputError(
            "canary_share",
            "is 0 in an interval with canary bad events",
            "pass the canary's real traffic share for that interval",
        )
    if np.any((rho == 1) & (b > 0)):
        raise StatsInputError(
            "canary_share",
            "is 1 in an interval with baseline bad events",
            "pass the canary's real traffic share for that interval",
        )


def _exp(log_value: float) -> float:
    return math.exp(log_value) if log_value < 709.0 else math.inf
