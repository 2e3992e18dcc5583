"""Benchmark: CPU per look of the controller_scale gate (an error ratio and a slow-request latency signal), without
Kubernetes: the controller's `Looker` against a real Prometheus, one look after another in one thread, so it takes
seconds where controller_scale takes minutes (and py-spy can record it: ``py-spy record --gil -- python ...``).

    .venv/bin/python bench/look_cpu.py [--looks 600] [--window 120]

Compares, in the same run, the scopes as the bench writes them (they differ only in `track`, so each signal asks
one folded query for both arms) with scopes that cannot be folded (the baseline's `track` as a regex: the same
series, one query per arm), and counts the queries that reach Prometheus per look. Writes
bench/results/look_cpu.json. Goal: <= 12 ms of CPU per look with folding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


class Counting:
    """Forwards to the real source and counts the queries that reach Prometheus."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def instant(self, query: str, *, at: float) -> Any:
        self.calls += 1
        return self.inner.instant(query, at=at)

    def range(self, query: str, *, start: float, end: float, step: float) -> Any:
        self.calls += 1
        return self.inner.range(query, start=start, end=end, step=step)


def main() -> None:
    from controller_scale import LAG, gate

    from gatekeeper.controller.kube import parse_gate
    from gatekeeper.controller.looks import Looker, warm_up
    from gatekeeper.evaluation import prometheus_source
    from gatekeeper.sim.prometheus import PrometheusServer
    from gatekeeper.sim.remote_write import RemoteWriteClient
    from gatekeeper.sim.scenario import ArmProfile, canary_scenario
    from gatekeeper.spec.status import GateStatus

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--looks", type=int, default=600)
    ap.add_argument("--window", type=float, default=120.0, help="seconds since the stage started")
    ap.add_argument("--services", type=int, default=10)
    ap.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per variant; the median is kept"
    )
    args = ap.parse_args()
    warm_up()
    results: dict[str, Any] = {"args": vars(args), "variants": {}}
    with PrometheusServer(out_of_order_time_window="1d") as prom:
        end = int(time.time() * 1000) // 15000 * 15000
        arm = ArmProfile(requests_per_second=50, error_ratio=0.01)
        writer = RemoteWriteClient(prom.remote_write_url)
        for s in range(args.services):
            writer.write(
                canary_scenario(service=f"svc-{s}", end_ms=end, canary=arm, baseline=arm, seed=s).series
            )
        variants = {"folded": {}, "per-arm": {"track": "=~baseline"}}
        specs = {
            name: [
                parse_gate(
                    {**_with_baseline(gate(i, f"svc-{i % args.services}", 10), extra), "metadata": {"name": f"g{i}", "namespace": "b"}}
                )
                for i in range(args.services)
            ]
            for name, extra in variants.items()
        }  # fmt: skip
        sources: dict[str, Counting] = {}

        def factory(settings: Any, url: str) -> Any:
            return sources.setdefault("current", Counting(prometheus_source(settings, url)))

        now = time.time() - LAG
        state = GateStatus(stage_started_at=now - args.window)
        samples: dict[str, list[float]] = {name: [] for name in variants}
        queries: dict[str, float] = {}
        for _ in range(args.rounds):
            for name in variants:
                sources.clear()
                looker = Looker(prometheus_url=prom.url, source_factory=factory)
                for k in range(20):  # warm connections and caches
                    looker.judge(specs[name][k % args.services], state, now=now)
                sources["current"].calls = 0
                c0 = time.process_time()
                for k in range(args.looks):
                    looker.judge(specs[name][k % args.services], state, now=now + k * 0.01)
                samples[name].append(1000 * (time.process_time() - c0) / args.looks)
                queries[name] = sources["current"].calls / args.looks
    for name in variants:
        results["variants"][name] = {
            "cpu_ms_per_look": round(statistics.median(samples[name]), 2),
            "cpu_ms_per_look_rounds": [round(x, 2) for x in samples[name]],
            "queries_per_look": queries[name],
        }
        print(f"{name:8} {results['variants'][name]['cpu_ms_per_look']:6.2f} ms CPU per look, "
              f"{queries[name]:g} queries per look")  # fmt: skip
    out = ROOT / "bench" / "results" / "look_cpu.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def _with_baseline(obj: dict[str, Any], extra: dict[str, str]) -> dict[str, Any]:
    scopes = obj["spec"]["scopes"]
    return {**obj, "spec": {**obj["spec"], "scopes": {**scopes, "baseline": {**scopes["baseline"], **extra}}}}


if __name__ == "__main__":
    main()
