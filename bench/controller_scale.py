"""Benchmark: one controller replica driving 100 and 500 gates at a 10 s interval against the real API server
(kube-apiserver + etcd) and a real Prometheus. Reports decision latency (from a look's due time to its decision
written, including queueing for a worker) p50/p90/p99/max, looks per second, the controller process's peak RSS
and CPU, and the p99 as a ratio to one gate's evaluation alone, measured in the same run.

    .venv/bin/python bench/controller_scale.py [--gates 100 500] [--seconds 60] [--warmup 25] [--workers 8]

Each gate has its own HTTPRoute and two signals (an error ratio and a slow-request latency) over one of
``--services`` synthetic services loaded into Prometheus; its first stage lasts an hour, so every look is a full
evaluation. The gate clock runs at real speed, ten minutes behind the wall clock, inside the loaded data.
Writes bench/results/controller_scale.json (``_raw`` with ``--source raw``). Goal: 500 gates, p99 < 1 s, peak
RSS < 300 MB. Measurement starts once every gate has started (its canary at 1%), after ``--warmup``.

Where a look's CPU goes (py-spy --gil on the controller at 500 gates, steady state, 2026-11-25): ~73%
evaluating signals, of which ~34 points are PrometheusSource's HTTP stack (requests + prometheus-api-client),
~14 the count statistics (``ratio_eprocess``) and ~10 parsing and aligning answers; ~27% the controller itself
(executor and status writes, watch, scheduling, spec hashing). A look of this gate runs 2 queries (12 before
folding): each count signal asks one range query for both arms (the scopes differ only in ``track``, so it
selects ``track=~"canary|baseline"`` and groups by ``track``) carrying every counter's per-step increments and
its newest-sample time, the freshness check that took 6 instant queries; answers come uncompressed (gzip cost
~35% of a query's CPU). CPU per look went from 34-46 ms to ~14 ms (``bench/look_cpu.py``: the look alone,
without the controller, ~8-10 ms folded vs ~14 ms per arm). The controller process is GIL-bound near one core,
so its throughput is ~1 / (CPU per look).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.controller_support: the Gate CRD installer shared with the tests
SIGNALS = [
    {"name": "error-rate", "kind": "ratio", "bad": 'http_requests_total{code=~"5.."}', "total": "http_requests_total",
     "tolerance": 0.5, "critical": True},
    {"name": "slow-requests", "kind": "latency", "histogram": "http_request_duration_seconds", "slowerThan": "1s",
     "tolerance": 0.5},
]  # fmt: skip
LAG = 600.0  # the gate clock runs this far behind the wall clock, so looks always find fresh data


def gate(i: int, service: str, interval: float) -> dict[str, Any]:
    return {
        "apiVersion": "gatekeeper.dev/v1alpha1",
        "kind": "Gate",
        "metadata": {"name": f"g{i:04d}"},
        "spec": {
            "scopes": {"canary": {"service": service, "track": "canary"}, "baseline": {"service": service, "track": "baseline"}},
            "source": {"prometheus": {"step": "15s", "timeout": "5s", "retries": 0}},
            "interval": f"{interval:g}s",
            "stages": [{"weight": 1, "minDuration": "1h", "minSamples": 100}, {"weight": 100, "minDuration": "1h"}],
            "signals": SIGNALS,
            "routing": {"kind": "gateway-api", "name": f"r{i:04d}", "canaryBackend": "web-canary", "stableBackend": "web-stable"},
        },
    }  # fmt: skip


def route(i: int) -> dict[str, Any]:
    refs = [
        {"name": "web-stable", "port": 80, "weight": 100},
        {"name": "web-canary", "port": 80, "weight": 0},
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": f"r{i:04d}", "annotations": {"gatekeeper.dev/owner": f"g{i:04d}"}},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": refs}]},
    }


# -- a lean metrics source, for comparison only -----------------------------------------------------------------
class RawSource:
    """``MetricsSource`` over urllib3 directly (no requests / prometheus-api-client layers). Used with
    ``--source raw`` to show how much of a look's CPU is the HTTP client's; production uses ``PrometheusSource``."""

    def __init__(self, url: str, timeout: float) -> None:
        import urllib3

        self.url, self.timeout = url.rstrip("/"), timeout
        self._pool = urllib3.PoolManager(maxsize=4, timeout=urllib3.Timeout(total=timeout), retries=False)

    def instant(self, query: str, *, at: float) -> Any:
        return self._get("/api/v1/query", query, {"time": f"{at:.3f}"}, instant=True)

    def range(self, query: str, *, start: float, end: float, step: float) -> Any:
        return self._get(
            "/api/v1/query_range",
            query,
            {"start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
            instant=False,
        )

    def _get(self, path: str, query: str, params: dict[str, str], *, instant: bool) -> Any:
        import numpy as np
        import urllib3

        from gatekeeper.sources.base import QueryRejected, QueryResult, Series, SourceUnavailable

        t0 = time.perf_counter()
        try:
            r = self._pool.request("GET", self.url + path, fields={"query": query, **params})
        except urllib3.exceptions.HTTPError as e:
            raise SourceUnavailable(
                f"cannot reach Prometheus at {self.url} ({e})", query=query, url=self.url
            ) from e
        if r.status >= 400:
            cls = QueryRejected if r.status < 500 and r.status != 429 else SourceUnavailable
            raise cls(f"Prometheus answered HTTP {r.status}", query=query, url=self.url)
        out = []
        for item in json.loads(r.data)["data"]["result"]:
            pairs = ([item["value"]] if "value" in item else []) if instant else item.get("values", [])
            ts = np.array([float(p[0]) for p in pairs], dtype=float)
            vals = np.array([float(p[1]) for p in pairs], dtype=float)
            out.append(Series(labels=dict(item.get("metric", {})), timestamps=ts, values=vals))
        return QueryResult(query=query, series=tuple(out), elapsed=time.perf_counter() - t0)


def raw_source(settings: Any, url: str) -> Any:
    return RawSource(url, settings.timeout)


# -- the controller under test, in its own process ------------------------------------------------------------
def controller_main(kubeconfig: str, namespace: str, prometheus: str, workers: int, warmup: float, seconds: float,
                    out: str, source: str, started: Any) -> None:  # fmt: skip
    import asyncio
    import logging

    from kubernetes import config

    from gatekeeper.controller.clock import ScaledClock
    from gatekeeper.controller.leader import LeaseSettings
    from gatekeeper.controller.runtime import Controller, Settings

    logging.basicConfig(level=logging.WARNING)
    api = config.new_client_from_config(config_file=kubeconfig)
    settings = Settings(
        identity="bench", namespace=namespace, prometheus_url=prometheus, workers=workers, health_port=None,
        lease=LeaseSettings(namespace=namespace),
    )  # fmt: skip
    factory = raw_source if source == "raw" else None
    ctl = Controller(
        api, settings, clock=ScaledClock(origin=time.time() - LAG, rate=1.0), source_factory=factory
    )

    async def drive() -> dict[str, Any]:
        task = asyncio.create_task(ctl.run())
        await asyncio.to_thread(started.wait, 600)  # every gate started: measure the steady state
        await asyncio.sleep(warmup)
        start, looks0, errors0 = len(ctl.latencies), ctl.looks, ctl.errors
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        lat = list(ctl.latencies)[start:]
        took = time.monotonic() - t0
        looks, errors = ctl.looks - looks0, ctl.errors - errors0
        ctl.stop()
        await task
        return {"latencies": lat, "looks": looks, "errors": errors, "seconds": took}

    Path(out).write_text(json.dumps(asyncio.run(drive())))


def wait_started(custom: Any, ns: str, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = custom.list_namespaced_custom_object("gatekeeper.dev", "v1alpha1", ns, "gates")["items"]
        done = sum(1 for g in items if ((g.get("status") or {}).get("intent") or {}).get("done"))
        if done == n:
            return
        time.sleep(1.0)
    raise SystemExit(f"the gates did not all start within {timeout:g}s")


def _proc_stat(pid: int) -> tuple[float, float, float]:
    """(RSS MB, peak RSS MB, CPU seconds) of a live process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    kb = {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024, cpu


# -- the run ----------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gates", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=25.0)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument(
        "--source",
        choices=["prometheus", "raw"],
        default="prometheus",
        help="raw: a lean urllib3 source instead of PrometheusSource (comparison only)",
    )
    args = ap.parse_args()

    from gatekeeper.sim.kube import KubeCluster
    from gatekeeper.sim.prometheus import PrometheusServer
    from gatekeeper.sim.remote_write import RemoteWriteClient
    from gatekeeper.sim.scenario import ArmProfile, canary_scenario
    from tests.controller_support import install_gate_crd

    results: dict[str, Any] = {"args": vars(args), "runs": []}
    with tempfile.TemporaryDirectory() as tmp, KubeCluster.start(Path(tmp) / "kube") as cluster, \
            PrometheusServer(out_of_order_time_window="1d") as prom:  # fmt: skip
        cluster.install_crds()
        api = cluster.api_client()
        install_gate_crd(api)
        t0 = time.monotonic()
        end = int(time.time() * 1000) // 15000 * 15000
        arm = ArmProfile(requests_per_second=50, error_ratio=0.01)
        writer = RemoteWriteClient(prom.remote_write_url)
        for s in range(args.services):
            writer.write(
                canary_scenario(service=f"svc-{s}", end_ms=end, canary=arm, baseline=arm, seed=s).series
            )
        print(f"loaded {args.services} services into Prometheus in {time.monotonic() - t0:.1f}s")
        reference = reference_look(prom.url, args.interval)
        results["reference"] = reference
        print(f"reference: one gate evaluated alone: median {reference['median'] * 1000:.0f} ms, "
              f"p99 {reference['p99'] * 1000:.0f} ms")  # fmt: skip
        for n in args.gates:
            others = {
                "prometheus": int(prom.pid or 0),
                "kube-apiserver": cluster.pids[0],
                "etcd": cluster.pids[1],
            }
            run = scale_run(cluster, api, prom.url, n=n, args=args, tmp=Path(tmp), others=others)
            run["p99_over_reference_median"] = round(run["p99_s"] / reference["median"], 1)
            results["runs"].append(run)
            print(json.dumps(run))
        api.close()
    out = (
        ROOT
        / "bench"
        / "results"
        / f"controller_scale{'' if args.source == 'prometheus' else '_' + args.source}.json"
    )
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"{'gates':>6} {'looks/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'peak MB':>8} "
          f"{'cpu/look ms':>11} {'errors':>6}")  # fmt: skip
    for r in results["runs"]:
        print(f"{r['gates']:>6} {r['looks_per_s']:>8.1f} {r['p50_s'] * 1000:>7.0f} {r['p90_s'] * 1000:>7.0f} "
              f"{r['p99_s'] * 1000:>7.0f} {r['max_s'] * 1000:>7.0f} {r['peak_rss_mb']:>8.0f} "
              f"{r['cpu_ms_per_look']:>11.1f} {r['errors']:>6}  others busy {r['other_cores_busy']}")  # fmt: skip
    print(f"wrote {out}")


def reference_look(url: str, interval: float, repeat: int = 30) -> dict[str, float]:
    """One gate's evaluation alone, sequentially: the floor the controller's latency is compared with."""
    from gatekeeper.controller.kube import parse_gate
    from gatekeeper.controller.looks import Looker, warm_up
    from gatekeeper.spec.status import GateStatus

    warm_up()
    spec = parse_gate({**gate(0, "svc-0", interval), "metadata": {"name": "g0000", "namespace": "ref"}})
    looker = Looker(prometheus_url=url)
    now = time.time() - LAG
    state = GateStatus(stage_started_at=now - 120)
    times = []
    for k in range(repeat):
        t = time.perf_counter()
        looker.judge(spec, state, now=now + k)
        times.append(time.perf_counter() - t)
    times.sort()
    return {"median": statistics.median(times), "p99": times[min(len(times) - 1, int(0.99 * len(times)))]}


def scale_run(
    cluster: Any, api: Any, prom_url: str, *, n: int, args: Any, tmp: Path, others: dict[str, int]
) -> dict[str, Any]:
    from kubernetes import client

    ns = f"bench-{n}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    custom = client.CustomObjectsApi(api)
    t0 = time.monotonic()

    def create(i: int) -> None:
        custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", ns, "httproutes", route(i))
        gate_obj = gate(i, f"svc-{i % args.services}", args.interval)
        custom.create_namespaced_custom_object("gatekeeper.dev", "v1alpha1", ns, "gates", gate_obj)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(n)))
    print(f"created {n} gates and routes in {time.monotonic() - t0:.1f}s")
    out = tmp / f"run-{n}.json"
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    proc = ctx.Process(
        target=controller_main,
        args=(
            str(cluster.kubeconfig),
            ns,
            prom_url,
            args.workers,
            args.warmup,
            args.seconds,
            str(out),
            args.source,
            started,
        ),
    )
    proc.start()
    t_start = time.monotonic()
    samples: list[tuple[float, float, float, float]] = []  # (monotonic, rss, peak rss, cpu seconds)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set() and proc.is_alive():
            with contextlib.suppress(OSError, KeyError, IndexError):
                samples.append((time.monotonic(), *_proc_stat(int(proc.pid or 0))))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    wait_started(custom, ns, n)
    startup = time.monotonic() - t_start
    print(f"all {n} gates started (canary at 1%) {startup:.1f}s after the controller")
    started.set()
    measured_from = time.monotonic() + args.warmup
    time.sleep(args.warmup)
    before = {name: _proc_stat(pid)[2] for name, pid in others.items()}
    t_other = time.monotonic()
    time.sleep(args.seconds)
    busy = {
        name: round((_proc_stat(pid)[2] - before[name]) / (time.monotonic() - t_other), 2)
        for name, pid in others.items()
    }
    proc.join(args.warmup + args.seconds + 120)
    stop.set()
    sampler.join()
    if proc.exitcode != 0:
        raise SystemExit(f"the controller process exited {proc.exitcode}")
    data = json.loads(out.read_text())
    lat = sorted(data["latencies"])
    if not lat:
        raise SystemExit("no looks were measured")

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))]

    peak = max(s[2] for s in samples)
    window = [s for s in samples if measured_from <= s[0] <= measured_from + args.seconds]
    cpu = window[-1][3] - window[0][3] if len(window) > 1 else float("nan")
    cpu_looks = data["looks"] * (window[-1][0] - window[0][0]) / data["seconds"] if len(window) > 1 else 1
    promoted = sum(
        1 for g in custom.list_namespaced_custom_object("gatekeeper.dev", "v1alpha1", ns, "gates")["items"]
        if (g.get("status") or {}).get("weight") == 1
    )  # fmt: skip
    return {
        "gates": n,
        "looks": data["looks"],
        "looks_per_s": round(data["looks"] / data["seconds"], 1),
        "expected_looks_per_s": round(n / args.interval, 1),
        "p50_s": round(q(0.50), 4),
        "p90_s": round(q(0.90), 4),
        "p99_s": round(q(0.99), 4),
        "max_s": round(lat[-1], 4),
        "peak_rss_mb": round(peak, 1),
        "cpu_ms_per_look": round(1000 * cpu / max(cpu_looks, 1), 1),
        "cpu_cores_busy": round(cpu / (window[-1][0] - window[0][0]), 2) if len(window) > 1 else None,
        "errors": data["errors"],
        "gates_at_stage_0_weight_1": promoted,
        "startup_s": round(startup, 1),
        "other_cores_busy": busy,
        "source": args.source,
    }


if __name__ == "__main__":
    main()
