"""Anytime-valid test of a count signal's rate ratio: the conditional "which arm" e-process.

Per interval k the canary has c_k bad events, the baseline b_k, and the canary's share of traffic is ρ_k.
Given m_k = c_k + b_k, each bad event is a canary one with probability θ_k(r) = ρ_k r / (ρ_k r + 1 − ρ_k),
r being the rate ratio canary / baseline. Against H0: r <= r0 = 1 + margin the harm e-process mixes the
likelihood ratios of alternatives r0·g_j (weights w_j):

    E_K = Σ_j w_j Π_{k<=K} [θ_k(r0 g_j)/θ_k(r0)]^{c_k} [(1 − θ_k(r0 g_j))/(1 − θ_k(r0))]^{b_k}.

Each factor has conditional mean <= 1 for every r <= r0, whatever ρ_k does between intervals (stages, traffic
peaks), so E is a test supermartingale and P(E ever >= 1/α) <= α (Ville). The shared base rate cancels,
so a payment provider failing for both arms moves neither. The same mixture mirrored (alternatives r0/g_j)
is the safety e-process against H0: r >= r0, whose crossing bounds r below the tolerance (a PASS), and the
same mixture at every point of a lattice of ratios is the confidence sequence (see `_ratio_math`). The state
continues across stages and looks: one error budget per rollout, however many stages and looks it has.

The batch function and the incremental state run the same per-interval update, so they agree exactly.
The state is a frozen dataclass of plain numbers with `to_dict`/`from_dict` (exact, compact) for a status.

References: Lindon & Malek (2022), "Anytime-valid inference for multinomial count data", NeurIPS;
Lindon, Sanden, Shirikian et al. (2022), "Rapid regression detection in software deployments through
sequential testing", KDD; Ville (1939); Howard, Ramdas, McAuliffe & Sekhon (2021), "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist.; Ramdas, Grünwald, Vovk & Shafer (2023),
"Game-theoretic statistics and safe anytime-valid inference", Statistical Science.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
_STATE_VERSION = 2


@dataclass(frozen=True)
class RatioState:
    """Everything the e-process needs to continue, as plain numbers.

    `anchor_f` is F at r0/g_J … r0/g_1, r0, r0·g_1 … r0·g_J; `support_f` is F on the confidence lattice;
    `max_log_e` the running maximum of the harm log e-value (a FAIL stays a FAIL). Build one with
    `new_ratio_state`, advance it with `update_ratio`; `to_dict`/`from_dict` store it exactly.
    """

    alpha: float
    margin: float
    grid: tuple[float, ...]
    weights: tuple[float, ...]
    anchor_f: tuple[float, ...]
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
    def limit(self) -> float:
        """The ratio under test, 1 + margin."""
        return 1.0 + self.margin

    @property
    def events(self) -> int:
        return self.canary_bad + self.baseline_bad

    @property
    def _log_w(self) -> np.ndarray:
        log_w: np.ndarray = np.log(np.asarray(self.weights))
        return log_w

    @property
    def log_e(self) -> float:
        """Harm log e-value now: the evidence that r > 1 + margin."""
        return float(rm.anchor_log_e(np.asarray(self.anchor_f), self._log_w)[0])

    @property
    def log_safety(self) -> float:
        """Safety log e-value now: the evidence that r < 1 + margin."""
        return float(rm.anchor_log_e(np.asarray(self.anchor_f), self._log_w)[1])

    @property
    def e_value(self) -> float:
        return _exp(self.log_e)

    @property
    def safety_e_value(self) -> float:
        return _exp(self.log_safety)

    @property
    def max_e_value(self) -> float:
        return _exp(self.max_log_e)

    @property
    def crossed(self) -> bool:
        """The harm e-process has reached 1/α at some interval: r > 1 + margin (sticky)."""
        return self.crossed_at is not None

    @property
    def bounded(self) -> bool:
        """The safety e-process is at or above 1/α now: r < 1 + margin."""
        return self.log_safety >= math.log(self.threshold)

    @property
    def ratio_bounds(self) -> tuple[float, float]:
        """(lower, upper) now: r > lower and r < upper, each at level α. The tolerance r0 itself is a candidate,
        so the bounds agree with the harm and safety e-values now (a FAIL reached earlier stays in `crossed`
        even when the current lower bound has since fallen below r0)."""
        lower, upper = rm.confidence_bounds(
            np.asarray(self.support_f),
            math.log(self.threshold),
            rm.lattice_offsets(self.grid),
            self._log_w,
        )
        harm, safety = rm.anchor_log_e(np.asarray(self.anchor_f), self._log_w)
        if harm >= math.log(self.threshold):  # r0 itself is excluded now (F concave: never both at once)
            lower = max(lower, self.limit)
        if safety >= math.log(self.threshold):
            upper = min(upper, self.limit)
        return lower, upper

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
        """Plain JSON: the two arrays as base64 of little-endian float64, so a round trip is exact."""
        return {
            "version": _STATE_VERSION,
            "alpha": self.alpha,
            "margin": self.margin,
            "grid": list(self.grid),
            "weights": list(self.weights),
            "anchor_f": _pack(self.anchor_f),
            "support_f": _pack(self.support_f),
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
        anchor, support = _unpack(data["anchor_f"]), _unpack(data["support_f"])
        if len(anchor) != len(fresh.anchor_f) or len(support) != len(fresh.support_f):
            raise StatsInputError("anchor_f", "has the wrong length for its grid", "start a new state")
        return replace(
            fresh,
            anchor_f=anchor,
            support_f=support,
            max_log_e=float(data["max_log_e"]),
            canary_bad=int(data["canary_bad"]),
            baseline_bad=int(data["baseline_bad"]),
            intervals=int(data["intervals"]),
            crossed_at=data.get("crossed_at"),
        )


@dataclass(frozen=True)
class RatioSequentialResult:
    """Result of `ratio_eprocess` over a series of intervals (continuing `start` when one was given).

    `e_value`/`log_e` are the harm e-process now; `path`/`log_path` one value per interval of this call;
    `max_e_value` and `crossed_at` (first interval index, counted over the whole state, with E >= 1/α, or
    None) make a FAIL sticky. `safety_e_value` is the mirrored e-process; `bounded` says it is at 1/α now.
    `ratio_lower`/`ratio_upper` are the confidence sequence's one-sided bounds, each at level α (r > lower,
    r < upper; 0 and inf when unbounded). `estimate` is the conditional MLE of r (None without events).
    """

    e_value: float
    log_e: float
    max_e_value: float
    safety_e_value: float
    path: np.ndarray
    log_path: np.ndarray
    crossed_at: int | None
    bounded: bool
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
        anchor_f=(0.0,) * (2 * g.size + 1),
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
    return _advance_many(state, np.array([c]), np.array([b]), np.array([rho]))[0]


def ratio_eprocess(
    *,
    canary_bad: Sequence[int] | np.ndarray,
    baseline_bad: Sequence[int] | np.ndarray,
    canary_share: Sequence[float] | np.ndarray | float,
    alpha: float,
    margin: float = 0.0,
    grid: Sequence[float] | None = None,
    weights: Sequence[float] | None = None,
    start: RatioState | None = None,
) -> RatioSequentialResult:
    """Run the harm e-process and confidence sequence over aligned per-interval arrays.

    `canary_share` is the canary's fraction of requests in each interval (or one number for all). Intervals
    with no bad events change nothing; with no bad events at all E stays 1 and the bounds stay [0, inf).
    `start` continues an earlier state (an earlier stage of the same rollout); its alpha, margin and mixture
    are kept, and `alpha`/`margin`/`grid`/`weights` must then match it.

    Examples
    --------
    >>> r = ratio_eprocess(canary_bad=[3, 5, 4, 4], baseline_bad=[9, 10, 8, 9], canary_share=0.1, alpha=0.01)
    >>> r.crossed, round(r.estimate, 1)
    (True, 4.0)
    """
    c = _check.counts(canary_bad, field="canary_bad")
    b = _check.counts(baseline_bad, field="baseline_bad")
    n = _check.same_length(canary_bad=c, baseline_bad=b)
    rho = _check.shares(canary_share, field="canary_share", length=n)
    _check_share_consistency(c, b, rho)
    fresh = new_ratio_state(alpha=alpha, margin=margin, grid=grid, weights=weights)
    if start is not None and (start.alpha, start.margin, start.grid) != (
        fresh.alpha,
        fresh.margin,
        fresh.grid,
    ):
        raise StatsInputError(
            "start",
            f"continues a test of alpha {start.alpha:g}, margin {start.margin:g} with another mixture",
            "pass the same alpha, margin and grid as the state, or start a new state",
        )
    state, log_path = _advance_many(start or fresh, c, b, rho)
    lower, upper = state.ratio_bounds
    log_e = state.log_e
    return RatioSequentialResult(
        e_value=_exp(log_e),
        log_e=log_e,
        max_e_value=state.max_e_value,
        safety_e_value=state.safety_e_value,
        path=np.exp(np.minimum(log_path, 700.0)),
        log_path=log_path,
        crossed_at=state.crossed_at,
        bounded=state.bounded,
        threshold=state.threshold,
        alpha=state.alpha,
        margin=state.margin,
        ratio_lower=lower,
        ratio_upper=upper,
        estimate=state.estimate,
        canary_bad=state.canary_bad,
        baseline_bad=state.baseline_bad,
        events=state.events,
        intervals=state.intervals,
        state=state,
    )


def _advance_many(
    state: RatioState, c: np.ndarray, b: np.ndarray, rho: np.ndarray
) -> tuple[RatioState, np.ndarray]:
    """Every interval at once: cumulative sums seeded with the state, so one call over n intervals equals n
    calls over one (the same sums in the same order, bit for bit). Returns the new state and the harm log
    e-value after each interval."""
    n = len(c)
    log_w = np.log(np.asarray(state.weights))
    anchors0 = np.asarray(state.anchor_f)
    if n == 0:
        return state, np.empty(0)
    points, log_points = rm.layout(state.margin, state.grid)
    cf, bf = c.astype(float), b.astype(float)
    quiet = (cf == 0) & (bf == 0)
    f = rm.log_lik_increments(cf, bf, rho.astype(float), points, log_ratios=log_points)
    f[quiet] = 0.0  # no bad events: this interval changes nothing (adding 0.0 leaves every sum as it was)
    k = anchors0.size
    seeded = np.vstack([np.concatenate([anchors0, np.asarray(state.support_f)])[None, :], f])
    running = np.cumsum(seeded, axis=0)[1:]
    log_path, _ = rm.anchor_log_e(running[:, :k], log_w)
    limit = math.log(1.0 / state.alpha)
    crossed_at = state.crossed_at
    if crossed_at is None:
        hits = np.flatnonzero(~quiet & (log_path >= limit))
        crossed_at = state.intervals + int(hits[0]) if len(hits) else None
    moving = log_path[~quiet]
    new = replace(
        state,
        anchor_f=tuple(running[-1, :k].tolist()),
        support_f=tuple(running[-1, k:].tolist()),
        max_log_e=max(state.max_log_e, float(moving.max())) if len(moving) else state.max_log_e,
        canary_bad=state.canary_bad + int(c.sum()),
        baseline_bad=state.baseline_bad + int(b.sum()),
        intervals=state.intervals + n,
        crossed_at=crossed_at,
    )
    return new, log_path


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


def _pack(values: Sequence[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f8").tobytes()).decode("ascii")


def _unpack(text: str | Sequence[float]) -> tuple[float, ...]:
    if not isinstance(text, str):  # a plain list (hand-written or older tooling)
        return tuple(map(float, text))
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as e:
        raise StatsInputError("anchor_f", "is not base64 of float64 values", "start a new state") from e
    if len(raw) % 8:
        raise StatsInputError("anchor_f", "is not a whole number of float64 values", "start a new state")
    return tuple(np.frombuffer(raw, dtype="<f8").tolist())


def _exp(log_value: float) -> float:
    return math.exp(log_value) if log_value < 709.0 else math.inf
