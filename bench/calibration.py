"""Calibration benchmark: A/A false FAIL per rollout through a real Prometheus, with the shipped example gate.

Both arms are the same version (A/A): any FAIL is a needless rollback. Per cell (scrape interval x tolerance),
`--rollouts` rollouts of `gates/http-canary.yaml` (ratio error-rate, latency p99 and slow-requests signals;
stages 1% -> 5% -> 25% -> 50%) are simulated as exporters would be scraped: per arm, `http_requests_total`
counters (codes 200/500) and a latency histogram, sampled every 15, 30 or 60 s with a random phase per target.
Every rollout gets its own `service` label; all are remote-written into one fresh Prometheus per cell, then
each stage is judged by `judge_gate` (the production path: raw-sample queries, exact counts, the shipped
gate's alphas and tolerances) at the stage's end, continuing the evidence carried from the previous stage,
exactly as the controller does. The look path is recomputed from the stage start at every look, so judging a
stage once at its end sees every earlier look's FAIL too (the e-value path's maximum); advancing earlier, on
a PASS, can only remove FAILs. A rollout FAILs when any stage does. Goal: false FAIL <= alpha in every cell.

Reference measured in the same run, on the same loaded series: the per-step counts Prometheus' `increase()`
gives (what gatekeeper used before), fed to the same e-process for the error-rate signal. Its false-FAIL rate
is the figure the exact counts fix.

Run:  .venv/bin/python bench/calibration.py [--rollouts 1000] [--quick]   (writes bench/results/calibration.json)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from gatekeeper.evaluation import judge_gate
from gatekeeper.judge import signal_alphas
from gatekeeper.sim.prometheus import PrometheusServer
from gatekeeper.sim.remote_write import RemoteWriteClient, Series
from gatekeeper.sources.prometheus import PrometheusSource
from gatekeeper.spec import Verdict, load_gate
from gatekeeper.spec.window import Window
from gatekeeper.stats.sequential import ratio_eprocess

ROOT = Path(__file__).resolve().parent.parent
GATE = ROOT / "gates" / "http-canary.yaml"
OUT = ROOT / "bench" / "results"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)
RPS = 25.0  # requests per second over both arms (the gate's stage minimums are met)
ERROR_RATE = 0.01
STAGE_SECONDS = (240, 240, 600, 600)  # each at least the stage's minimum duration
_T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def simulate(
    rng: np.random.Generator, *, service: str, start: float, shares: list[float], spacing: float
) -> list[Series]:
    """Both arms of one A/A rollout: per-scrape cumulative counters, one process per arm."""
    bounds = np.array(BUCKETS)
    out: list[Series] = []
    edges = np.cumsum([0, *STAGE_SECONDS]) + start
    end = edges[-1]
    for track in ("canary", "baseline"):
        phase = rng.uniform(0, spacing)
        scrapes = np.arange(start - 300 + phase, end, spacing)
        # traffic per scrape interval, split by the stage's weight at that time
        stage = np.clip(np.searchsorted(edges, scrapes, side="right") - 1, 0, len(shares) - 1)
        share = np.array(shares)[stage] if track == "canary" else 1 - np.array(shares)[stage]
        share = np.where(scrapes < start, 0.0 if track == "canary" else 1.0, share)
        n = rng.poisson(RPS * spacing * share)
        err = rng.binomial(n, ERROR_RATE)
        lat = [np.exp(rng.normal(np.log(0.1), 0.6, k)) for k in n]
        per_bucket = np.array([np.searchsorted(bounds, x, side="left") for x in lat], dtype=object)
        counts = np.zeros((len(n), len(bounds)))
        for i, idx in enumerate(per_bucket):
            np.add.at(counts[i], idx, 1)
        cum_buckets = np.cumsum(np.cumsum(counts, axis=1), axis=0)
        ok_total, err_total = np.cumsum(n - err), np.cumsum(err)
        ts = np.round(scrapes * 1000).astype(np.int64)
        base = {"service": service, "track": track, "job": "cal"}
        out.append(
            Series(
                {"__name__": "http_requests_total", **base, "code": "200"},
                list(zip(ts, ok_total, strict=True)),
            )
        )
        out.append(
            Series(
                {"__name__": "http_requests_total", **base, "code": "500"},
                list(zip(ts, err_total, strict=True)),
            )
        )
        for j, b in enumerate(bounds):
            out.append(
                Series(
                    {"__name__": "http_request_duration_seconds_bucket", **base, "le": _le(b)},
                    list(zip(ts, cum_buckets[:, j], strict=True)),
                )
            )
    return out


def run_cell(*, spacing: float, tolerance: float | None, rollouts: int, seed: int) -> dict:
    gate0 = load_gate(GATE, args={"service": "x"})
    shares = [s.weight / 100 for s in gate0.stages]
    assert len(shares) == len(STAGE_SECONDS)
    now = math.floor(time.time() / 60) * 60
    start = now - sum(STAGE_SECONDS) - 120
    rng = np.random.default_rng(seed)
    fails = 0
    fail_signals: dict[str, int] = {}
    old_fails = 0
    elapsed_eval = 0.0
    with PrometheusServer() as prom:
        writer = RemoteWriteClient(prom.remote_write_url, timeout=60)
        batch: list[Series] = []
        for r in range(rollouts):
            batch += simulate(rng, service=f"cal{r}", start=start, shares=shares, spacing=spacing)
            if len(batch) > 4000 or r == rollouts - 1:
                writer.write(batch)
                batch = []
        progress(f"  loaded {rollouts} rollouts at {spacing:g}-s spacing")
        source = PrometheusSource(prom.url, timeout=30)
        step = gate0.source.prometheus.step
        edges = np.cumsum([0, *STAGE_SECONDS]) + start
        for r in range(rollouts):
            gate = load_gate(GATE, args={"service": f"cal{r}"})
            if tolerance is not None:
                gate = gate.model_copy(
                    update={"signals": [s.model_copy(update={"tolerance": tolerance}) for s in gate.signals]}
                )
            carried: dict = {}
            t0 = time.perf_counter()
            failed = None
            for k in range(len(shares)):
                window = Window(start=float(edges[k]), end=float(edges[k + 1]), step=step)
                j = judge_gate(gate, metrics=source, window=window, stage=k, stage_started=float(edges[k]),
                                  carried=carried)  # fmt: skip
                if j.verdict in (Verdict.NODATA, Verdict.ERROR):
                    raise SystemExit(f"rollout {r} stage {k}: {j.verdict}: {j.reason}")
                if j.verdict == Verdict.FAIL:
                    failed = [s.name for s in j.failing]
                    break
                carried = {**carried, **j.carry()}
            elapsed_eval += time.perf_counter() - t0
            if failed:
                fails += 1
                for name in failed:
                    fail_signals[name] = fail_signals.get(name, 0) + 1
            old_fails += _old_path_fails(source, gate, edges, step)
            if (r + 1) % max(rollouts // 5, 1) == 0:
                progress(f"  {r + 1}/{rollouts} rollouts judged, {fails} false FAIL so far")
        source.close()
    alpha = gate0.alpha
    return {
        "scrape_interval_s": spacing,
        "tolerance": "shipped" if tolerance is None else tolerance,
        "rollouts": rollouts,
        "alpha": alpha,
        "false_fail": fails / rollouts,
        "false_fail_count": fails,
        "by_signal": fail_signals,
        "within_goal": fails / rollouts <= alpha,
        "reference_increase_error_rate_false_fail": old_fails / rollouts,
        "ms_per_rollout": 1000 * elapsed_eval / rollouts,
    }


def _old_path_fails(source: PrometheusSource, gate, edges: np.ndarray, step: float) -> int:  # type: ignore[no-untyped-def]
    """The error-rate signal as it was judged before: per-step `sum(increase(x[step]))` counts (extrapolated),
    the same e-process continuing across stages at the signal's alpha and tolerance."""
    signal = gate.signal("error-rate")
    alpha = signal_alphas(gate)["error-rate"]
    svc = gate.scopes.canary["service"]
    counts = {}
    for what, sel in (("bad", 'code="500"'), ("all", "")):
        for track in ("canary", "baseline"):
            matchers = ",".join(x for x in (f'service="{svc}"', f'track="{track}"', sel) if x)
            q = f"sum(increase(http_requests_total{{{matchers}}}[{int(step)}s]))"
            res = source.range(q, start=float(edges[0]) + step, end=float(edges[-1]), step=step)
            values = res.series[0].values if res.series else np.zeros(0)
            counts[(what, track)] = np.rint(np.nan_to_num(values))
    n = min(len(v) for v in counts.values())
    c, b = counts[("bad", "canary")][:n], counts[("bad", "baseline")][:n]
    nc, nb = counts[("all", "canary")][:n], counts[("all", "baseline")][:n]
    ok = (nc > 0) & (nb > 0)
    r = ratio_eprocess(canary_bad=c[ok].astype(int), baseline_bad=b[ok].astype(int),
                       canary_share=nc[ok] / (nc[ok] + nb[ok]), alpha=alpha, margin=signal.tolerance)  # fmt: skip
    return int(r.crossed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rollouts", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="60 rollouts per cell, for a smoke run")
    ap.add_argument("--out", type=Path, default=OUT / "calibration.json")
    args = ap.parse_args()
    rollouts = 60 if args.quick else args.rollouts
    cells = []
    for i, spacing in enumerate((15.0, 30.0, 60.0)):
        for j, tol in enumerate((None, 0.0)):
            progress(f"cell: scrape every {spacing:g}s, tolerance {'as shipped' if tol is None else tol}")
            cell = run_cell(spacing=spacing, tolerance=tol, rollouts=rollouts, seed=20261203 + 10 * i + j)
            progress(
                f"  false FAIL {cell['false_fail']:.2%} (goal <= {cell['alpha']:.0%}); "
                f"increase()-based error-rate reference {cell['reference_increase_error_rate_false_fail']:.2%}"
            )
            cells.append(cell)
    result = {
        "benchmark": "calibration",
        "gate": str(GATE.relative_to(ROOT)),
        "rollouts_per_cell": rollouts,
        "stage_seconds": STAGE_SECONDS,
        "requests_per_second": RPS,
        "error_rate": ERROR_RATE,
        "quick": args.quick,
        "cells": cells,
        "all_within_goal": all(c["within_goal"] for c in cells),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'scrape':>7} {'tolerance':>9} {'false FAIL':>11} {'alpha':>6} {'increase() ref':>15}")
    for c in cells:
        print(
            f"{c['scrape_interval_s']:>6g}s {c['tolerance']!s:>9} {c['false_fail']:>11.2%} {c['alpha']:>6.0%} "
            f"{c['reference_increase_error_rate_false_fail']:>15.2%}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
