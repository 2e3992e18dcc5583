"""Mann–Whitney (Wilcoxon rank-sum) comparison of two samples, with R's confidence interval on the shift.

This is the fixed-horizon test Kayenta's NetflixACAJudge runs on per-step series (e.g. the error rate of each
minute). It returns U for the canary, the two-sided normal-approximation p-value with tie and continuity
corrections, the Hodges–Lehmann shift (median of all pairwise differences canary − baseline) and the
confidence interval and point estimate exactly as R computes them with
`wilcox.test(canary, baseline, conf.int = TRUE, exact = FALSE, correct = TRUE)`: the interval ends are the
shifts d at which the continuity-corrected z statistic of (canary − d) vs baseline equals ∓z_{α/2}, found by
Brent's root finder with tolerance 1e-4 like R's `uniroot`; R's estimate is the root at z = 0, which differs
from the Hodges–Lehmann median by at most a few root-finder tolerances.

Where R stops ("cannot compute confidence interval when all observations are tied": both arms constant),
this module returns the exact answer instead: the shift is the difference of the two constants, with a
zero-width interval. Kayenta adds random Gaussian noise in that case; we do not randomise.

References: Hollander & Wolfe (1973), Nonparametric Statistical Methods, §4.3; Bauer (1972), JASA 67;
R `stats::wilcox.test` (exact = FALSE); spinnaker/kayenta `kayenta-mannwhitney` (MannWhitney.scala).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from gatekeeper.stats import _check

__all__ = ["MannWhitneyResult", "hodges_lehmann", "mann_whitney", "wilcoxon_z"]

_R_TOL = 1e-4  # R's wilcox.test passes tol = 1e-4 to uniroot


@dataclass(frozen=True)
class MannWhitneyResult:
    """Result of `mann_whitney`; shifts are canary − baseline in the data's unit.

    `u` counts pairs with canary > baseline (ties count one half); `cles` = u / (n_canary · n_baseline) is the
    common-language effect size of Vargha & Delaney (2000). `estimate`, `lower` and `upper` are R's
    `wilcox.test(..., conf.int = TRUE, exact = FALSE, correct = TRUE)` estimate and interval;
    `hodges_lehmann` is the exact median of pairwise differences. `p_value` is two-sided.
    """

    u: float
    z: float
    p_value: float
    estimate: float
    hodges_lehmann: float
    lower: float
    upper: float
    confidence: float
    cles: float
    n_canary: int
    n_baseline: int
    all_tied: bool


def wilcoxon_z(shift: float, quantile: float, canary: np.ndarray, baseline: np.ndarray) -> float:
    """R's `wdiff`: continuity-corrected z of (canary − shift) vs baseline, minus `quantile`.

    Ranks use average ties; the tie correction counts exactly equal values. Returns NaN when every
    observation is tied (no variance), where R raises an error.
    """
    nx, ny = canary.size, baseline.size
    pooled = np.concatenate([canary - shift, baseline])
    ranks = stats.rankdata(pooled)
    _, tie_sizes = np.unique(pooled, return_counts=True)
    dz = float(ranks[:nx].sum()) - nx * (nx + 1) / 2 - nx * ny / 2
    correction = 0.5 * float(np.sign(dz))
    ties = float(np.sum(tie_sizes.astype(float) ** 3 - tie_sizes))
    var = (nx * ny / 12.0) * ((nx + ny + 1) - ties / ((nx + ny) * (nx + ny - 1)))
    if var <= 0:
        return math.nan
    return (dz - correction) / math.sqrt(var) - quantile


def hodges_lehmann(canary: np.ndarray, baseline: np.ndarray) -> float:
    """Median of all pairwise differences canary_i − baseline_j (memory n·m; fine for per-step series)."""
    return float(np.median(np.subtract.outer(canary, baseline)))


def mann_whitney(canary: np.ndarray, baseline: np.ndarray, *, confidence: float = 0.98) -> MannWhitneyResult:
    """Compare two samples; see the module docstring. Both must be non-empty and finite.

    The default confidence 0.98 is the level NetflixACAJudge uses.
    """
    x = _check.finite_sample(canary, field="canary")
    y = _check.finite_sample(baseline, field="baseline")
    conf = _check.alpha(confidence, field="confidence")
    nx, ny = x.size, y.size
    u, z, p = _u_test(x, y)
    hl = hodges_lehmann(x, y)
    if np.all(x == x[0]) and np.all(y == y[0]):
        shift = float(x[0] - y[0])
        return MannWhitneyResult(u, z, p, shift, hl, shift, shift, conf, u / (nx * ny), nx, ny, True)
    zq = float(stats.norm.ppf(1 - (1 - conf) / 2))
    lo, hi = x.min() - y.max(), x.max() - y.min()
    lower = _root(zq, lo, hi, x, y)
    upper = _root(-zq, lo, hi, x, y)
    est = _root(0.0, lo, hi, x, y)
    return MannWhitneyResult(u, z, p, est, hl, lower, upper, conf, u / (nx * ny), nx, ny, False)


def _u_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    nx, ny = x.size, y.size
    ranks = stats.rankdata(np.concatenate([x, y]))
    u = float(ranks[:nx].sum() - nx * (nx + 1) / 2)
    _, t = np.unique(np.concatenate([x, y]), return_counts=True)
    n = nx + ny
    var = (
        nx * ny / 12.0 * ((n + 1) - float(np.sum(t.astype(float) ** 3 - t)) / (n * (n - 1))) if n > 1 else 0.0
    )
    if var <= 0:
        return u, 0.0, 1.0
    diff = u - nx * ny / 2
    z = (diff - 0.5 * math.copysign(1.0, diff) if diff != 0 else 0.0) / math.sqrt(var)
    return u, z, float(min(1.0, 2 * stats.norm.sf(abs(z))))


def _root(zq: float, lo: float, hi: float, x: np.ndarray, y: np.ndarray) -> float:
    """R's `root()` inside wilcox.test: clamp to the search interval, else Brent with tol 1e-4."""
    f_lo = wilcoxon_z(lo, zq, x, y)
    f_hi = wilcoxon_z(hi, zq, x, y)
    if f_lo <= 0:
        return float(lo)
    if f_hi >= 0:
        return float(hi)
    return _zeroin(lambda d: wilcoxon_z(d, zq, x, y), lo, hi, f_lo, f_hi, _R_TOL)


def _zeroin(
    f: Callable[[float], float], a: float, b: float, fa: float, fb: float, tol: float, maxit: int = 1000
) -> float:
    """Brent's root finder as published (Brent 1973, ch. 4, procedure `zero`), which R's `uniroot` runs.

    Long because it is one algorithm; kept step for step so that, on the step-shaped Wilcoxon statistic,
    it lands on the same point of a flat stretch as R does (a different Brent variant lands elsewhere
    within the tolerance).
    """
    eps = np.finfo(float).eps
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxit + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * eps * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0.0:
            return float(b)
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p, q = cb * t1, 1.0 - t1
            else:
                q, t1, t2 = fa / fc, fb / fc, fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return float(b)
