"""Several intake processes behind a trace-ID router, their counts summed by a real Prometheus and read back
by the controller's trace source: the summed counts equal the emitted ground truth, and a trace split across
two intakes is counted as incomplete, never as a violation.

Two routers: a real OpenTelemetry Collector (OTLP receiver + the contrib load-balancing exporter with
`routing_key: traceID`, OTLP/gRPC to the intakes, built from Go modules by scripts/otelcol.sh); and, to split
traces on purpose, a client that partitions the real SDK's spans by trace ID the same way and sends chosen
spans to the other intake, the SDK exporter's `headers` option carrying the bearer token.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import set_span_in_context
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.sim.otlp_load import checkout_load, cpu_seconds, post_all
from gatekeeper.sim.prometheus import PrometheusServer, free_port
from gatekeeper.sources.prometheus import PrometheusSource
from gatekeeper.sources.traces import Rule
from gatekeeper.sources.traces.prometheus import PrometheusTraceSource
from gatekeeper.spec.signals import InvariantSignal
from gatekeeper.web.intake import wait_ready

TOKEN = "scale-out-token-0123456789"
SIGNAL = {
    "name": "partial-checkout",
    "kind": "invariant",
    "root": "checkout",
    "when": {"span": "payment.capture"},
    "require": {"span": "order.create"},
    "within": "30s",
}
RULE = InvariantSignal.model_validate(SIGNAL)
GATE = f"""
apiVersion: gatekeeper.dev/v1alpha1
kind: Gate
metadata: {{name: checkout, namespace: shop}}
spec:
  scopes:
    canary: {{service: checkout, track: canary}}
    baseline: {{service: checkout, track: baseline}}
  stages: [{{weight: 5, minDuration: 1m}}]
  signals:
    - {SIGNAL}
"""


class Intake:
    """`gatekeeper intake` as a process on 127.0.0.1, rules from a gates directory; stopped by its PID."""

    def __init__(
        self, *, port: int, gates: Path, token_file: Path, peers: Sequence[int] = (), grpc_port: int = 0
    ) -> None:
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        args = ["--port", str(port), "--gates-dir", str(gates), "--token-file", str(token_file)]
        args += ["--completion-timeout", "1", "--log-level", "warning", "--grpc-port", str(grpc_port)]
        if peers:
            args += ["--peers", ",".join(f"http://127.0.0.1:{p}" for p in peers)]
        self.proc = subprocess.Popen([sys.executable, "-m", "gatekeeper.cli.main", "intake", *args])
        try:
            wait_ready(self.url)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def counters(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"{self.url}/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def total(intakes: Sequence[Intake], name: str, **labels: str) -> float:
    return sum(
        v
        for i in intakes
        for (n, ls), v in i.counters().items()
        if n == name and set(labels.items()) <= set(ls)
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "checkout.yaml").write_text(GATE)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    return gates, token


@pytest.fixture
def two_intakes(setup: tuple[Path, Path]) -> Iterator[list[Intake]]:
    gates, token = setup
    a, b = free_port(), free_port()
    intakes = [Intake(port=a, gates=gates, token_file=token, peers=[b])]
    try:
        intakes.append(Intake(port=b, gates=gates, token_file=token, peers=[a]))
        yield intakes
    finally:
        for i in intakes:
            i.stop()


class TraceIdRouter(SpanExporter):
    """Routes each span by its trace ID to one of several exporters; a span with the attribute
    `test.split` goes to the next exporter instead (a trace split across intakes, as when the replica set
    changes while the trace is in flight)."""

    def __init__(self, exporters: list[SpanExporter]) -> None:
        self.exporters = exporters

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        parts: list[list[ReadableSpan]] = [[] for _ in self.exporters]
        for span in spans:
            k = span.context.trace_id % len(self.exporters)
            if (span.attributes or {}).get("test.split"):
                k = (k + 1) % len(self.exporters)
            parts[k].append(span)
        results = [e.export(p) for e, p in zip(self.exporters, parts, strict=True) if p]
        ok = all(r == SpanExportResult.SUCCESS for r in results)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        for e in self.exporters:
            e.shutdown()


# `intakes`: anything with a `.url` that takes OTLP/HTTP (an intake, or a Collector in front of several)
def emit(intakes: Sequence[Any], *, version: str, traces: int, missing_every: int, split_every: int) -> None:
    exporters: list[SpanExporter] = [
        OTLPSpanExporter(endpoint=f"{i.url}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"})
        for i in intakes
    ]
    provider = TracerProvider(resource=Resource({"service.name": "storefront", "service.version": version}))
    provider.add_span_processor(BatchSpanProcessor(TraceIdRouter(exporters), max_queue_size=20_000))
    tracer = provider.get_tracer("scale-out")
    for n in range(traces):
        root = tracer.start_span("checkout")
        ctx = set_span_in_context(root)
        tracer.start_span("payment.capture", context=ctx).end()
        if n % missing_every:
            split = {"test.split": True} if n % split_every == 1 else {}
            tracer.start_span("order.create", context=ctx, attributes=split).end()
        root.end()
    assert provider.force_flush(30_000)
    provider.shutdown()


def test_two_intakes_summed_in_prometheus_equal_the_ground_truth_and_split_traces_are_incomplete(
    two_intakes: list[Intake],
) -> None:
    targets = {"intake": [f"127.0.0.1:{i.port}" for i in two_intakes]}
    with PrometheusServer(scrape_interval=1, scrape_targets=targets) as prometheus:
        started = math.floor(time.time()) - 5
        truth = {"canary": (400, 40, 10), "baseline": (300, 10, 15)}  # traces, missing_every, split_every
        for version, (n, missing_every, split_every) in truth.items():
            emit(two_intakes, version=version, traces=n, missing_every=missing_every, split_every=split_every)
        expected = {}
        for version, (n, missing_every, split_every) in truth.items():
            missing = len(range(0, n, missing_every))
            split = sum(1 for k in range(n) if k % missing_every and k % split_every == 1)
            expected[version] = (
                n - split,
                missing,
                split,
            )  # checked (violations included), violations, incomplete
        key = Rule.of(RULE).key
        deadline = time.monotonic() + 60
        want = sum(c + i for c, _, i in expected.values())
        query = (
            f'sum(gatekeeper_otlp_invariant_checked_traces_total{{rule="{key}"}}) + '
            f'sum(gatekeeper_otlp_invariant_incomplete_traces_total{{rule="{key}"}})'
        )
        source = PrometheusSource(prometheus.url, timeout=10, retries=0)
        while time.monotonic() < deadline:  # every trace judged, settled with the peer and scraped
            got = source.instant(query, at=time.time()).scalar()
            if got == want:
                break
            time.sleep(0.5)
        time.sleep(2)  # one more scrape: nothing moves any more
        for i in two_intakes:
            assert total([i], "gatekeeper_otlp_spans_received_total") > 0, "the router used both intakes"
        traces = PrometheusTraceSource(source)
        end = math.ceil(time.time() / 5) * 5 + 5
        for version, (checked, violations, incomplete) in expected.items():
            c = traces.invariant_counts(RULE, arm=version, start=started, end=end, step=5)
            per_intake = [
                (total([i], "gatekeeper_otlp_invariant_checked_traces_total", version=version),
                 total([i], "gatekeeper_otlp_invariant_incomplete_traces_total", version=version))
                for i in two_intakes
            ]  # fmt: skip
            assert (int(c.checked.sum()), int(c.violations.sum())) == (checked, violations), (
                version,
                per_intake,
            )
            assert c.dropped_spans == incomplete, version  # split traces: incomplete, never violations
            assert c.newest_span is not None and started < c.newest_span <= end
            direct = (
                total(two_intakes, "gatekeeper_otlp_invariant_checked_traces_total", version=version),
                total(two_intakes, "gatekeeper_otlp_invariant_violations_total", version=version),
                total(two_intakes, "gatekeeper_otlp_invariant_incomplete_traces_total", version=version),
            )
            assert direct == (checked, violations, incomplete)
        # the controller's own look at a gate with this rule reads the same counts through its Prometheus
        from gatekeeper.controller.looks import Looker
        from gatekeeper.spec import GateSpec
        from gatekeeper.spec.status import GateStatus

        gate = GateSpec.model_validate({
            "name": "checkout",
            "source": {"prometheus": {"url": prometheus.url, "step": "5s", "delay": "0s"}},
            "scopes": {"canary": {"track": "canary"}, "baseline": {"track": "baseline"}},
            "stages": [{"weight": 5, "minDuration": "1m"}],
            "signals": [SIGNAL],
        })  # fmt: skip
        judgement = Looker().judge(gate, GateStatus(stage_started_at=started), now=end)
        (outcome,) = [o for o in judgement.signals if o.name == "partial-checkout"]
        splits = {v: e[2] for v, e in expected.items()}
        assert outcome.verdict.value == "nodata", (
            outcome.reason
        )  # split traces: evidence incomplete, no verdict
        assert f"{splits['canary']} canary and {splits['baseline']} baseline spans" in outcome.reason
        assert outcome.canary["traces"] == expected["canary"][0]


@pytest.mark.parametrize("n", [1, 2], ids=["one-intake", "two-intakes"])
def test_pre_serialized_load_split_by_trace_id_is_counted_exactly_and_its_rate_is_reported(
    setup: tuple[Path, Path], n: int, record_property: pytest.RecordProperty
) -> None:
    gates, token = setup
    ports = [free_port() for _ in range(n)]
    load = checkout_load(20_000, partitions=n, t0=time.time() - 30, seed=n)
    intakes: list[Intake] = []
    try:
        for p in ports:
            intakes.append(Intake(port=p, gates=gates, token_file=token, peers=[q for q in ports if q != p]))
        cpu0 = [cpu_seconds(i.proc.pid) for i in intakes]
        result = post_all(
            [(f"{i.url}/v1/traces", b) for i, b in zip(intakes, load.bodies, strict=True)], token=TOKEN
        )
        cpu = sum(cpu_seconds(i.proc.pid) - c for i, c in zip(intakes, cpu0, strict=True))
        assert result.statuses == {200: sum(map(len, load.bodies))}
        spans = sum(load.spans)
        rate = spans / result.seconds
        print(f"\n{n} intake(s): {spans:,} spans in {result.seconds:.2f}s = {rate:,.0f} spans/s "
              f"({spans / cpu:,.0f} spans per intake CPU second)")  # fmt: skip
        record_property("spans_per_second", round(rate))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # every trace completed and judged
            if total(intakes, "gatekeeper_otlp_invariant_checked_traces_total") >= sum(load.traces.values()):
                break
            time.sleep(0.5)
        for version in ("canary", "baseline"):
            checked = total(intakes, "gatekeeper_otlp_invariant_checked_traces_total", version=version)
            bad = total(intakes, "gatekeeper_otlp_invariant_violations_total", version=version)
            assert (checked, bad) == (load.traces[version], load.violations[version]), version
        assert total(intakes, "gatekeeper_otlp_invariant_incomplete_traces_total") == 0
    finally:
        for i in intakes:
            i.stop()


COLLECTOR_CONFIG = """
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:{http}"}}
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls: {{insecure: true}}
        headers: {{authorization: "Bearer ${{env:GATEKEEPER_TOKEN}}"}}
        retry_on_failure: {{enabled: true}}
    resolver:
      static: {{hostnames: [{backends}]}}
service:
  telemetry:
    metrics: {{level: none}}
    logs: {{level: warn}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [loadbalancing]}}
"""


def collector_binary() -> Path:
    import os
    import re

    script = (Path(__file__).resolve().parents[1] / "scripts" / "otelcol.sh").read_text()
    version = re.search(r"^VERSION=(\S+)", script, re.M)
    assert version, "scripts/otelcol.sh no longer pins VERSION"
    cache = Path(os.environ.get("GATEKEEPER_CACHE", Path.home() / ".cache" / "gatekeeper"))
    return cache / f"otelcol-{version.group(1)}" / "otelcol"


def test_a_real_collector_routes_by_trace_id_over_grpc_to_two_intakes_and_the_sums_are_exact(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    """The OpenTelemetry Collector's own load-balancing exporter (built from its Go module by
    scripts/otelcol.sh), OTLP/gRPC with the bearer token in its headers, in front of two intake processes."""
    import os

    binary = collector_binary()
    if not os.access(binary, os.X_OK):
        reason = f"the test collector is not built at {binary}: run scripts/otelcol.sh"
        if os.environ.get("GATEKEEPER_REQUIRE_KUBE", "") not in ("", "0"):
            pytest.fail(f"GATEKEEPER_REQUIRE_KUBE is set but {reason}", pytrace=False)
        pytest.skip(reason)
    gates, token = setup
    http = [free_port(), free_port()]
    grpc = [free_port(), free_port()]
    intakes: list[Intake] = []
    collector = None
    try:
        for i in range(2):
            intakes.append(
                Intake(port=http[i], gates=gates, token_file=token, peers=[http[1 - i]], grpc_port=grpc[i])
            )
        config = tmp_path / "collector.yaml"
        receiver = free_port()
        config.write_text(
            COLLECTOR_CONFIG.format(http=receiver, backends=", ".join(f"127.0.0.1:{g}" for g in grpc))
        )
        log = (tmp_path / "collector.log").open("wb")
        collector = subprocess.Popen(
            [str(binary), f"--config=file:{config}"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "GATEKEEPER_TOKEN": TOKEN},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:  # the receiver answers (a 405 to GET is an answer)
            try:
                httpx.get(f"http://127.0.0.1:{receiver}/v1/traces", timeout=1)
                break
            except httpx.HTTPError:
                assert collector.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "collector.log"
                ).read_text()
                time.sleep(0.2)

        class ToCollector:
            url = f"http://127.0.0.1:{receiver}"

        truth = {"canary": (300, 20), "baseline": (300, 100)}  # traces, missing_every
        for version, (n, missing_every) in truth.items():
            emit([ToCollector()], version=version, traces=n, missing_every=missing_every, split_every=10**9)
        want = sum(n for n, _ in truth.values())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if total(intakes, "gatekeeper_otlp_invariant_checked_traces_total") >= want:
                break
            time.sleep(0.5)
        for version, (n, missing_every) in truth.items():
            checked = total(intakes, "gatekeeper_otlp_invariant_checked_traces_total", version=version)
            bad = total(intakes, "gatekeeper_otlp_invariant_violations_total", version=version)
            assert (checked, bad) == (n, len(range(0, n, missing_every))), version
        assert total(intakes, "gatekeeper_otlp_invariant_incomplete_traces_total") == 0  # no trace was split
        shares = [total([i], "gatekeeper_otlp_traces_completed_total") for i in intakes]
        assert all(s > 0.25 * want for s in shares), shares  # both replicas took a share of the traces
    finally:
        if collector is not None:
            collector.terminate()
            collector.wait(timeout=10)
        for i in intakes:
            i.stop()
