"""The synthetic shop on its own: seeded and reproducible, diurnal, split by the router's weight, each fault
moving its own counters, scrapes at explicit times with up/staleness like Prometheus, real SDK spans."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import numpy as np
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gatekeeper.sim.remote_write import Series
from gatekeeper.sim.shop import COUNTERS, Behavior, Shop, ShopNames, SimClock, Traffic

T0 = 1_700_000_100.0  # a multiple of 15 s: scrapes land on T0 + 15 k


class ListSink:
    """A `MetricsSink` that keeps what it is given."""

    def __init__(self) -> None:
        self.batches: list[list[Series]] = []

    def write(self, series: Iterable[Series]) -> None:
        self.batches.append(list(series))

    def samples(self, name: str, **labels: str) -> list[tuple[int, float]]:
        out: list[tuple[int, float]] = []
        for batch in self.batches:
            for s in batch:
                if s.labels.get("__name__") == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    out.extend(s.samples)
        return sorted(out)


class Spans:
    def __init__(self) -> None:
        self.exporters: list[InMemorySpanExporter] = []

    def __call__(self) -> InMemorySpanExporter:
        self.exporters.append(InMemorySpanExporter())
        return self.exporters[-1]

    def finished(self) -> list:
        return [s for e in self.exporters for s in e.get_finished_spans()]


def run(seconds: float = 300, **options) -> tuple[Shop, ListSink]:
    sink = ListSink()
    shop = Shop(start=T0, metrics=sink, **options)
    shop.run_until(T0 + seconds)
    shop.flush()
    return shop, sink


def test_the_same_seed_gives_the_same_shop_and_another_seed_does_not():
    a, sink_a = run(seed=5)
    b, sink_b = run(seed=5)
    c, _ = run(seed=6)
    assert a.truth == b.truth
    assert sink_a.samples("shop_checkouts_total", track="canary") == sink_b.samples(
        "shop_checkouts_total", track="canary"
    )
    assert a.truth["canary"].requests != c.truth["canary"].requests


def test_changing_the_canary_never_changes_the_baseline_numbers():
    healthy, _ = run(seed=9)
    broken, _ = run(seed=9, canary=Behavior(error_rate=0.3, partial_checkout=0.2, retries_per_checkout=2.0))
    assert healthy.truth["baseline"] == broken.truth["baseline"]
    assert broken.truth["canary"].errors > 5 * healthy.truth["canary"].errors


@pytest.mark.parametrize("weight", [5.0, 25.0, 50.0])
def test_traffic_is_split_by_the_routers_weight(weight):
    shop, _ = run(seconds=600, seed=1, weight_fn=lambda: weight)
    canary, baseline = shop.truth["canary"].requests, shop.truth["baseline"].requests
    n, p = canary + baseline, weight / 100
    assert abs(canary - n * p) < 4.5 * math.sqrt(n * p * (1 - p))  # binomial thinning of Poisson arrivals


def test_a_fault_under_load_appears_only_while_the_version_takes_that_many_checkouts_a_second():
    base = Behavior(drift_rate=0.0)
    under_load = base.with_faults(drift_rate=0.2, drift_above=3.0)  # the default traffic: ~10 checkouts/s
    low, _ = run(seed=4, baseline=base, canary=under_load, weight_fn=lambda: 5.0)
    high, _ = run(seed=4, baseline=base, canary=under_load, weight_fn=lambda: 60.0)
    lost = {name: s.truth["canary"].orders_placed - s.truth["canary"].orders_recorded for name, s in (("low", low), ("high", high))}  # fmt: skip
    assert lost["low"] == 0 and low.truth["canary"].orders_placed > 0
    assert lost["high"] > 0.1 * high.truth["canary"].orders_placed


def test_the_weight_is_read_every_tick():
    weights = iter([0.0] * 60 + [100.0] * 60)
    shop, _ = run(seconds=120, seed=1, weight_fn=lambda: next(weights))
    assert shop.truth["canary"].requests > 0 and shop.truth["baseline"].requests > 0
    first_minute_canary = run(seconds=60, seed=1, weight_fn=lambda: 0.0)[0].truth["canary"].requests
    assert first_minute_canary == 0


def test_traffic_follows_the_daily_curve():
    traffic = Traffic(requests_per_second=10, diurnal_amplitude=0.5, peak_hour=20)
    day = math.floor(T0 / 86400) * 86400
    assert traffic.rate(day + 20 * 3600) == pytest.approx(15.0)
    assert traffic.rate(day + 8 * 3600) == pytest.approx(5.0)
    sink = ListSink()
    shop = Shop(
        start=day, seed=3, traffic=traffic, metrics=sink, tick=300, scrape_interval=3600, push_interval=3600
    )
    shop.run_until(day + 86400)
    shop.flush()
    hourly = np.diff(
        [
            v
            for _, v in sink.samples(
                "http_requests_total", track="baseline", service="storefront", code="200"
            )
        ]
    )
    expected = np.array([traffic.rate(day + 3600 * (h + 0.5)) * 3600 * 0.5 for h in range(24)])
    assert len(hourly) == 24
    assert np.corrcoef(hourly, expected)[0, 1] > 0.99
    assert int(np.argmax(hourly)) in (19, 20) and int(np.argmin(hourly)) in (7, 8)


FAULTS = {
    "drift_rate": ("shop_orders_placed_total", "oms_orders_recorded_total"),
    "inventory_drift_rate": ("shop_inventory_reserved_total", "inventory_decrements_total"),
}


def test_each_fault_moves_its_own_counters_and_no_others():
    base = Behavior(
        error_rate=0.0,
        partial_checkout=0.0,
        drift_rate=0.0,
        inventory_drift_rate=0.0,
        duplicate_rate=0.0,
        retries_per_checkout=0.0,
    )
    clean, _ = run(seed=2, canary=base, baseline=base)
    t = clean.truth["canary"]
    assert t.orders_placed == t.orders_recorded == t.reserved == t.decremented == t.captures == t.checkouts
    assert t.duplicates == t.retries == t.partial_checkouts == t.errors == 0
    cases = {
        "drift_rate": lambda t: t.orders_placed - t.orders_recorded,
        "inventory_drift_rate": lambda t: t.reserved - t.decremented,
        "duplicate_rate": lambda t: t.duplicates,
        "partial_checkout": lambda t: t.captures - t.orders_placed,
        "retries_per_checkout": lambda t: t.retries,
        "error_rate": lambda t: t.errors,
    }
    for fault in cases:
        shop, _ = run(seed=2, baseline=base, canary=base.with_faults(**{fault: 0.2}))
        got = {name: m(shop.truth["canary"]) for name, m in cases.items()}
        assert got[fault] > 0.1 * shop.truth["canary"].checkouts * (0.2 if fault == "error_rate" else 1), (
            fault
        )
        assert all(v == 0 for name, v in got.items() if name != fault), (fault, got)


def test_counters_in_the_sink_equal_the_truth_at_the_last_scrape():
    shop, sink = run(seed=4, canary=Behavior(partial_checkout=0.1, duplicate_rate=0.1))
    names = shop.names
    for track in ("canary", "baseline"):
        t = shop.truth[track]
        last = {
            name: sink.samples(name, track=track)[-1]
            for name in (
                "shop_orders_placed_total",
                "oms_orders_recorded_total",
                "payment_duplicate_total",
                "payment_processed_total",
                "shop_checkouts_total",
            )
        }
        assert last["shop_checkouts_total"] == (int((T0 + 300) * 1000), t.checkouts)
        assert last["shop_orders_placed_total"][1] == t.orders_placed
        assert last["oms_orders_recorded_total"][1] == t.orders_recorded
        assert last["payment_duplicate_total"][1] == t.duplicates
        assert last["payment_processed_total"][1] == t.processed
        total = sum(
            v
            for _, v in [
                sink.samples("http_requests_total", track=track, code=c, service=names.storefront)[-1]
                for c in ("200", "500")
            ]
        )
        assert total == t.requests


def test_scrapes_have_explicit_times_in_order_and_start_from_zero():
    _, sink = run(seconds=120, seed=1)
    samples = sink.samples("shop_checkouts_total", track="canary")
    times = [ts for ts, _ in samples]
    assert times == [int((T0 + 15 * k) * 1000) for k in range(9)]
    assert samples[0][1] == 0.0 and all(b[1] >= a[1] for a, b in itertools.pairwise(samples))
    for role, counters in COUNTERS.items():
        for name in counters:  # declared at start-up: "nothing happened" is a 0, not a missing series
            assert sink.samples(name, track="canary", service=getattr(ShopNames(), role))[0] == (
                int(T0 * 1000),
                0.0,
            )


def test_every_histogram_bucket_exists_even_when_empty():
    _, sink = run(seconds=60, seed=1, canary=Behavior(latency_shift=2.0))
    les = {
        s.labels["le"]
        for b in sink.batches
        for s in b
        if s.labels["__name__"] == "http_request_duration_seconds_bucket" and s.labels["track"] == "canary"
    }
    assert len(les) == 15 and "0.005" in les and "+Inf" in les
    first_bucket = sink.samples("http_request_duration_seconds_bucket", track="canary", le="1.0")
    assert first_bucket[-1][1] == 0.0  # every canary response is slower than 2 s


def test_a_dark_canary_answers_up_zero_and_its_series_go_stale():
    shop, sink = run(seconds=180, seed=1, canary=Behavior(metrics_dark_from=T0 + 90))
    up = sink.samples("up", track="canary", service="storefront")
    assert [v for ts, v in up if ts < (T0 + 90) * 1000] == [1.0] * 6
    assert [v for ts, v in up if ts >= (T0 + 90) * 1000] == [0.0] * 7
    checkouts = sink.samples("shop_checkouts_total", track="canary")
    assert max(ts for ts, _ in checkouts) == int((T0 + 90) * 1000)
    assert math.isnan(checkouts[-1][1])  # the staleness marker, written once
    assert sink.samples("shop_checkouts_total", track="baseline")[-1][0] == int((T0 + 180) * 1000)
    assert shop.truth["canary"].checkouts > 0  # it kept serving: dark, not down


def test_checkout_traces_go_through_the_sdk_with_sim_times_and_versions():
    spans = Spans()
    shop, _ = run(seconds=60, seed=1, span_exporter=spans, canary=Behavior(partial_checkout=0.3))
    finished = spans.finished()
    assert len(finished) == shop.truth["canary"].spans + shop.truth["baseline"].spans
    assert all(T0 * 1e9 <= s.start_time <= s.end_time <= (T0 + 70) * 1e9 for s in finished)
    by_trace: dict[int, list] = {}
    for s in finished:
        by_trace.setdefault(s.context.trace_id, []).append(s)
    violations = {"canary": 0, "baseline": 0}
    for members in by_trace.values():
        root = next(s for s in members if s.parent is None)
        version = root.resource.attributes["service.version"]
        assert {s.resource.attributes["service.version"] for s in members} == {version}
        names = {s.name: s for s in members}
        if "payment.capture" in names and (
            "order.create" not in names or not names["order.create"].status.is_ok
        ):
            violations[version] += 1
    assert violations == {
        "canary": shop.truth["canary"].traced_violations,
        "baseline": shop.truth["baseline"].traced_violations,
    }
    assert violations["canary"] > violations["baseline"]


def test_seeded_shops_emit_the_same_trace_ids():
    ids = []
    for _ in range(2):
        spans = Spans()
        run(seconds=20, seed=8, span_exporter=spans)
        ids.append(sorted(s.context.trace_id for s in spans.finished()))
    assert ids[0] == ids[1] and len(ids[0]) > 0


def test_a_dark_canary_stops_sending_spans_but_keeps_serving():
    spans = Spans()
    shop, _ = run(seconds=60, seed=1, span_exporter=spans, canary=Behavior(spans_dark_from=T0 + 30))
    canary_spans = [s for s in spans.finished() if s.resource.attributes["service.version"] == "canary"]
    assert canary_spans and max(s.start_time for s in canary_spans) < (T0 + 31) * 1e9
    assert shop.truth["canary"].checkouts > shop.truth["canary"].traces


def test_head_sampling_traces_a_share_of_checkouts():
    spans = Spans()
    shop, _ = run(seconds=120, seed=1, span_exporter=spans, trace_sample_rate=0.25)
    t = shop.truth["baseline"]
    assert abs(t.traces - 0.25 * t.checkouts) < 4.5 * math.sqrt(t.checkouts * 0.25 * 0.75)


def test_a_paced_clock_sleeps_until_real_time_catches_up():
    real = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real[0] += seconds

    clock = SimClock(T0, speed=60.0, monotonic=lambda: real[0], sleep=sleep)
    clock.advance(60)
    clock.advance(30)
    assert clock.now() == T0 + 90 and slept == [pytest.approx(1.0), pytest.approx(0.5)]
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match=r"Behavior\.error_rate"):
        Behavior(error_rate=1.5)
    with pytest.raises(ValueError, match=r"Traffic\.checkout_share"):
        Traffic(checkout_share=-0.1)
    with pytest.raises(ValueError, match="trace_sample_rate"):
        Shop(start=T0, trace_sample_rate=2)
    with pytest.raises(ValueError, match="speed"):
        SimClock(T0, speed=0)
