"""The trace-invariant signal: violations per version through the shared count test, and every observability gap
(no trace source, dropped spans, a canary whose spans stop, no checked traces) as NODATA with the gap named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.signals import EvalContext, measure_signal
from gatekeeper.signals.invariant import measure
from gatekeeper.sim.shop import SimClock
from gatekeeper.sources.traces import StoreLimits, TraceStore
from gatekeeper.spec import Verdict, load_gate
from gatekeeper.spec.window import Window
from tests.test_otlp_store import checkout, request

GATE = load_gate(Path(__file__).resolve().parents[1] / "gates" / "checkout.yaml")
SIGNAL = GATE.signal("partial-checkout")
START = 1_700_000_040.0
END = START + 600.0


def feed(
    store: TraceStore,
    *,
    version: str,
    traces: int,
    violate_every: int,
    first: int = 0,
    start: float = START,
    spacing: float | None = None,
) -> None:
    """`traces` checkouts spread over the window (or `spacing` seconds apart), every n-th missing its order."""
    gap = spacing if spacing is not None else (END - start - 5) / traces
    spans = []
    for i in range(traces):
        n = first + i + 1
        spans += checkout(
            n, t=start + i * gap, order=None if violate_every and i % violate_every == 0 else "ok"
        )
        if len(spans) > 3000:
            store.ingest(request(spans, version=version))
            spans = []
    if spans:
        store.ingest(request(spans, version=version))


def context(store: TraceStore | None, *, stage: int = 0) -> EvalContext:
    return EvalContext(
        gate=GATE,
        metrics=None,
        window=Window(START, END, 60),
        stage=GATE.stages[stage],  # type: ignore[arg-type]
        alpha=0.005,
        traces=store,
        stage_started=START,
    )


def done(clock: SimClock) -> None:
    clock.set(END + 60)


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START)


@pytest.fixture
def store(clock: SimClock) -> TraceStore:
    return TraceStore(clock=clock, rules=[SIGNAL])


def test_a_canary_with_ten_times_the_partial_checkouts_fails_naming_example_traces(store, clock):
    feed(store, version="canary", traces=1000, violate_every=10)
    feed(store, version="baseline", traces=1000, violate_every=100, first=10_000)
    done(clock)
    out = measure_signal(SIGNAL, context(store))  # dispatched by kind, as the judge does
    assert out.verdict == Verdict.FAIL, out.reason
    assert out.canary["events"] == 100 and out.canary["traces"] == 1000
    assert out.baseline["events"] == 10
    examples = out.evidence.traces.examples
    assert len(examples) == 20 and examples[0] == (991).to_bytes(16, "big").hex()  # newest violation first
    assert f"example canary traces: {examples[0]}, {examples[1]}, {examples[2]} and 17 more" in out.reason


def test_equal_partial_checkout_rates_pass(store, clock):
    feed(store, version="canary", traces=2000, violate_every=10)
    feed(store, version="baseline", traces=2000, violate_every=10, first=10_000)
    done(clock)
    out = measure(SIGNAL, context(store))
    assert out.verdict == Verdict.PASS, out.reason
    assert out.effect is not None and out.effect.upper < 2.0


def test_no_trace_source_is_nodata(store):
    out = measure(SIGNAL, context(None))
    assert out.verdict == Verdict.NODATA and "no trace source" in out.reason


def test_spans_dropped_in_the_window_make_it_nodata_not_a_verdict(clock):
    store = TraceStore(clock=clock, rules=[SIGNAL], limits=StoreLimits(max_open_traces=500))
    feed(store, version="canary", traces=1000, violate_every=10)  # the clock stands still: the second half
    feed(
        store, version="baseline", traces=400, violate_every=100, first=10_000
    )  # and all of these are refused
    done(clock)
    out = measure(SIGNAL, context(store))
    assert out.verdict == Verdict.NODATA
    # 450 traces of 3 spans + 50 of 2 (no order) for the canary; 396 x 3 + 4 x 2 for the baseline
    assert "1450 canary and 1196 baseline spans were dropped" in out.reason and "biased" in out.reason


def test_a_canary_whose_spans_stop_while_the_baseline_continues_is_dark(store, clock):
    feed(store, version="canary", traces=300, violate_every=0, spacing=1.0)  # spans end 5 minutes in
    feed(store, version="baseline", traces=1000, violate_every=0, first=10_000)
    done(clock)
    out = measure(SIGNAL, context(store))
    assert out.verdict == Verdict.NODATA
    assert (
        "canary (service.version=canary) stopped sending spans" in out.reason
        and "baseline continues" in out.reason
    )


def test_a_canary_that_never_sent_a_span_is_dark(store, clock):
    feed(store, version="baseline", traces=100, violate_every=0, first=10_000)
    done(clock)
    out = measure(SIGNAL, context(store))
    assert out.verdict == Verdict.NODATA and "canary (service.version=canary) never sent a span" in out.reason


def test_traces_not_yet_complete_are_not_counted_so_the_arm_has_nothing_checked(store, clock):
    feed(store, version="canary", traces=100, violate_every=0)
    feed(store, version="baseline", traces=100, violate_every=0, first=10_000)
    out = measure(SIGNAL, context(store))  # the clock has not moved: every trace still open
    assert out.verdict == Verdict.NODATA and "no canary traces" in out.reason


def test_traces_the_rule_does_not_apply_to_give_nodata_not_pass(store, clock):
    for version, first in (("canary", 0), ("baseline", 10_000)):
        spans = [s for n in range(50) for s in checkout(first + n + 1, t=START + 5 * n, capture=None)]
        store.ingest(request(spans, version=version))
    done(clock)
    out = measure(SIGNAL, context(store))
    assert out.verdict == Verdict.NODATA and "the rule applied to" in out.reason
