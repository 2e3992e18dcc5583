"""The arithmetic under the "which arm" e-process, shared by the batch and incremental forms.

For one interval with c canary and b baseline bad events and canary traffic share ρ, the conditional
log-likelihood of a rate ratio r is, up to a term that does not depend on r,

    f(r) = c·log r − (c + b)·log(1 + ρ(r − 1)),

so the log likelihood ratio of r_a against r_0 over all intervals is F(r_a) − F(r_0) with F = Σ f. F is
concave in log r, which makes every one-sided mixture e-value monotone along the ratio axis and keeps the
confidence set an interval. Everything is kept in log space.

One mixture serves every statement the gate makes. Its alternatives are multiples g_j = 2^(k_j/16) of the
ratio under test, with weights w_j:

- harm (FAIL): E⁺(r0) = Σ_j w_j exp(F(r0·g_j) − F(r0)) against H0: r <= r0 = 1 + tolerance;
- safety (PASS bound): E⁻(r0) = Σ_j w_j exp(F(r0/g_j) − F(r0)) against H0: r >= r0;
- the confidence sequence: every candidate r_i of a lattice r_i = 2^(i/16) is excluded from below when
  E⁺(r_i) >= 1/α and from above when E⁻(r_i) >= 1/α.

F is tracked exactly at r0 and r0·g_j^(±1) (the "anchors"), so FAIL and PASS are decided at the tolerance
itself, not at the nearest lattice point; and by concavity of F, a lattice candidate above r0 excluded from
below means r0 is excluded too, so the harm e-value and the bounds can never disagree. The alternatives start
one lattice step (4.4 %) above the null, so a regression just past the tolerance is within reach (a grid whose
smallest alternative sat 40 % above the null left a 1.41x-the-tolerance regression undetected while the
confidence sequence had already excluded the tolerance).

Lattice: candidates 2^-6 … 2^6 (1/64 to 64), plus room for the alternatives either side of each candidate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

STEPS_PER_DOUBLING = 16
CANDIDATE_SPAN = 6 * STEPS_PER_DOUBLING  # candidates i = -96 … 96

# The default mixture: offsets in lattice steps (4 % … 8x away) and their weights. Dense near the null, where
# small regressions and tight tolerances need alternatives, and reaching 8x for gross harm, which then needs
# only a handful of events. Tuned in bench/detection.py (detection, A/A, time to PASS).
DEFAULT_OFFSETS: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48)
DEFAULT_WEIGHTS: tuple[float, ...] = (0.08, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.09, 0.08, 0.08, 0.07)
DEFAULT_GRID: tuple[float, ...] = tuple(2.0 ** (k / STEPS_PER_DOUBLING) for k in DEFAULT_OFFSETS)

MAX_OFFSET = 64  # alternatives further than 16x are rounded down to it on the lattice
SUPPORT_REACH = CANDIDATE_SPAN + MAX_OFFSET
# Ratios at which F is tracked for the confidence sequence: candidates ± the largest offset.
SUPPORT = np.exp2(np.arange(-SUPPORT_REACH, SUPPORT_REACH + 1) / STEPS_PER_DOUBLING)


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
    f: np.ndarray = np.where(c == 0, 0.0, c * log_r) - term
    return f


def lattice_offsets(grid: Sequence[float]) -> np.ndarray:
    """Each alternative's distance on the lattice, in steps (at least one, at most `MAX_OFFSET`)."""
    steps = np.rint(np.log2(np.asarray(grid, dtype=float)) * STEPS_PER_DOUBLING).astype(int)
    offsets: np.ndarray = np.clip(steps, 1, MAX_OFFSET)
    return offsets


@lru_cache(maxsize=64)
def layout(margin: float, grid: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Every ratio at which F is tracked, and their logs: the anchors r0/g_J … r0/g_1, r0, r0·g_1 … r0·g_J
    (2J + 1 numbers), then the lattice `SUPPORT`."""
    r0 = 1.0 + margin
    g = np.asarray(grid, dtype=float)
    anchors = np.concatenate([r0 / g[::-1], [r0], r0 * g])
    points = np.concatenate([anchors, SUPPORT])
    return points, np.log(points)


def anchor_log_e(anchor_f: np.ndarray, log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(harm, safety) log e-values at r0 from F at the anchors; leading axes are kept (e.g. one per interval)."""
    j = log_w.size
    centre = anchor_f[..., j : j + 1]
    harm = logsumexp_rows(anchor_f[..., j + 1 :] - centre + log_w)
    safety = logsumexp_rows(anchor_f[..., :j][..., ::-1] - centre + log_w)
    return harm, safety


def logsumexp_rows(values: np.ndarray) -> np.ndarray:
    """log Σ exp over the last axis, stable, with -inf rows allowed."""
    top = np.max(values, axis=-1, keepdims=True)
    top_safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out: np.ndarray = np.log(np.sum(np.exp(values - top_safe), axis=-1)) + top_safe[..., 0]
    return out


def confidence_bounds(
    support_f: np.ndarray, log_threshold: float, offsets: np.ndarray, log_w: np.ndarray
) -> tuple[float, float]:
    """One-sided bounds (each at level α) on r from F on the lattice.

    A candidate r_i is excluded from below when the mixture e-value for H0: r <= r_i (alternatives r_i·g_j)
    reaches 1/α, and from above likewise for H0: r >= r_i. By concavity of F the exclusions form a prefix
    and a suffix that never overlap, so the set is an interval: lower = the last excluded-from-below
    candidate (0 when none), upper = the first excluded-from-above candidate (inf when none), with
    r > lower and r < upper.
    """
    idx = np.arange(-CANDIDATE_SPAN, CANDIDATE_SPAN + 1) + SUPPORT_REACH
    base = support_f[idx]
    up = support_f[idx[:, None] + offsets[None, :]] - base[:, None] + log_w[None, :]
    down = support_f[idx[:, None] - offsets[None, :]] - base[:, None] + log_w[None, :]
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
