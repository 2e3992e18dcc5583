"""OTLP/HTTP load for intake tests and benchmarks: checkout traces serialized once, partitioned by trace ID over
N intakes as the OpenTelemetry Collector's load-balancing exporter does (`routing_key: traceID`), and posted
over real HTTP with a bearer token. Deterministic (seeded); the ground truth comes back with the bodies.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["Load", "PostResult", "checkout_load", "cpu_seconds", "post_all"]

_NAMES = ("inventory.reserve", "payment.capture", "order.create")


@dataclass(frozen=True)
class Load:
    bodies: tuple[tuple[bytes, ...], ...]  # per partition
    spans: tuple[int, ...]  # per partition
    traces: dict[str, int]  # version -> traces
    violations: dict[str, int]  # version -> traces without order.create


def checkout_load(
    traces: int, *, partitions: int = 1, t0: float, seed: int = 1, batch: int = 512, miss: float = 0.02
) -> Load:
    """`traces` checkout traces (half canary, half baseline), a share `miss` without `order.create`, spans
    ending from `t0` on, in bodies of about `batch` spans per partition (trace ID modulo `partitions`)."""
    rng = random.Random(seed)
    pending: list[dict[str, list[tuple]]] = [{"baseline": [], "canary": []} for _ in range(partitions)]
    counts = [0] * partitions
    bodies: list[list[bytes]] = [[] for _ in range(partitions)]
    spans_out = [0] * partitions
    truth = {"baseline": 0, "canary": 0}
    bad = {"baseline": 0, "canary": 0}

    def flush(p: int) -> None:
        req = ExportTraceServiceRequest()
        for version, spans in pending[p].items():
            if not spans:
                continue
            rs = req.resource_spans.add()
            for key, value in (("service.name", "storefront"), ("service.version", version)):
                rs.resource.attributes.add(key=key).value.string_value = value
            ss = rs.scope_spans.add()
            for trace_id, span_id, parent, name, start, end in spans:
                ss.spans.add(
                    trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, kind=2,
                    start_time_unix_nano=start, end_time_unix_nano=end,
                )  # fmt: skip
            spans_out[p] += len(spans)
            spans.clear()
        bodies[p].append(req.SerializeToString())
        counts[p] = 0

    for i in range(traces):
        version = "canary" if i % 2 else "baseline"
        tid = rng.getrandbits(128).to_bytes(16, "big")
        p = int.from_bytes(tid, "big") % partitions
        root = rng.getrandbits(64).to_bytes(8, "big")
        start = int((t0 + i * 0.001) * 1e9)
        spans = [(tid, root, b"", "checkout", start, start + 350_000_000)]
        missing = rng.random() < miss
        for j, name in enumerate(_NAMES):
            if name == "order.create" and missing:
                continue
            sid = rng.getrandbits(64).to_bytes(8, "big")
            spans.append((tid, sid, root, name, start + j * 80_000_000, start + (j + 1) * 80_000_000))
        truth[version] += 1
        bad[version] += missing
        pending[p][version].extend(spans)
        counts[p] += len(spans)
        if counts[p] >= batch:
            flush(p)
    for p in range(partitions):
        if counts[p]:
            flush(p)
    return Load(tuple(map(tuple, bodies)), tuple(spans_out), truth, bad)


@dataclass(frozen=True)
class PostResult:
    seconds: float  # wall time from the first post to the last answer
    statuses: dict[int, int]  # HTTP status -> count


def post_all(
    targets: list[tuple[str, tuple[bytes, ...]]], *, token: str | None, threads: int = 2
) -> PostResult:
    """Post every body to its intake URL (`threads` keep-alive connections per intake, all intakes at once)."""
    headers = {"Content-Type": "application/x-protobuf"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def worker(url: str, bodies: tuple[bytes, ...]) -> None:
        with httpx.Client(timeout=60) as client:
            for body in bodies:
                status = client.post(url, content=body, headers=headers).status_code
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

    jobs = [
        threading.Thread(target=worker, args=(url, bodies[k::threads]))
        for url, bodies in targets
        for k in range(threads)
    ]
    t = time.perf_counter()
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    return PostResult(seconds=time.perf_counter() - t, statuses=statuses)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
