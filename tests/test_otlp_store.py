"""The trace store: assembly on an injected clock, rule judgement, per-version counts on the step grid, and
bounded memory with every drop counted and visible."""

from __future__ import annotations

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import CollectorRegistry, generate_latest

from gatekeeper.sim.shop import SimClock
from gatekeeper.sources.traces import IntakeCollector, Rule, StoreLimits, TraceStore
from gatekeeper.spec.signals import InvariantSignal

T0 = 1_700_000_040.0
RULE = InvariantSignal.model_validate(
    {
        "name": "partial-checkout",
        "kind": "invariant",
        "root": "checkout",
        "when": {"span": "payment.capture", "status": "ok"},
        "require": {"span": "order.create", "status": "ok"},
        "within": "30s",
    }
)


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def checkout(
    n: int,
    *,
    t: float,
    order: str | None = "ok",
    capture: str | None = "ok",
    order_after: float = 0.2,
    root: bool = True,
) -> list[dict]:
    """Spans of one checkout trace: root `checkout` ending at t + 1, children under it."""
    spans = [{"trace": n, "name": "checkout", "end": t + 1.0, "root": True}] if root else []
    if capture:
        spans.append(
            {"trace": n, "name": "payment.capture", "end": t + 0.5, "status": 2 if capture == "error" else 1}
        )
    if order:
        spans.append(
            {
                "trace": n,
                "name": "order.create",
                "end": t + 0.5 + order_after,
                "status": 2 if order == "error" else 0,
            }
        )
    return spans


def request(
    spans: list[dict], *, version: str | None = "canary", on_span: bool = False
) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    if version is not None and not on_span:
        rs.resource.attributes.add(key="service.version").value.string_value = version
    ss = rs.scope_spans.add()
    for i, s in enumerate(spans):
        span = ss.spans.add()
        span.trace_id = tid(s["trace"])
        span.span_id = (i + 1).to_bytes(8, "big")
        if not s.get("root"):
            span.parent_span_id = b"\x00" * 7 + b"\x01"
        span.name = s["name"]
        span.start_time_unix_nano = int((s["end"] - 0.1) * 1e9)
        span.end_time_unix_nano = int(s["end"] * 1e9)
        span.status.code = s.get("status", 0)
        if on_span and version is not None:
            span.attributes.add(key="service.version").value.string_value = version
    return req


@pytest.fixture
def clock() -> SimClock:
    return SimClock(T0)


def counts(
    store: TraceStore,
    arm: str = "canary",
    *,
    start: float = T0 - 60,
    end: float = T0 + 240,
    step: float = 60.0,
):
    return store.invariant_counts(RULE, arm=arm, start=start, end=end, step=step)


def test_a_trace_is_judged_only_after_the_completion_timeout_on_the_injected_clock(clock):
    store = TraceStore(clock=clock, completion_timeout=30, rules=[RULE])
    store.ingest(request(checkout(1, t=T0, order=None)))
    assert counts(store).checked.sum() == 0 and store.stats().open_traces == 1
    clock.advance(29.9)
    assert counts(store).checked.sum() == 0
    clock.advance(0.2)
    c = counts(store)
    assert (c.checked.sum(), c.violations.sum()) == (1, 1)
    assert c.examples == (tid(1).hex(),)


def test_each_span_arrival_restarts_the_completion_timeout(clock):
    store = TraceStore(clock=clock, completion_timeout=30, rules=[RULE])
    spans = checkout(1, t=T0)
    store.ingest(request(spans[:2]))
    clock.advance(20)
    store.ingest(request(spans[2:]))  # order.create arrives in a later export, before the timeout
    clock.advance(20)
    assert counts(store).checked.sum() == 0
    clock.advance(11)
    c = counts(store)
    assert (c.checked.sum(), c.violations.sum()) == (1, 0)


@pytest.mark.parametrize(
    ("spans", "checked", "violated"),
    [
        (checkout(1, t=T0), 1, 0),
        (checkout(1, t=T0, order=None), 1, 1),  # payment captured, no order
        (checkout(1, t=T0, order="error"), 1, 1),  # order.create failed, checkout still returned
        (checkout(1, t=T0, order_after=31.0), 1, 1),  # order created, but too late
        (checkout(1, t=T0, order_after=-0.4), 1, 0),  # order created before the capture ended: fine
        (checkout(1, t=T0, capture="error", order=None), 0, 0),  # capture failed: the rule does not apply
        (checkout(1, t=T0, capture=None, order=None), 0, 0),
        ([{**s, "name": "browse"} if s.get("root") else s for s in checkout(1, t=T0, order=None)], 0, 0),
    ],
    ids=[
        "complete",
        "missing-order",
        "failed-order",
        "late-order",
        "order-first",
        "failed-capture",
        "no-capture",
        "other-root",
    ],
)
def test_the_rule_is_judged_as_the_spec_reads(clock, spans, checked, violated):
    store = TraceStore(clock=clock, rules=[RULE])
    store.ingest(request(spans))
    clock.advance(31)
    c = counts(store)
    assert (int(c.checked.sum()), int(c.violations.sum())) == (checked, violated)


def test_counts_land_on_the_step_of_the_root_span_end_per_version(clock):
    store = TraceStore(clock=clock, rules=[RULE])
    spans = checkout(1, t=T0 + 5) + checkout(2, t=T0 + 65, order=None) + checkout(3, t=T0 + 70)
    store.ingest(request(spans))
    store.ingest(request(checkout(4, t=T0 + 130, order=None), version="baseline"))
    clock.advance(31)
    c = counts(store, start=T0, end=T0 + 180)
    np.testing.assert_array_equal(c.timestamps, [T0 + 60, T0 + 120, T0 + 180])
    np.testing.assert_array_equal(c.checked, [1, 2, 0])
    np.testing.assert_array_equal(c.violations, [0, 1, 0])
    b = counts(store, "baseline", start=T0, end=T0 + 180)
    np.testing.assert_array_equal(b.checked, [0, 0, 1])
    np.testing.assert_array_equal(b.violations, [0, 0, 1])
    assert b.examples == (tid(4).hex(),) and c.examples == (tid(2).hex(),)
    assert c.newest_span == pytest.approx(T0 + 71) and b.newest_span == pytest.approx(T0 + 131)


def test_examples_are_newest_first_and_only_from_the_window(clock):
    store = TraceStore(clock=clock, rules=[RULE])
    store.ingest(request([s for n in (1, 2, 3) for s in checkout(n, t=T0 + 50 * n, order=None)]))
    clock.advance(31)
    assert counts(store, start=T0, end=T0 + 240).examples == (tid(3).hex(), tid(2).hex(), tid(1).hex())
    assert counts(store, start=T0 + 60, end=T0 + 120).examples == (tid(2).hex(),)


def test_the_version_may_come_from_a_span_attribute(clock):
    store = TraceStore(clock=clock, rules=[RULE])
    store.ingest(request(checkout(1, t=T0, order=None), version="canary", on_span=True))
    clock.advance(31)
    assert counts(store).violations.sum() == 1


def test_a_trace_whose_root_never_arrived_is_lost_evidence_not_a_pass(clock):
    store = TraceStore(clock=clock, rules=[RULE])
    store.ingest(
        request(checkout(1, t=T0, order=None, root=False))
    )  # capture without its root: lost upstream
    store.ingest(request(checkout(2, t=T0, capture=None, root=False)))  # the rule would not have applied
    clock.advance(31)
    c = counts(store)
    assert c.checked.sum() == 0 and c.dropped_spans == 1
    assert store.stats().traces_orphaned == {"canary": 2}


def test_a_late_span_of_a_judged_trace_is_a_counted_drop(clock):
    store = TraceStore(clock=clock, rules=[RULE])
    spans = checkout(1, t=T0)
    store.ingest(request(spans[:2]))
    clock.advance(31)
    result = store.ingest(request(spans[2:]))
    assert result.rejected == 1 and result.reasons == {"late span of a judged trace": 1}
    c = counts(store)
    assert c.violations.sum() == 1 and c.dropped_spans == 1  # judged wrongly, and the window says so


def test_the_open_trace_cap_refuses_new_traces_and_counts_them_per_version(clock):
    store = TraceStore(clock=clock, rules=[RULE], limits=StoreLimits(max_open_traces=2))
    result = store.ingest(request(checkout(1, t=T0) + checkout(2, t=T0) + checkout(3, t=T0)))
    assert (result.accepted, result.rejected) == (6, 3)
    assert result.message == "3 dropped: open-trace cap"
    stats = store.stats()
    assert stats.open_traces == 2 and stats.spans_dropped == {("canary", "open-trace cap"): 3}
    clock.advance(31)
    c = counts(store)
    assert c.checked.sum() == 2 and c.dropped_spans == 3
    assert counts(store, "baseline").dropped_spans == 0
    # once the clock completes the open traces there is room again
    assert store.ingest(request(checkout(4, t=T0 + 40))).rejected == 0


def test_the_span_caps_bound_one_trace_and_all_open_spans(clock):
    store = TraceStore(clock=clock, limits=StoreLimits(max_spans_per_trace=2, max_open_spans=5))
    first = store.ingest(request(checkout(1, t=T0)))
    assert first.reasons == {"spans-per-trace cap": 1}
    second = store.ingest(request(checkout(2, t=T0) + checkout(3, t=T0)))
    assert second.accepted == 3 and second.reasons == {"open-span cap": 2, "spans-per-trace cap": 1}
    assert store.stats().open_spans == 5


def test_versions_beyond_the_cap_are_dropped_not_tracked(clock):
    store = TraceStore(clock=clock, limits=StoreLimits(max_versions=2))
    for n, version in enumerate(["a", "b", "c", "d"]):
        store.ingest(request(checkout(n + 1, t=T0), version=version))
    stats = store.stats()
    assert set(stats.spans_received) == {"a", "b"}
    assert stats.spans_dropped == {("(other)", "too many versions"): 6}


def test_a_span_without_an_id_or_a_version_is_handled_visibly(clock):
    store = TraceStore(clock=clock)
    req = request(checkout(1, t=T0), version=None)
    req.resource_spans[0].scope_spans[0].spans[0].trace_id = b""
    result = store.ingest(req)
    assert result.reasons == {"invalid trace id": 1}
    assert store.stats().spans_received == {"(none)": 3}


def test_old_buckets_expire_with_the_clock(clock):
    store = TraceStore(clock=clock, rules=[RULE], limits=StoreLimits(retention=600))
    store.ingest(request(checkout(1, t=T0, order=None)))
    clock.advance(31)
    assert counts(store).violations.sum() == 1
    clock.advance(700)
    assert counts(store).violations.sum() == 0


def test_a_rule_watched_late_starts_empty(clock):
    store = TraceStore(clock=clock)
    store.ingest(request(checkout(1, t=T0, order=None)))
    clock.advance(31)
    store.sweep()  # judged (and forgotten) before anyone watched the rule
    assert counts(store).checked.sum() == 0


def test_the_intake_counters_are_exported_on_a_registry_the_caller_owns(clock):
    store = TraceStore(clock=clock, rules=[RULE], limits=StoreLimits(max_open_traces=1))
    store.ingest(request(checkout(1, t=T0, order=None) + checkout(2, t=T0)))
    clock.advance(31)
    store.sweep()
    registry = CollectorRegistry()
    registry.register(IntakeCollector(store))
    text = generate_latest(registry).decode()
    assert 'gatekeeper_otlp_spans_received_total{version="canary"} 5.0' in text
    assert 'gatekeeper_otlp_spans_dropped_total{reason="open-trace cap",version="canary"} 3.0' in text
    key = Rule.of(RULE).key
    assert f'gatekeeper_otlp_invariant_violations_total{{rule="{key}",version="canary"}} 1.0' in text
    assert (
        f'gatekeeper_otlp_rule_info{{description="{Rule.of(RULE).describe()}",rule="{key}",signals="{RULE.name}"}} 1.0'
        in text
    )
    assert "gatekeeper_otlp_open_traces 0.0" in text


def test_bad_limits_and_windows_are_refused_with_the_field_named(clock):
    with pytest.raises(ValueError, match="max_open_traces"):
        StoreLimits(max_open_traces=0)
    with pytest.raises(ValueError, match="completion_timeout"):
        TraceStore(clock=clock, completion_timeout=0)
    with pytest.raises(ValueError, match="step"):
        TraceStore(clock=clock).invariant_counts(RULE, arm="canary", start=T0, end=T0 + 60, step=0)
    with pytest.raises(TypeError, match="not an invariant signal"):
        TraceStore(clock=clock).watch(object())


def test_a_trace_split_across_two_intakes_is_incomplete_never_a_violation(clock):
    a = TraceStore(clock=clock, rules=[RULE], confirm_violations=True)
    b = TraceStore(clock=clock, rules=[RULE], confirm_violations=True)
    split = checkout(1, t=T0)
    a.ingest(request([s for s in split if s["name"] != "order.create"]))  # root + payment here
    b.ingest(request([s for s in split if s["name"] == "order.create"]))  # the order on the peer
    a.ingest(request(checkout(2, t=T0, order=None) + checkout(3, t=T0)))  # a real violation, and a pass
    clock.advance(31)
    assert a.stats().pending == 0 and counts(a).violations.sum() == 0  # judged, but held for the peers
    assert a.stats().pending == 2  # trace 1 (split) and trace 2 (a true violation)
    assert a.settle(lambda ids: set(b.holds(ids))) == (1, 1)
    c = counts(a)
    assert (c.checked.sum(), c.violations.sum()) == (2, 1) and c.examples == (tid(2).hex(),)
    assert c.dropped_spans > 0  # the split trace is lost evidence in its window
    key = Rule.of(RULE).key
    assert a.stats().rule_counts[(key, "canary")] == (2, 1, 1)


def test_peers_that_cannot_answer_leave_violations_unconfirmed_as_incomplete(clock):
    a = TraceStore(clock=clock, rules=[RULE], confirm_violations=True)
    a.ingest(request(checkout(2, t=T0, order=None)))
    clock.advance(31)

    def unreachable(ids: list[bytes]) -> set[bytes]:
        raise ConnectionError("peer down")

    assert a.settle(unreachable) == (0, 1)
    assert a.stats().rule_counts[(Rule.of(RULE).key, "canary")] == (0, 0, 1)
