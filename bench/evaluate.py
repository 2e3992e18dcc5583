"""Benchmark: wall time of `evaluate` for a 10-signal gate against a real Prometheus, as a ratio to the raw PromQL
round-trips of exactly the same queries (recorded, then replayed with plain HTTP GETs, one after another, asking
for the same uncompressed answers as PrometheusSource) in the same run; and CLI start-up time as a ratio to a
bare `python -c pass`.

    .venv/bin/python bench/evaluate.py [--repeat 20]

Prints a table and writes bench/results/evaluate.json. Goal: evaluate / raw round-trips <= 1.3.
Since each count signal asks one query for both arms with its freshness check inside (9 queries where there
were 32, 2026-11-25), round-trips fell ~4x and evaluate ~2.7x (209 -> 65-77 ms), so the ratio (1.35 -> 2.0)
now measures in-process CPU: mostly the sequential count tests (``ratio_eprocess``, ~5 ms each at 30 steps,
a Python loop per step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gatekeeper.evaluation import judge_gate
from gatekeeper.sim.prometheus import PrometheusServer
from gatekeeper.sim.remote_write import RemoteWriteClient
from gatekeeper.sim.scenario import ArmProfile, canary_scenario
from gatekeeper.sources.prometheus import PrometheusSource
from gatekeeper.spec import load_gate_text
from gatekeeper.spec.window import Window

ROOT = Path(__file__).resolve().parents[1]

GATE = """
name: bench
scopes:
  canary: {service: bench, track: canary}
  baseline: {service: bench, track: baseline}
stages: [{weight: 10, minDuration: 1m, minSamples: 100}]
signals:
  - {name: errors-5xx, kind: ratio, bad: 'http_requests_total{code=~"5.."}', total: http_requests_total}
  - {name: errors-500, kind: ratio, bad: 'http_requests_total{code="500"}', total: http_requests_total}
  - {name: errors-job, kind: ratio, bad: 'http_requests_total{code=~"5..",job="shop"}', total: 'http_requests_total{job="shop"}'}
  - {name: errors-any, kind: ratio, bad: 'http_requests_total{code!="200"}', total: http_requests_total}
  - {name: p99, kind: latency, histogram: http_request_duration_seconds, quantile: 0.99}
  - {name: p90, kind: latency, histogram: http_request_duration_seconds, quantile: 0.9}
  - {name: slow-1s, kind: latency, histogram: http_request_duration_seconds, slowerThan: 1s}
  - {name: slow-500ms, kind: latency, histogram: http_request_duration_seconds, slowerThan: 500ms}
  - {name: rps, kind: threshold, query: 'sum(rate(http_requests_total{${selector}}[1m]))', min: 1}
  - {name: err-rate-abs, kind: threshold, query: 'sum(rate(http_requests_total{${selector},code="500"}[5m])) / sum(rate(http_requests_total{${selector}}[5m]))', max: 0.05}
"""


class Recorder:
    """A MetricsSource that records every call it forwards, to replay the same queries raw."""

    def __init__(self, inner: PrometheusSource) -> None:
        self.inner, self.calls = inner, []

    def instant(self, query, *, at):  # type: ignore[no-untyped-def]
        self.calls.append(("/api/v1/query", {"query": query, "time": f"{at:.3f}"}))
        return self.inner.instant(query, at=at)

    def range(self, query, *, start, end, step):  # type: ignore[no-untyped-def]
        self.calls.append(
            (
                "/api/v1/query_range",
                {"query": query, "start": str(round(start)), "end": str(round(end)), "step": f"{step:g}"},
            )
        )
        return self.inner.range(query, start=start, end=end, step=step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    gate = load_gate_text(GATE)
    with PrometheusServer() as prom:
        end_ms = int(time.time() * 1000) // 15_000 * 15_000
        profile = ArmProfile(requests_per_second=50, error_ratio=0.01)
        scenario = canary_scenario(service="bench", end_ms=end_ms, canary=profile, baseline=profile, seed=1)
        RemoteWriteClient(prom.remote_write_url).write(scenario.series)
        window = Window(start=end_ms / 1000 - 1800, end=end_ms / 1000, step=60)
        source = PrometheusSource(prom.url, timeout=10)
        recorder = Recorder(source)
        judge_gate(gate, metrics=recorder, window=window)  # warm-up + record the queries
        calls = list(recorder.calls)
        client = httpx.Client(base_url=prom.url, timeout=10, headers={"Accept-Encoding": "identity"})
        evals, raws = [], []
        print(f"10-signal gate, {len(calls)} queries per evaluation, {args.repeat} rounds", file=sys.stderr)
        for i in range(args.repeat):
            t0 = time.perf_counter()
            judge_gate(gate, metrics=source, window=window)
            evals.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for path, params in calls:
                client.get(path, params=params).raise_for_status()
            raws.append(time.perf_counter() - t0)
            print(f"\r  round {i + 1}/{args.repeat}", end="", file=sys.stderr)
        print(file=sys.stderr)
    startup = _startup()
    result = {
        "queries_per_evaluation": len(calls),
        "evaluate_median_s": statistics.median(evals),
        "raw_roundtrips_median_s": statistics.median(raws),
        "ratio_evaluate_to_raw": statistics.median(evals) / statistics.median(raws),
        **startup,
    }
    print(f"{'measure':42} {'value':>10}")
    for k, v in result.items():
        print(f"{k:42} {v:>10.4g}")
    out = ROOT / "bench" / "results" / "evaluate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def _startup(n: int = 5) -> dict[str, float]:
    def best(cmd: list[str]) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        return min(times)

    bare = best([sys.executable, "-c", "pass"])
    cli = best([sys.executable, "-m", "gatekeeper.cli.main", "--help"])
    return {"cli_startup_s": cli, "python_startup_s": bare, "ratio_cli_to_python": cli / bare}


if __name__ == "__main__":
    main()
