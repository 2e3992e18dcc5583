"""Detection benchmark (issue 4 item 7): canary requests until FAIL, and false alarms in A/A.

Scenario (docs/statistics.md §6): baseline error rate 1 %, canary 1.5 / 2 / 3 / 5 %, canary shares 5 / 10 / 50 %
of 2,000 requests a minute, one look a minute, α = 0.01. Methods:

  (a) gatekeeper: the "which arm" grid-mixture e-process of gatekeeper.stats.sequential (same arithmetic,
      vectorised over runs; a few runs are re-checked against the library's own loop);
  (b) oracle SPRTs on the same look schedule, Wald boundaries (α = 0.01, β = 0.05): "cond" knows the true ratio
      and uses the same conditional data as (a) (the limit for any test that must learn the baseline rate);
      "1-sample" knows both rates and watches the canary alone (the absolute limit); plus both closed forms;
  (c) Flagger-style: the canary's error rate over the last minute above a threshold, k checks in a row
      (k = 1, 5, 10; the best k per cell is reported), threshold calibrated on A/A runs;
  (d) Kayenta-style: one-sided Mann–Whitney of per-minute canary vs baseline error rates, re-run at every
      look on everything so far, z threshold calibrated on A/A runs.

(c) and (d) are calibrated per share to the A/A false-alarm rate that (a) shows over the same horizon (and,
as a more generous variant, to the nominal 1 %). Also: A/A false-alarm rates over 1,000 looks in >= 2,000
runs (with uncalibrated peers for contrast), and a diurnal run with stage changes (5 % -> 25 % -> 50 %).

Run:  .venv/bin/python bench/detection.py [--quick]   (writes bench/results/detection.json and .svg)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gatekeeper.stats import _ratio_math as rm
from gatekeeper.stats import planning
from gatekeeper.stats.sequential import ratio_eprocess

P0, ALPHA, BETA, PER_MIN = 0.01, 0.01, 0.05, 2000
RATIOS, SHARES, FLAGGER_K = (1.5, 2.0, 3.0, 5.0), (0.05, 0.10, 0.50), (1, 5, 10)
OUT = Path(__file__).resolve().parent / "results"
_T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


@dataclass
class Schedule:
    """Per-look requests per arm and base error rate (arrays of length looks)."""

    n_c: np.ndarray
    n_b: np.ndarray
    p0: np.ndarray

    @property
    def looks(self) -> int:
        return self.n_c.size

    @property
    def share(self) -> np.ndarray:
        return self.n_c / (self.n_c + self.n_b)


PER_LOOK = PER_MIN  # requests per look; --look-seconds scales it


def constant(share: float, looks: int) -> Schedule:
    n_c = round(PER_LOOK * share)
    return Schedule(np.full(looks, n_c), np.full(looks, PER_LOOK - n_c), np.full(looks, P0))


def diurnal(looks: int) -> Schedule:
    """Traffic from 0.4x to 1.6x and a base error rate from 0.5 % to 1.5 % over 600 looks; stages change at
    looks 120 (5 % -> 25 %) and 300 (-> 50 %)."""
    t = np.arange(looks)
    traffic = (
        np.rint(PER_LOOK * (1 + 0.6 * np.sin(2 * np.pi * t / 600 - np.pi / 2))).astype(int) + PER_LOOK // 10
    )
    share = np.where(t < 120, 0.05, np.where(t < 300, 0.25, 0.5))
    n_c = np.rint(traffic * share).astype(int)
    return Schedule(n_c, traffic - n_c, P0 * (1 + 0.5 * np.sin(2 * np.pi * t / 600 - np.pi / 2)))


def simulate(s: Schedule, ratio: float, runs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    c = rng.binomial(s.n_c, np.minimum(1.0, s.p0 * ratio), size=(runs, s.looks)).astype(np.int32)
    b = rng.binomial(s.n_b, s.p0, size=(runs, s.looks)).astype(np.int32)
    return c, b


def first_true(hit: np.ndarray) -> np.ndarray:
    """Index of the first True per row, or the row length when none."""
    return np.where(hit.any(axis=1), hit.argmax(axis=1), hit.shape[1])


# ---------------------------------------------------------------- (a) gatekeeper e-process
def ours_log_e(
    c: np.ndarray, b: np.ndarray, s: Schedule, chunk: int = 500, *, margin: float = 0.0, side: str = "harm"
) -> np.ndarray:
    """The library's mixture at r0 = 1 + margin: harm (alternatives r0·g) or safety (r0/g), per look."""
    g, log_w = np.asarray(rm.DEFAULT_GRID), np.log(rm.DEFAULT_WEIGHTS)
    r0 = 1.0 + margin
    points = np.concatenate([[r0], r0 * g if side == "harm" else r0 / g])
    out = np.empty(c.shape)
    for i in range(0, c.shape[0], chunk):
        f = np.cumsum(rm.log_lik_increments(c[i : i + chunk], b[i : i + chunk], s.share, points), axis=1)
        out[i : i + chunk] = rm.logsumexp_rows(f[..., 1:] - f[..., :1] + log_w)
    return out


def ours_first(c: np.ndarray, b: np.ndarray, s: Schedule) -> np.ndarray:
    return first_true(ours_log_e(c, b, s) >= math.log(1 / ALPHA))


# ---------------------------------------------------------------- (b) oracles
def sprt_first(llr_steps: np.ndarray) -> np.ndarray:
    llr = np.cumsum(llr_steps, axis=1)
    upper, lower = math.log((1 - BETA) / ALPHA), math.log(BETA / (1 - ALPHA))
    return first_true((llr >= upper) | (llr <= lower))


def oracle_cond_first(c, b, s: Schedule, ratio: float) -> np.ndarray:
    return sprt_first(rm.log_lik_increments(c, b, s.share, np.array([ratio]))[..., 0])


def oracle_one_sample_first(c, s: Schedule, ratio: float) -> np.ndarray:
    p1 = s.p0 * ratio
    return sprt_first(c * np.log(p1 / s.p0) + (s.n_c - c) * np.log((1 - p1) / (1 - s.p0)))


def wald_numerator() -> float:
    return (1 - BETA) * math.log((1 - BETA) / ALPHA) + BETA * math.log(BETA / (1 - ALPHA))


def kl(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def closed_forms(ratio: float, share: float) -> tuple[float, float]:
    """Canary requests: one-sample oracle (knows p0, p1) and the conditional two-sample oracle (knows r)."""
    one = wald_numerator() / kl(P0 * ratio, P0)
    theta = share * ratio / (share * ratio + 1 - share)
    two = wald_numerator() / (kl(theta, share) * P0 * (ratio + (1 - share) / share))
    return one, two


# ---------------------------------------------------------------- (c) Flagger-style threshold
def flagger_windows(c: np.ndarray, s: Schedule, k: int) -> np.ndarray:
    """min over the last k looks of the canary's per-look error rate (rows: runs; cols: looks k-1 …)."""
    rate = c / s.n_c
    return rate if k == 1 else sliding_window_view(rate, k, axis=1).min(axis=-1)


# ---------------------------------------------------------------- (d) Kayenta-style Mann–Whitney every look
def mwu_z(c: np.ndarray, b: np.ndarray, s: Schedule, resolution: float | None = None) -> np.ndarray:
    """One-sided MWU z (canary per-look rates > baseline's) on all looks so far, at every look. O(runs·K) a look."""
    x, y = c / s.n_c, b / s.n_b
    if resolution:
        x, y = np.rint(x / resolution), np.rint(y / resolution)
    keys = np.unique(np.concatenate([np.unique(x), np.unique(y)]))
    ix, iy = np.searchsorted(keys, x), np.searchsorted(keys, y)
    runs, looks = c.shape
    k = keys.size
    grid = np.arange(k)
    xs, ys = np.zeros((runs, k), np.int32), np.zeros((runs, k), np.int32)
    x_lt, y_lt = np.zeros((runs, k), np.int32), np.zeros((runs, k), np.int32)
    u, ties = np.zeros(runs), np.zeros(runs)
    rows = np.arange(runs)
    z = np.zeros((runs, looks))
    for t in range(looks):
        ky, kx = iy[:, t], ix[:, t]
        tau = xs[rows, ky] + ys[rows, ky]
        ties += 3.0 * tau * tau + 3.0 * tau
        ys[rows, ky] += 1
        y_lt += grid[None, :] > ky[:, None]
        u += y_lt[rows, kx] + 0.5 * ys[rows, kx]  # x_t against every y so far
        u += (t - x_lt[rows, ky] - xs[rows, ky]) + 0.5 * xs[rows, ky]  # y_t against the earlier x
        tau = xs[rows, kx] + ys[rows, kx]
        ties += 3.0 * tau * tau + 3.0 * tau
        xs[rows, kx] += 1
        x_lt += grid[None, :] > kx[:, None]
        n = t + 1
        var = n * n / 12.0 * ((2 * n + 1) - ties / (2 * n * (2 * n - 1))) if n > 1 else np.zeros(runs)
        with np.errstate(divide="ignore", invalid="ignore"):
            z[:, t] = np.where(var > 0, (u - n * n / 2 - 0.5) / np.sqrt(np.maximum(var, 1e-300)), 0.0)
    return z


# ---------------------------------------------------------------- calibration
def calibrate(stat_max: np.ndarray, target: float) -> float:
    """Smallest threshold v with P(stat > v) <= target on the A/A runs (alarm means stat > v)."""
    values = np.sort(stat_max)
    allowed = math.floor(target * values.size + 1e-9)
    return float(values[values.size - 1 - allowed]) if allowed < values.size else -math.inf


@dataclass
class Calibration:
    ours_fa: float
    flagger: dict[int, float]
    mwu: float
    flagger_1pct: dict[int, float]
    mwu_1pct: float


def calibrate_schedule(s: Schedule, runs: int, rng, *, with_mwu: bool = True) -> Calibration:
    c, b = simulate(s, 1.0, runs, rng)
    ours_fa = float(np.mean(ours_first(c, b, s) < s.looks))
    target = max(ours_fa, 1.0 / runs)  # at least one alarm's worth, so a threshold exists
    flag, flag1 = {}, {}
    for k in FLAGGER_K:
        m = flagger_windows(c, s, k).max(axis=1)
        flag[k], flag1[k] = calibrate(m, target), calibrate(m, ALPHA)
    mwu = mwu1 = math.nan
    if with_mwu:
        zmax = mwu_z(c, b, s)[:, 2:].max(axis=1)  # Kayenta needs a few points per arm: look from minute 3
        mwu, mwu1 = calibrate(zmax, target), calibrate(zmax, ALPHA)
    return Calibration(ours_fa, flag, mwu, flag1, mwu1)


# ---------------------------------------------------------------- one detection cell
def summarise(first: np.ndarray, s: Schedule, c: np.ndarray, b: np.ndarray) -> dict:
    looks = s.looks
    cum_n = np.concatenate([[0], np.cumsum(s.n_c)])
    stop = np.minimum(first, looks - 1)
    requests = cum_n[stop + 1].astype(float)
    cc, cb = np.cumsum(c, axis=1), np.cumsum(b, axis=1)
    rows = np.arange(c.shape[0])
    return {
        "detected": float(np.mean(first < looks)),
        "mean_requests": float(requests.mean()),  # runs that never fail count at the horizon (a lower bound)
        "median_requests": float(np.median(requests)),
        "mean_canary_bad": float(cc[rows, stop].mean()),
        "mean_bad_events": float((cc[rows, stop] + cb[rows, stop]).mean()),
        "mean_minutes": float((stop + 1).mean()),
    }


def detection_cell(s: Schedule, ratio: float, runs: int, cal: Calibration, rng, *, with_mwu=True) -> dict:
    c, b = simulate(s, ratio, runs, rng)
    res = {"ours": summarise(ours_first(c, b, s), s, c, b)}
    res["oracle_cond"] = summarise(oracle_cond_first(c, b, s, ratio), s, c, b)
    res["oracle_one_sample"] = summarise(oracle_one_sample_first(c, s, ratio), s, c, b)
    for label, thresholds in (("flagger", cal.flagger), ("flagger_1pct", cal.flagger_1pct)):
        best = None
        for k, thr in thresholds.items():
            first = first_true(flagger_windows(c, s, k) > thr) + (k - 1)
            out = summarise(np.minimum(first, s.looks), s, c, b) | {"k": k, "threshold_error_rate": thr}
            if best is None or out["mean_requests"] < best["mean_requests"]:
                best = out
        res[label] = best
    if with_mwu:
        z = mwu_z(c, b, s)
        z[:, :2] = -np.inf
        for label, thr in (("kayenta_mwu", cal.mwu), ("kayenta_mwu_1pct", cal.mwu_1pct)):
            res[label] = summarise(first_true(z > thr), s, c, b) | {"z_threshold": thr}
    return res


def library_check(s: Schedule, rng) -> bool:
    """The vectorised (a) equals gatekeeper.stats.sequential.ratio_eprocess on a few runs."""
    c, b = simulate(s, 2.0, 3, rng)
    vec = ours_log_e(c, b, s)
    for i in range(3):
        lib = ratio_eprocess(canary_bad=c[i], baseline_bad=b[i], canary_share=s.share, alpha=ALPHA)
        if not np.allclose(lib.log_path, vec[i], rtol=1e-9, atol=1e-9):
            return False
    return True


# ---------------------------------------------------------------- tolerance cells (issue 15)
TOLERANCES, MULTIPLES = (0.1, 0.2), (1.1, 1.25, 1.5, 2.0)


def oracle_margin_first(c, b, s: Schedule, ratio: float, margin: float) -> np.ndarray:
    """SPRT of the true ratio against r0 = 1 + margin on the same conditional data and looks (Wald bounds)."""
    pts = np.array([1.0 + margin, ratio])
    f = rm.log_lik_increments(c, b, s.share, pts)
    return sprt_first(f[..., 1] - f[..., 0])


def tolerance_section(runs: int, looks: int, rng) -> dict:
    """Canary requests to FAIL at tolerance 0.1 and 0.2 for true ratios 1.1 ... 2 x (1 + tolerance), with the
    same-look oracle SPRT against the tolerated ratio."""
    out = {}
    for tol in TOLERANCES:
        for share in SHARES:
            s = constant(share, looks)
            for m in MULTIPLES:
                ratio = m * (1 + tol)
                c, b = simulate(s, ratio, runs, rng)
                ours = summarise(first_true(ours_log_e(c, b, s, margin=tol) >= math.log(1 / ALPHA)), s, c, b)
                oracle = summarise(oracle_margin_first(c, b, s, ratio, tol), s, c, b)
                cell = {"tolerance": tol, "share": share, "multiple": m, "ratio": ratio, "ours": ours,
                        "oracle": oracle, "ratio_vs_oracle": ours["mean_requests"] / oracle["mean_requests"]}  # fmt: skip
                out[f"{tol:g}/{share:g}/{m:g}"] = cell
                progress(
                    f"tolerance {tol:g} share {share:.0%} ratio {ratio:.3g}: detected {ours['detected']:.3f}, "
                    f"{ours['mean_requests']:.0f} canary requests ({cell['ratio_vs_oracle']:.2f}x the oracle)"
                )
    return out


def promote_section(runs: int, looks: int, rng) -> dict:
    """A/A canaries: canary requests until the safety e-process at 1 + tolerance reaches 1/alpha (a PASS,
    stage minimums aside), as a ratio to the fixed-horizon non-inferiority sample size at 80 % power."""
    out = {}
    for tol in (0.1, 0.2, 0.5):
        for share in SHARES:
            s = constant(share, looks)
            c, b = simulate(s, 1.0, runs, rng)
            first = first_true(ours_log_e(c, b, s, margin=tol, side="safety") >= math.log(1 / ALPHA))
            cum_n = np.concatenate([[0], np.cumsum(s.n_c)])
            passed = first < looks
            need = cum_n[np.minimum(first, looks - 1) + 1].astype(float)
            fixed = planning.fixed_noninferiority_requests(
                baseline_rate=P0, canary_share=float(s.share[0]), limit=1 + tol, alpha=ALPHA, power=0.8
            )
            cell = {
                "tolerance": tol,
                "share": share,
                "passed": float(passed.mean()),
                "mean_requests": float(need.mean()),
                "median_requests": float(np.median(need)),
                "p80_requests": float(np.quantile(need, 0.8)),
                "fixed_horizon_80pct_power": fixed,
                "median_over_fixed": float(np.median(need)) / fixed,
                "p80_over_fixed": float(np.quantile(need, 0.8)) / fixed,
                "mean_over_fixed": float(need.mean()) / fixed,
            }
            out[f"{tol:g}/{share:g}"] = cell
            progress(
                f"time to PASS, tolerance {tol:g} share {share:.0%}: median {cell['median_requests']:.0f} canary "
                f"requests = {cell['median_over_fixed']:.2f}x fixed-horizon ({fixed:.0f}); 80th percentile "
                f"{cell['p80_over_fixed']:.2f}x; passed {cell['passed']:.3f}"
            )
    return out


# ---------------------------------------------------------------- A/A section
def aa_section(runs: int, looks: int, rng, *, mwu: bool) -> dict:
    out = {}
    for share in SHARES:
        s = constant(share, looks)
        c, b = simulate(s, 1.0, runs, rng)
        fa = float(np.mean(ours_first(c, b, s) < looks))
        rate = c / s.n_c
        row = {
            "runs": runs,
            "looks": looks,
            "ours": fa,
            "ours_ci95": wilson(fa, runs),
            # Flagger's documented example: success rate >= 99 %, rollback after 10 failed checks (a total:
            # `FailedChecks` counts up during the analysis and is not reset by a passing check)
            "flagger_doc_example": float(np.mean(np.cumsum(rate > 0.01, axis=1)[:, -1] >= 10)),
            "ztest_5pct_every_look": float(np.mean(np.any(_ztest(c, b, s) > 1.6448536269514722, axis=1))),
            "max_canary_rate_seen": float(rate.max()),
        }
        if mwu:
            row["mwu_p02_every_look"] = float(
                np.mean(np.any(mwu_z(c, b, s)[:, 2:] > 2.053748910631823, axis=1))
            )
        out[f"{share:g}"] = row
        progress(f"A/A share {share:.0%}: gatekeeper false alarms {fa:.4f} in {runs} runs x {looks} looks")
    return out


def _ztest(c, b, s: Schedule) -> np.ndarray:
    """One-sided pooled two-proportion z on cumulative counts at every look."""
    cc, cb = np.cumsum(c, axis=1), np.cumsum(b, axis=1)
    nc, nb = np.cumsum(s.n_c), np.cumsum(s.n_b)
    pooled = (cc + cb) / (nc + nb)
    se = np.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / nb))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, (cc / nc - cb / nb) / se, 0.0)


def wilson(p: float, n: int, z: float = 1.96) -> list[float]:
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


# ---------------------------------------------------------------- report
def table(results: dict) -> str:
    head = (
        f"{'share':>5} {'ratio':>5} | {'ours':>7} {'orc-cond':>8} {'a/b':>5} | {'orc-1s':>7} {'a/b1':>5} | "
        f"{'cf-2s':>7} {'cf-1s':>6} | {'flagger':>8} {'k':>2} {'c/a':>5} | {'mwu':>8} {'d/a':>5} | "
        f"{'bad ev':>6}"
    )
    lines = [head, "-" * len(head)]
    for key, cell in results["cells"].items():
        o = cell["ours"]["mean_requests"]
        f, m = cell["flagger"], cell.get("kayenta_mwu")
        mwu = f"{m['mean_requests']:8.0f} {m['mean_requests'] / o:5.1f}" if m else f"{'-':>8} {'-':>5}"
        cens = "+" if f["detected"] < 1 else " "
        lines.append(
            f"{cell['share']:5.0%} {cell['ratio']:5.1f} | {o:7.0f} {cell['oracle_cond']['mean_requests']:8.0f} "
            f"{cell['ratio_vs_oracle_cond']:5.2f} | {cell['oracle_one_sample']['mean_requests']:7.0f} "
            f"{cell['ratio_vs_oracle_one_sample']:5.2f} | {cell['closed_form_two_sample']:7.0f} "
            f"{cell['closed_form_one_sample']:6.0f} | {f['mean_requests']:7.0f}{cens} {f['k']:2d} "
            f"{f['mean_requests'] / o:5.1f} | {mwu} | {cell['ours']['mean_bad_events']:6.1f}"
        )
        del key
    return "\n".join(lines)


def svg(results: dict, path_example: dict, diurnal_paths: tuple[dict, dict]) -> str:
    """Requests to FAIL per method and ratio (one panel per share, log scale) and two e-value paths."""
    w, h, pad = 980, 640, 50
    methods = [
        ("ours", "gatekeeper (a)", "#1b7837"),
        ("oracle_cond", "oracle SPRT, same looks (b)", "#2166ac"),
        ("flagger", "Flagger-style (c)", "#b2182b"),
        ("kayenta_mwu", "Kayenta-style MWU (d)", "#e08214"),
    ]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
        'font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        '<text x="20" y="22" font-size="14">Canary requests until FAIL (mean, log scale), baseline 1 %, '
        "alpha = 0.01, equal A/A false-alarm rate</text>",
    ]
    pw, ph, top = (w - 2 * pad) / 3 - 20, 230, 50
    lo, hi = 1.5, 5.5  # log10 range of the y axis
    for i, share in enumerate(SHARES):
        x0 = pad + i * (pw + 30)
        parts.append(f'<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        parts.append(
            f'<text x="{x0 + pw / 2}" y="{top - 6}" text-anchor="middle">canary share {share:.0%}</text>'
        )
        for dec in range(2, 6):
            y = top + ph - (dec - lo) / (hi - lo) * ph
            parts.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y}" y2="{y}" stroke="#eee"/>')
            parts.append(f'<text x="{x0 - 4}" y="{y + 4}" text-anchor="end">1e{dec}</text>')
        for j, r in enumerate(RATIOS):
            x = x0 + (j + 0.5) * pw / len(RATIOS)
            parts.append(f'<text x="{x}" y="{top + ph + 14}" text-anchor="middle">{r:g}x</text>')
        for key, _, colour in methods:
            pts = []
            for j, r in enumerate(RATIOS):
                cell = results["cells"].get(f"{share:g}/{r:g}", {})
                if key in cell:
                    v = math.log10(max(cell[key]["mean_requests"], 10**lo))
                    pts.append(
                        (x0 + (j + 0.5) * pw / len(RATIOS), top + ph - (min(v, hi) - lo) / (hi - lo) * ph)
                    )
            if pts:
                d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                parts.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="2"/>')
                parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in pts]
    for n, (_, label, colour) in enumerate(methods):
        parts.append(
            f'<rect x="{pad + n * 210}" y="{top + ph + 26}" width="12" height="12" fill="{colour}"/>'
        )
        parts.append(f'<text x="{pad + n * 210 + 16}" y="{top + ph + 36}">{label}</text>')
    # e-value paths
    top2, ph2, pw2 = 390, 200, w - 2 * pad
    parts.append(
        f'<text x="20" y="{top2 - 14}" font-size="14">log10 e-value: {path_example["title"]} (green); '
        "diurnal traffic with stage changes, canary 1.5x (purple) and A/A (grey); dashed: 1/alpha</text>"
    )
    parts.append(f'<rect x="{pad}" y="{top2}" width="{pw2}" height="{ph2}" fill="none" stroke="#999"/>')
    ymin, ymax = -3.0, 5.0
    span = min(400, max(len(p["log10_e"]) for p in (path_example, *diurnal_paths)))

    def sy(v: float) -> float:
        return top2 + ph2 - (min(max(v, ymin), ymax) - ymin) / (ymax - ymin) * ph2

    for tick in range(int(ymin), int(ymax) + 1, 2):
        parts.append(f'<text x="{pad - 4}" y="{sy(tick) + 4}" text-anchor="end">{tick}</text>')
    for tick in range(0, span + 1, 50):
        parts.append(
            f'<text x="{pad + tick / span * pw2}" y="{top2 + ph2 + 14}" text-anchor="middle">{tick}</text>'
        )
    parts.append(
        f'<line x1="{pad}" x2="{pad + pw2}" y1="{sy(2)}" y2="{sy(2)}" stroke="#555" stroke-dasharray="5,4"/>'
    )
    colours = ("#1b7837", "#762a83", "#888888")
    for series, colour in zip((path_example, *diurnal_paths), colours, strict=True):
        d = " ".join(
            f"{pad + (k + 1) / span * pw2:.1f},{sy(v):.1f}" for k, v in enumerate(series["log10_e"][:span])
        )
        parts.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    for stage_at in diurnal_paths[0]["stage_changes"]:
        x = pad + stage_at / span * pw2
        parts.append(
            f'<line x1="{x}" x2="{x}" y1="{top2}" y2="{top2 + ph2}" stroke="#762a83" stroke-dasharray="2,3"/>'
        )
    parts.append(f'<text x="{pad + pw2 / 2}" y="{top2 + ph2 + 30}" text-anchor="middle">looks</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run (under a minute) to check the machinery")
    ap.add_argument("--runs", type=int, help="runs per detection cell (default 2000, quick 300)")
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument(
        "--look-seconds", type=int, default=60, help="seconds between looks (traffic per look scales)"
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    quick = args.quick
    global PER_LOOK
    # even, so a 50 % split is exact: with 166 vs 167 requests a look, per-look rates of equal counts differ
    # and Mann-Whitney on rates alarms in every A/A run
    PER_LOOK = 2 * round(PER_MIN * args.look_seconds / 120)
    runs = args.runs or (300 if quick else 2000)
    cal_runs, looks = (1000, 300) if quick else (6000, 600)
    aa_runs, aa_looks = (1000, 1000) if quick else (2500, 1000)
    rng = np.random.default_rng(args.seed)
    results: dict = {
        "config": {
            "baseline_rate": P0,
            "alpha": ALPHA,
            "beta_oracle": BETA,
            "requests_per_minute": PER_MIN,
            "look_seconds": args.look_seconds,
            "requests_per_look": PER_LOOK,
            "looks": looks,
            "runs_per_cell": runs,
            "calibration_runs": cal_runs,
            "grid": list(rm.DEFAULT_GRID),
            "weights": list(rm.DEFAULT_WEIGHTS),
            "quick": quick,
            "seed": args.seed,
        },
        "cells": {},
    }
    results["library_check"] = library_check(constant(0.1, 60), rng)
    progress(f"library check (vectorised == ratio_eprocess): {results['library_check']}")
    results["calibration"] = {}
    for share in SHARES:
        s = constant(share, looks)
        cal = calibrate_schedule(s, cal_runs, rng)
        results["calibration"][f"{share:g}"] = cal.__dict__
        progress(
            f"calibrated share {share:.0%}: gatekeeper A/A {cal.ours_fa:.4f}; Flagger thresholds "
            f"{ {k: round(v, 4) for k, v in cal.flagger.items()} }; MWU z > {cal.mwu:.2f}"
        )
        for ratio in RATIOS:
            cell = detection_cell(s, ratio, runs, cal, rng)
            one, two = closed_forms(ratio, share)
            cell |= {
                "share": share,
                "ratio": ratio,
                "closed_form_one_sample": one,
                "closed_form_two_sample": two,
            }
            o = cell["ours"]["mean_requests"]
            cell["ratio_vs_oracle_cond"] = o / cell["oracle_cond"]["mean_requests"]
            cell["ratio_vs_oracle_one_sample"] = o / cell["oracle_one_sample"]["mean_requests"]
            cell["ratio_vs_closed_form_two_sample"] = o / two
            cell["peer_advantage"] = {
                k: cell[k]["mean_requests"] / o
                for k in ("flagger", "flagger_1pct", "kayenta_mwu", "kayenta_mwu_1pct")
            }
            results["cells"][f"{share:g}/{ratio:g}"] = cell
            progress(
                f"share {share:.0%} ratio {ratio:g}: ours {o:.0f} requests, "
                f"{cell['ratio_vs_oracle_cond']:.2f}x oracle; Flagger {cell['peer_advantage']['flagger']:.1f}x, "
                f"MWU {cell['peer_advantage']['kayenta_mwu']:.1f}x ours"
            )
    results["aa"] = aa_section(aa_runs, aa_looks, rng, mwu=not quick)
    tol_runs, tol_looks = (200, 600) if quick else (1000, 1500)
    results["tolerance"] = tolerance_section(tol_runs, tol_looks, rng)
    results["time_to_pass"] = promote_section(*((200, 1200) if quick else (500, 4000)), rng)
    # diurnal traffic and base rate, stages 5 % -> 25 % -> 50 %, canary 2x
    s = diurnal(looks)
    cal = calibrate_schedule(s, cal_runs, rng, with_mwu=False)
    cell = detection_cell(s, 2.0, runs, cal, rng, with_mwu=False)
    results["diurnal"] = {
        "ratio": 2.0,
        "stage_changes_at_minute": [120, 300],
        "aa_false_alarms": cal.__dict__,
        **cell,
    }
    progress(
        f"diurnal: ours {cell['ours']['mean_requests']:.0f} requests ({cell['ours']['mean_minutes']:.0f} min); "
        f"A/A false alarms {cal.ours_fa:.4f}"
    )
    cells = results["cells"].values()
    results["summary"] = {
        "max_ratio_vs_oracle_cond_same_schedule": max(c["ratio_vs_oracle_cond"] for c in cells),
        "max_ratio_vs_oracle_one_sample_same_schedule": max(c["ratio_vs_oracle_one_sample"] for c in cells),
        "min_flagger_over_ours": min(c["peer_advantage"]["flagger"] for c in cells),
        "min_mwu_over_ours": min(c["peer_advantage"]["kayenta_mwu"] for c in cells),
        "min_flagger_1pct_over_ours": min(c["peer_advantage"]["flagger_1pct"] for c in cells),
        "min_mwu_1pct_over_ours": min(c["peer_advantage"]["kayenta_mwu_1pct"] for c in cells),
        "max_tolerance_ratio_vs_oracle": max(c["ratio_vs_oracle"] for c in results["tolerance"].values()),
        "max_time_to_pass_median_over_fixed": max(
            c["median_over_fixed"] for c in results["time_to_pass"].values()
        ),
        "max_time_to_pass_p80_over_fixed": max(c["p80_over_fixed"] for c in results["time_to_pass"].values()),
        "seconds": time.monotonic() - _T0,
    }
    # paths for the plot
    ex = constant(0.05, looks)
    c, b = simulate(ex, 2.0, 1, np.random.default_rng(args.seed + 1))
    ex_path = {"title": "share 5 %, canary 2x", "log10_e": (ours_log_e(c, b, ex)[0] / math.log(10)).tolist()}
    di_paths = []
    for ratio, seed in ((1.5, 2), (1.0, 3)):
        c, b = simulate(s, ratio, 1, np.random.default_rng(args.seed + seed))
        di_paths.append(
            {
                "ratio": ratio,
                "log10_e": (ours_log_e(c, b, s)[0] / math.log(10)).tolist(),
                "stage_changes": [120, 300],
            }
        )
    results["paths"] = {"example": ex_path, "diurnal": di_paths}
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = ("-quick" if quick else "") + ("" if args.look_seconds == 60 else f"-{args.look_seconds}s")
    (args.out / f"detection{suffix}.json").write_text(json.dumps(results, indent=1, default=float))
    (args.out / f"detection{suffix}.svg").write_text(svg(results, ex_path, (di_paths[0], di_paths[1])))
    print(table(results))
    print("\nmeans over runs; '+' = some runs never failed within the horizon (counted at the horizon).")
    print(json.dumps(results["summary"], indent=1))
    print(json.dumps(results["aa"], indent=1))
    print(f"\n{'tol':>4} {'share':>5} {'xtol':>5} | {'detected':>8} {'requests':>9} {'oracle':>8} {'a/o':>5}")
    for c in results["tolerance"].values():
        print(f"{c['tolerance']:4g} {c['share']:5.0%} {c['multiple']:5g} | {c['ours']['detected']:8.3f} "
              f"{c['ours']['mean_requests']:9.0f} {c['oracle']['mean_requests']:8.0f} {c['ratio_vs_oracle']:5.2f}")  # fmt: skip
    print(
        f"\n{'tol':>4} {'share':>5} | {'median':>8} {'p80':>8} {'fixed NI':>8} {'med/fix':>7} {'p80/fix':>7}"
    )
    for c in results["time_to_pass"].values():
        print(f"{c['tolerance']:4g} {c['share']:5.0%} | {c['median_requests']:8.0f} {c['p80_requests']:8.0f} "
              f"{c['fixed_horizon_80pct_power']:8.0f} {c['median_over_fixed']:7.2f} {c['p80_over_fixed']:7.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
