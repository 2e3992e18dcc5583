"""Jaeger as the trace source: a real Jaeger v1.75.0 (built from its Go module) fed by the OpenTelemetry SDK's
OTLP/HTTP exporter, read back through its query API by `JaegerTraceSource`, judged with the intake's rules:
exact counts, example trace IDs, incomplete traces and sampling gaps named as the intake names them."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from gatekeeper.signals import EvalContext
from gatekeeper.signals.invariant import measure
from gatekeeper.sources.base import SourceUnavailable
from gatekeeper.sources.traces.jaeger import JaegerTraceSource
from gatekeeper.sources.traces.select import TraceSources
from gatekeeper.spec import Verdict, load_gate
from gatekeeper.spec.models import JaegerSettings, TraceSettings
from gatekeeper.spec.window import Window

GATE = load_gate(Path(__file__).resolve().parents[1] / "gates" / "checkout.yaml")
SIGNAL = GATE.signal("partial-checkout")
SERVICE = "storefront"
SPAN = 0.25  # seconds between trace starts


def emit(url: str, *, version: str, traces: int, missing_every: int, start: float, rootless: int = 0) -> dict:
    """Checkout traces with explicit times from `start` on; returns the ground truth."""
    provider = TracerProvider(resource=Resource({"service.name": SERVICE, "service.version": version}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url), max_queue_size=20_000))
    tracer = provider.get_tracer("jaeger-test")
    violating: list[str] = []
    for n in range(traces):
        t = int((start + n * SPAN) * 1e9)
        root = tracer.start_span("checkout", start_time=t)
        ctx = set_span_in_context(root)
        tracer.start_span("payment.capture", context=ctx, start_time=t + 1_000).end(end_time=t + 2_000_000)
        if n % missing_every:
            tracer.start_span("order.create", context=ctx, start_time=t + 3_000).end(end_time=t + 4_000_000)
        else:
            violating.append(format(root.get_span_context().trace_id, "032x"))
        root.end(end_time=t + 5_000_000)
    for k in range(rootless):  # the root span never reached the backend: incomplete, not a violation
        t = int((start + k * SPAN) * 1e9)
        parent = SpanContext(
            trace_id=0xABC0000 + k + (0 if version == "canary" else 0x100), span_id=0xDEF + k,
            is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )  # fmt: skip
        ctx = set_span_in_context(NonRecordingSpan(parent))
        tracer.start_span("payment.capture", context=ctx, start_time=t).end(end_time=t + 2_000_000)
    assert provider.force_flush(30_000)
    provider.shutdown()
    return {"traces": traces, "violations": len(range(0, traces, missing_every)), "violating": violating}


@pytest.fixture(scope="module")
def fed(jaeger):  # type: ignore[no-untyped-def]
    start = math.floor(time.time()) - 120
    truth = {
        "canary": emit(
            jaeger.otlp_url, version="canary", traces=200, missing_every=5, start=start, rootless=3
        ),
        "baseline": emit(jaeger.otlp_url, version="baseline", traces=200, missing_every=100, start=start),
    }
    source = JaegerTraceSource(url=jaeger.query_url, service=SERVICE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # Jaeger's batch processor has stored every span
        c = source.invariant_counts(SIGNAL, arm="canary", start=start, end=start + 60, step=10)
        b = source.invariant_counts(SIGNAL, arm="baseline", start=start, end=start + 60, step=10)
        if int(c.checked.sum()) == 200 and int(b.checked.sum()) == 200:
            break
        source = JaegerTraceSource(url=jaeger.query_url, service=SERVICE)  # a fresh cache
        time.sleep(0.5)
    return jaeger, start, truth


def test_counts_from_jaeger_equal_the_ground_truth_per_version_with_example_traces(fed) -> None:
    jaeger, start, truth = fed
    source = JaegerTraceSource(url=jaeger.query_url, service=SERVICE, depth=20)  # intervals are halved
    for version in ("canary", "baseline"):
        c = source.invariant_counts(SIGNAL, arm=version, start=start, end=start + 60, step=10)
        assert (int(c.checked.sum()), int(c.violations.sum())) == (
            truth[version]["traces"],
            truth[version]["violations"],
        ), version
        assert set(c.examples) <= set(truth[version]["violating"]) and c.examples
        assert c.newest_span is not None and start < c.newest_span <= start + 60
    canary = source.invariant_counts(SIGNAL, arm="canary", start=start, end=start + 60, step=10)
    assert canary.dropped_spans == 3  # three rootless traces with a payment: incomplete, never violations


def test_the_invariant_signal_fails_the_leaky_canary_from_jaeger_naming_example_traces(fed) -> None:
    jaeger, start, truth = fed
    traces = TraceSettings(jaeger=JaegerSettings(url=jaeger.query_url, service=SERVICE))
    gate = GATE.model_copy(update={"source": GATE.source.model_copy(update={"traces": traces})})
    source = TraceSources().for_gate(gate, metrics=None)  # type: ignore[arg-type]
    assert isinstance(source, JaegerTraceSource)
    ctx = EvalContext(
        gate=gate, metrics=None, window=Window(start, start + 60, 10), stage=gate.stages[-1],  # type: ignore[arg-type]
        alpha=0.005, traces=source, stage_started=start,
    )  # fmt: skip
    out = measure(SIGNAL, ctx)
    # three rootless canary traces: the window's evidence is incomplete, so no verdict (the intake's reason)
    assert out.verdict == Verdict.NODATA and "dropped or lost" in out.reason
    later = Window(start + 10, start + 60, 10)  # the rootless traces started in the first 10 s
    out = measure(SIGNAL, dataclasses.replace(ctx, window=later))
    assert out.verdict == Verdict.FAIL, out.reason
    shown = out.reason.split("example canary traces: ")[1]
    assert shown.split(",")[0].strip() in truth["canary"]["violating"]


def test_a_one_second_interval_beyond_the_search_depth_is_a_sampling_gap(fed) -> None:
    jaeger, start, _ = fed
    tiny = JaegerTraceSource(url=jaeger.query_url, service=SERVICE, depth=2)  # 4 traces start every second
    c = tiny.invariant_counts(SIGNAL, arm="baseline", start=start + 10, end=start + 20, step=10)
    assert c.dropped_spans > 0 and int(c.checked.sum()) < 40


def test_an_unreachable_jaeger_is_a_source_outage(dead_prometheus_url: str) -> None:
    source = JaegerTraceSource(url=dead_prometheus_url, service=SERVICE, timeout=2)
    with pytest.raises(SourceUnavailable, match="unreachable"):
        source.invariant_counts(SIGNAL, arm="canary", start=0, end=60, step=60)
