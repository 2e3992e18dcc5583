"""The arithmetic under the "which arm" e-process (STATISTICS.md §2), shared by the batch and incremental forms.

For one interval with c canary and b baseline bad events and canary traffic share ρ, the conditional
log-likelihood of a rate ratio r is, up to a term that does not depend on r,

    f(r) = c·log r − (c + b)·log(1 + ρ(r − 1)),

so the log likelihood ratio of r_a against r_0 over all intervals is F(r_a) − F(r_0) with F = Σ f. F is
concave in log r, which makes every one-sided mixture e-value monotone along the ratio axis and keeps the
confidence set an interval. Everything is kept in log space.

The confidence sequence lives on a fixed lattice r_i = 2^(i/16): candidates 2^-6 … 2^6 (1/64 to 64, 4.4 %
apart), plus room for the alternatives either side of each candidate (257 numbers in all).
"""

from __future__ import annotations

import math

import numpy as np

# Default alternatives (multiples of 1 + margin) and their weights: tuned in bench/detection.py to keep the
# canary requests to FAIL within ~1.2x of an oracle SPRT that knows the true ratio, for ratios 1.5 to 5 at
# canary shares 5 % to 50 %. Small effects get more weight because they are the slow ones.
DEFAULT_GRID: tuple[float, ...] = (1.4, 2.0, 3.0, 5.0)
DEFAULT_WEIGHTS: tuple[float, ...] = (0.4, 0.25, 0.2, 0.15)

STEPS_PER_DOUBLING = 16
CANDIDATE_SPAN = 6 * STEPS_PER_DOUBLING  # candidates i = -96 … 96
# The confidence sequence mixes alternatives r_i·2^(±k/16) for these k (4 %, 9 %, 19 %, 41 %, 2x, 4x away),
# equally weighted: a bound can only approach 1 + tolerance if some alternative is that close, so the
# offsets start at one lattice step. (The harm test's grid above is tuned for detection instead.)
CS_OFFSETS = np.array([1, 2, 4, 8, 16, 32])
CS_LOG_WEIGHTS = np.full(CS_OFFSETS.size, -np.log(CS_OFFSETS.size))


def log_lik_increments(
    canary_bad: np.ndarray | float,
    baseline_bad: np.ndarray | float,
    share: np.ndarray | float,
    ratios: np.ndarray,
    *,
    log_ratios: np.ndarray | None = None,
) -> np.ndarray:
    """f(r) for each interval (leading axes) and each ratio (last axis); `log_ratios` may be precomputed."""
    c = np.asarray(canary_bad, dtype=float)[..., None]
    m = c + np.asarray(baseline_bad, dtype=float)[..., None]
    rho = np.asarray(share, dtype=float)[..., None]
    log_r = np.log(ratios) if log_ratios is None else log_ratios
    with np.errstate(divide="ignore", invalid="ignore"):
        term = m * np.log1p(rho * (ratios - 1.0))
    # 0 · log(0) cases: no events, or an arm with no traffic (then its events are 0 too, checked upstream)
    term = np.where(m == 0, 0.0, term)
    return np.where(c == 0, 0.0, c * log_r) - term


def cs_alternatives() -> np.ndarray:
    """The confidence sequence's alternatives as ratio multipliers (> 1)."""
    return np.exp2(CS_OFFSETS / STEPS_PER_DOUBLING)


SUPPORT_REACH = CANDIDATE_SPAN + int(CS_OFFSETS.max())
# Ratios at which F is tracked for the confidence sequence: candidates ± the largest offset.
SUPPORT = np.exp2(np.arange(-SUPPORT_REACH, SUPPORT_REACH + 1) / STEPS_PER_DOUBLING)


def logsumexp_rows(values: np.ndarray) -> np.ndarray:
    """log Σ exp over the last axis, stable, with -inf rows allowed."""
    top = np.max(values, axis=-1, keepdims=True)
    top_safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(values - top_safe), axis=-1)) + top_safe[..., 0]
    return out


def confidence_bounds(support_f: np.ndarray, log_threshold: float) -> tuple[float, float]:
    """One-sided bounds (each at level α) on r from F on the support lattice.

    A candidate r_i is excluded from below when the mixture e-value for H0: r <= r_i (alternatives r_i·g_j)
    reaches 1/α, and from above likewise for H0: r >= r_i. By concavity of F the exclusions form a prefix
    and a suffix that never overlap, so the set is an interval: lower = the last excluded-from-below
    candidate (0 when none), upper = the first excluded-from-above candidate (inf when none), with
    r > lower and r < upper.
    """
    idx = np.arange(-CANDIDATE_SPAN, CANDIDATE_SPAN + 1) + SUPPORT_REACH
    base = support_f[idx]
    up = support_f[idx[:, None] + CS_OFFSETS[None, :]] - base[:, None] + CS_LOG_WEIGHTS[None, :]
    down = support_f[idx[:, None] - CS_OFFSETS[None, :]] - base[:, None] + CS_LOG_WEIGHTS[None, :]
    below = logsumexp_rows(up) >= log_threshold
    above = logsumexp_rows(down) >= log_threshold
    lower = 0.0
    if below[0]:
        last = int(np.argmin(below)) - 1 if not below.all() else below.size - 1
        lower = _candidate(last)
    upper = math.inf
    if above[-1]:
        first = int(above.size - np.argmin(above[::-1])) if not above.all() else 0
        upper = _candidate(first)
    return lower, upper


def _candidate(position: int) -> float:
    return float(np.exp2((position - CANDIDATE_SPAN) / STEPS_PER_DOUBLING))


def point_estimate(support_f: np.ndarray, canary_bad: float, baseline_bad: float) -> float | None:
    """Conditional MLE of r: argmax of F on the lattice, refined by a parabola in log r."""
    if canary_bad == 0 and baseline_bad == 0:
        return None
    if baseline_bad == 0:
        return math.inf
    if canary_bad == 0:
        return 0.0
    k = int(np.argmax(support_f))
    u = (k - SUPPORT_REACH) / STEPS_PER_DOUBLING
    if 0 < k < support_f.size - 1:
        left, mid, right = support_f[k - 1], support_f[k], support_f[k + 1]
        denom = left - 2 * mid + right
        if denom < 0:
            u += 0.5 * (left - right) / denom / STEPS_PER_DOUBLING
    return float(np.exp2(u))
