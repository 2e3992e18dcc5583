"""Write the seed corpus of every fuzz target from the repository's own examples (gates/, tests/data/peers/,
the OTLP specification's example) plus hand-written Prometheus answers of every result type.

    .venv/bin/python -m tests.fuzz.make_seeds      # rewrites seed-* files; regression-* files are kept

Seeds are committed; rerun this after adding an example so the fuzzer starts from it.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.fuzz.targets import CORPUS, FILE_SEPARATOR

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "tests" / "data" / "peers"


def spec_seeds() -> dict[str, bytes]:
    out = {p.name: p.read_bytes() for p in sorted((ROOT / "gates").glob("*.yaml"))}
    out["minimal.yaml"] = b"name: m\nscopes: {canary: {track: canary}, baseline: {track: baseline}}\nsignals:\n" \
        b"  - {name: e, kind: ratio, bad: 'x{code=~\"5..\"}', total: x}\n"  # fmt: skip
    gate = yaml.safe_load((ROOT / "gates" / "http-canary.yaml").read_text())
    resource = {"apiVersion": "gatekeeper.dev/v1alpha1", "kind": "Gate", "metadata": {"name": gate.pop("name")},
                "spec": gate}  # fmt: skip
    out["resource.yaml"] = yaml.safe_dump(resource, sort_keys=False).encode()
    return out


def _status(stage: int) -> dict[str, Any]:
    t = 1_700_000_000.0
    return {
        "phase": "Progressing",
        "stage": stage,
        "weight": [1, 5, 25, 50][stage % 4],
        "verdict": "inconclusive",
        "reason": "collecting samples",
        "stageStartedAt": t,
        "lastEvaluatedAt": t + 60,
        "intent": {"id": "i-1", "action": "advance", "fromWeight": 1, "toWeight": 5, "recordedAt": t, "stage": 1},
        "history": [{"time": t, "stage": 0, "weight": 1, "verdict": "pass", "reason": "ok", "action": "advance",
                     "signals": {"error-rate": "pass"}, "evidence": {"error-rate": {"e": 1.5}}}],
        "conditions": [{"type": "Progressing", "status": "True", "reason": "Advanced", "message": "stage 2"}],
        "inconclusive": {"error-rate": 2},
        "specHash": "0" * 64,
    }  # fmt: skip


def gate_resource_seeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for i, p in enumerate(sorted((ROOT / "gates").glob("*.yaml"))):
        spec = yaml.safe_load(p.read_text())
        spec.pop("name", None)
        if spec.get("args"):
            spec["args"] = [{**a, "value": a.get("value", "x")} for a in spec["args"]]
        ann = {
            "gatekeeper.dev/approve": json.dumps(
                {"action": "approve", "by": "alice", "at": "now", "stage": 1}
            )
        }
        obj = {
            "metadata": {"uid": f"u{i}", "generation": 3, "annotations": ann},
            "spec": spec,
            "status": _status(i),
        }
        out[p.stem + ".json"] = json.dumps(obj).encode()
    return out


def _request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for version in ("canary", "baseline"):
        rs = req.resource_spans.add()
        kv = rs.resource.attributes.add(key="service.version")
        kv.value.string_value = version
        ss = rs.scope_spans.add()
        ss.scope.name = "shop"
        tid = (b"c" if version == "canary" else b"b") * 16
        for j, (name, parent, status) in enumerate(
            [("checkout", b"", 0), ("payment.capture", b"\x01" * 8, 1), ("order.create", b"\x01" * 8, 2)]
        ):
            span = ss.spans.add(name=name, trace_id=tid, span_id=bytes([j + 1]) * 8, parent_span_id=parent)
            span.start_time_unix_nano = 1_700_000_000_000_000_000 + j * 1_000_000
            span.end_time_unix_nano = span.start_time_unix_nano + 500_000_000
            span.status.code = status
            a = span.attributes.add(key="order.id")
            a.value.int_value = 42
    return req


def _otlp_json(req: ExportTraceServiceRequest) -> bytes:
    doc = json_format.MessageToDict(req)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


def otlp_seeds() -> dict[str, bytes]:
    from tests.test_otlp_decode import SPEC_EXAMPLE

    req = _request()
    pb, js = req.SerializeToString(), _otlp_json(req)
    return {
        "protobuf": bytes([0]) + pb,
        "protobuf-gzip": bytes([4]) + pb,
        "json": bytes([1]) + js,
        "json-gzip": bytes([5]) + js,
        "spec-example.json": bytes([1]) + SPEC_EXAMPLE.encode(),
        "protobuf-small-limit": bytes([16]) + pb,
    }


def prometheus_seeds() -> dict[str, bytes]:
    t = 1_700_000_000.0
    metric = {"__name__": "up", "track": "canary", "service": "checkout"}

    def ok(result_type: str, result: Any) -> bytes:
        return json.dumps(
            {"status": "success", "data": {"resultType": result_type, "result": result}}
        ).encode()

    vector = ok("vector", [{"metric": metric, "value": [t, "1"]}, {"metric": {}, "value": [t, "NaN"]}])
    matrix = ok("matrix", [{"metric": metric, "values": [[t + 60 * i, str(i)] for i in range(5)]},
                           {"metric": {"track": "baseline"}, "values": [[t, "+Inf"], [t + 60, "-Inf"]]}])  # fmt: skip
    error = json.dumps(
        {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}
    ).encode()
    warn = json.loads(vector)
    warn["warnings"] = ["PromQL info: metric might not be a counter"]
    return {
        "vector": bytes([0]) + vector,
        "matrix": bytes([16]) + matrix,
        "scalar": bytes([0]) + ok("scalar", [t, "0.5"]),
        "string": bytes([0]) + ok("string", [t, "hello"]),
        "empty": bytes([16]) + ok("matrix", []),
        "error-400": bytes([6]) + error,
        "error-422": bytes([7]) + error,
        "unavailable-503": bytes([8]) + b"Service Unavailable",
        "vector-gzip": bytes([32]) + vector,
        "warnings": bytes([0]) + json.dumps(warn).encode(),
        "big-numbers": bytes([0]) + ok("vector", [{"metric": metric, "value": [t, repr(math.pi * 1e300)]}]),
    }


def import_seeds(family: str) -> dict[str, bytes]:
    files = sorted((PEERS / family).iterdir())
    out = {p.name: p.read_bytes() for p in files}
    if family == "keptn":  # v1 is two files that live apart
        out["slo+sli"] = (
            (PEERS / family / "slo.yaml").read_bytes()
            + FILE_SEPARATOR
            + (PEERS / family / "sli.yaml").read_bytes()
        )
    integ = {"argo": "argo-analysis-template.yaml", "flagger": "flagger-canary.yaml"}.get(family)
    if integ:
        out[integ] = (ROOT / "gates" / "integrations" / integ).read_bytes()
    return out


def main() -> None:
    sets = {
        "spec": spec_seeds(),
        "gate-resource": gate_resource_seeds(),
        "otlp": otlp_seeds(),
        "prometheus": prometheus_seeds(),
        **{f"import-{f}": import_seeds(f) for f in ("argo", "flagger", "kayenta", "keptn")},
    }
    for target, seeds in sets.items():
        d = CORPUS / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for name, data in seeds.items():
            (d / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
