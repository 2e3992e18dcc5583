"""Benchmark: the size of recorded decisions (bytes per decision, per Gate) and the cost of encoding one, for
the 10-signal gate of `bench/evaluate.py` judged against a real Prometheus over stages of 5 min, 30 min and
2 h (15 s steps: 20, 120 and 480 steps; per-step counts are kept at 120 points at most).

    .venv/bin/python bench/decision_records.py [--repeat 20]

Sizes: the record's JSON, its gzip (what the ConfigMap holds) and its base64 (what travels in the API request),
as ratios to the JSON; a Gate's ConfigMap at its bound of 20 records of the largest kind. Time: encoding
(float rounding, JSON, gzip) as a ratio to a plain `json.dumps` of the same record in the same run. Writes
bench/results/decision_records.json.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

from gatekeeper.controller.decision_store import MAX_BYTES, MAX_RECORDS
from gatekeeper.controller.decisions import RECORD_BYTES, Decision, build_record, encode
from gatekeeper.evaluation import judge_gate
from gatekeeper.sim.prometheus import PrometheusServer
from gatekeeper.sim.remote_write import RemoteWriteClient
from gatekeeper.sim.scenario import ArmProfile, canary_scenario
from gatekeeper.sources.prometheus import PrometheusSource
from gatekeeper.spec import load_gate_text
from gatekeeper.spec.status import GateStatus, HistoryEntry, Phase
from gatekeeper.spec.window import Window

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"5 min": 300, "30 min": 1800, "2 h": 7200}


def _gate_text() -> str:
    spec = importlib.util.spec_from_file_location("bench_evaluate", ROOT / "bench" / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.GATE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    text = _gate_text()
    gate = load_gate_text(text)
    import yaml

    spec = {k: v for k, v in yaml.safe_load(text).items() if k != "name"}
    obj = {"metadata": {"name": "bench", "namespace": "shop", "uid": "0" * 36}, "spec": spec}
    rows = {}
    with PrometheusServer() as prom:
        end_ms = int(time.time() * 1000) // 15_000 * 15_000
        profile = ArmProfile(requests_per_second=50, error_ratio=0.01)
        scenario = canary_scenario(
            service="bench", end_ms=end_ms, duration_seconds=max(STAGES.values()) + 600,
            canary=profile, baseline=profile, seed=1,
        )  # fmt: skip
        RemoteWriteClient(prom.remote_write_url).write(scenario.series)
        source = PrometheusSource(prom.url, timeout=30)
        for label, seconds in STAGES.items():
            end = end_ms / 1000
            window = Window(start=end - seconds, end=end, step=15)
            judgement = judge_gate(gate, metrics=source, window=window, stage_started=end - seconds)
            entry = HistoryEntry(time=end, stage=0, weight=10, verdict=judgement.verdict.value,
                                 reason=judgement.reason, action="advance")  # fmt: skip
            status = GateStatus(phase=Phase.PROGRESSING, stage=1, history=[entry])
            record = build_record(decision=Decision(entry), gate=obj, status=status, judgement=judgement,
                                  spec_hash="x" * 64)  # fmt: skip
            plain = json.dumps(record, separators=(",", ":"), default=str)
            blob, stored = encode(record)
            dumps, encodes = [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                json.dumps(record, separators=(",", ":"), default=str)
                dumps.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                encode(record)
                encodes.append(time.perf_counter() - t0)
            rows[label] = {
                "steps": int(seconds / 15),
                "signals": len(judgement.signals),
                "json_bytes": len(plain),
                "gzip_bytes": len(blob),
                "base64_bytes": len(base64.b64encode(blob)),
                "ratio_gzip_to_json": len(blob) / len(plain),
                "thinned": [n for n in stored["notes"] if "to fit" in n],
                "encode_median_s": statistics.median(encodes),
                "json_dumps_median_s": statistics.median(dumps),
                "ratio_encode_to_json_dumps": statistics.median(encodes) / statistics.median(dumps),
            }
            print(f"  {label}: {len(blob)} bytes gzip ({len(plain)} JSON)", file=sys.stderr)
    largest = max(r["gzip_bytes"] for r in rows.values())
    result = {
        "gate": "bench/evaluate.py, 10 signals",
        "stages": rows,
        "record_limit_bytes": RECORD_BYTES,
        "per_gate": {
            "max_records": MAX_RECORDS,
            "max_bytes": MAX_BYTES,
            "at_bound_bytes": min(largest * MAX_RECORDS, MAX_BYTES),
            "at_bound_base64_bytes": min(largest * MAX_RECORDS, MAX_BYTES) * 4 // 3,
            "configmap_limit_bytes": 1 << 20,
        },
    }
    print(
        f"{'stage':8} {'steps':>5} {'JSON':>8} {'gzip':>7} {'gzip/JSON':>9} {'encode ms':>9} {'encode/dumps':>12}"
    )
    for label, r in rows.items():
        print(f"{label:8} {r['steps']:>5} {r['json_bytes']:>8} {r['gzip_bytes']:>7} {r['ratio_gzip_to_json']:>9.3f} "
              f"{r['encode_median_s'] * 1e3:>9.2f} {r['ratio_encode_to_json_dumps']:>12.2f}")  # fmt: skip
    pg = result["per_gate"]
    print(f"per Gate at its bound ({MAX_RECORDS} records of the largest): {pg['at_bound_bytes']} bytes")
    out = ROOT / "bench" / "results" / "decision_records.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
