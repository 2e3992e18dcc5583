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
from gatekeeper.stats._ratio_math import DEFAULT_GRID, DEFAULT_WEIGHTS, cs_alternatives
from gatekeeper.stats.errors import StatsInputError

__all__ = ["requests_needed", "requests_to_detect", "share_probability"]


def share_probability(ratio: float | np.ndarray, share: float) -> float | np.ndarray:
    """θ(r) = ρr / (ρr + 1 − ρ): the chance that a bad event is the canary's."""
    return share * np.asarray(ratio) / (share * np.asarray(ratio) + 1.0 - share)


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
    """Approximate total canary requests until the confidence sequence's upper bound falls below `limit`.

    `ratio` is the assumed true rate ratio (1: the canary is as good as the baseline). None when it cannot
    happen (ratio >= limit). Subtract the canary requests already served to get "how many more".
    """
    p, rho, a = _inputs(baseline_rate, canary_share, alpha)
    g = cs_alternatives()
    w = np.full(g.size, 1.0 / g.size)
    if not (limit > 0 and ratio > 0) or ratio >= limit:
        return None
    events = _events(float(share_probability(ratio, rho)), limit / g, limit, rho, a, w)
    if math.isinf(events):
        return None
    return events / (p * (ratio + (1 - rho) / rho))
