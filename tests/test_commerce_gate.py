"""gates/checkout.yaml against the synthetic shop, end to end: the shop's metrics in a real Prometheus (remote
write), its traces through the OpenTelemetry SDK's OTLP/HTTP exporter into the intake over real HTTP, and the
gate evaluated as the controller will. Each fault at a clear magnitude fails its own signal and no other; the
healthy canary passes; a dark canary is NODATA, never a pass."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gatekeeper.evaluation import judge_gate
from gatekeeper.judge import Judgement
from gatekeeper.signals import EvalContext, measure_signal
from gatekeeper.sim.prometheus import PrometheusServer
from gatekeeper.sim.remote_write import RemoteWriteClient
from gatekeeper.sim.shop import Behavior, Shop, ShopNames, SimClock, Traffic, otlp_exporter_factory
from gatekeeper.sources.prometheus import PrometheusSource
from gatekeeper.sources.traces import TraceStore
from gatekeeper.spec import SignalOutcome, Verdict, load_gate
from gatekeeper.spec.window import Window
from gatekeeper.web.otlp import IntakeServer, create_otlp_app

GATE = Path(__file__).resolve().parents[1] / "gates" / "checkout.yaml"
STAGE = 2  # 50 % canary, minDuration 10m, minSamples 2000
MINUTES = 10
# A shop with visible background noise in every failure mode, so "as often as the baseline" can be shown with
# ten simulated minutes of traffic; each fault below multiplies one of these rates by about five.
BASE = Behavior(
    error_rate=0.01,
    partial_checkout=0.05,
    drift_rate=0.02,
    inventory_drift_rate=0.02,
    duplicate_rate=0.02,
    retries_per_checkout=0.1,
)
TRAFFIC = Traffic(requests_per_second=200, checkout_share=0.25, diurnal_amplitude=0.3)


@dataclass
class Run:
    shop: Shop
    judgement: Judgement

    def verdicts(self) -> dict[str, Verdict]:
        return {s.name: s.verdict for s in self.judgement.signals}

    def failing(self) -> set[str]:
        return {s.name for s in self.judgement.signals if s.verdict == Verdict.FAIL}

    def outcome(self, name: str) -> SignalOutcome:
        return next(s for s in self.judgement.signals if s.name == name)


@pytest.fixture
def run_gate(prometheus: PrometheusServer, request: pytest.FixtureRequest) -> Iterator:
    prefix = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[-40:].strip("-") + "-"  # series per test
    servers: list[IntakeServer] = []

    def run(canary: Behavior, *, traced: bool, sample: float = 0.2) -> Run:
        end = math.floor(time.time() / 60) * 60 - 60
        start = end - 60 * MINUTES
        names = ShopNames.prefixed(prefix)
        store_clock = SimClock(start)
        gate = load_gate(GATE, args=names.args())
        store = TraceStore(
            clock=store_clock,
            completion_timeout=gate.source.traces.completion_timeout,
            rules=[s for s in gate.signals if s.kind == "invariant"],
        )
        exporter = None
        if traced:
            server = IntakeServer(create_otlp_app(store)).__enter__()
            servers.append(server)
            exporter = otlp_exporter_factory(f"{server.url}/v1/traces")
        shop = Shop(
            start=start,
            seed=31,
            traffic=TRAFFIC,
            baseline=BASE,
            canary=canary,
            weight_fn=lambda: 50.0,
            metrics=RemoteWriteClient(prometheus.remote_write_url),
            span_exporter=exporter,
            names=names,
            trace_sample_rate=sample,
        )
        shop.run_until(end)
        shop.close()
        store_clock.set(end + gate.source.traces.completion_timeout + 1)  # every trace complete
        judgement = judge_gate(
            gate,
            metrics=PrometheusSource(prometheus.url),
            window=Window(start, end, 60),
            stage=STAGE,
            stage_started=start,
            traces=store if traced else None,
        )
        return Run(shop=shop, judgement=judgement)

    yield run
    for server in servers:
        server.__exit__(None, None, None)


FAULTS = {
    "error-rate": {"error_rate": 0.05},
    "slow-requests": {"latency_shift": 0.5},
    "order-drift": {"drift_rate": 0.1},
    "inventory-drift": {"inventory_drift_rate": 0.1},
    "duplicate-charges": {"duplicate_rate": 0.1},
    "retry-storm": {"retries_per_checkout": 0.5},
}


@pytest.mark.parametrize("signal", FAULTS)
def test_each_metric_fault_fails_its_own_signal_and_no_other(run_gate, signal):
    run = run_gate(BASE.with_faults(**FAULTS[signal]), traced=False)
    assert run.failing() == {signal}, run.judgement.reason
    assert run.judgement.verdict == Verdict.FAIL
    assert run.outcome("partial-checkout").verdict == Verdict.NODATA  # no traces connected: never a pass
    others = {n: v for n, v in run.verdicts().items() if n not in (signal, "partial-checkout")}
    assert set(others.values()) <= {Verdict.PASS, Verdict.INCONCLUSIVE}, others


def test_the_healthy_canary_passes_every_signal_and_reports_its_side_effects(run_gate):
    run = run_gate(BASE, traced=True)
    assert run.judgement.verdict == Verdict.PASS, [
        (s.name, s.verdict, s.reason) for s in run.judgement.signals
    ]
    invariant = run.outcome("partial-checkout")
    assert invariant.canary["traces"] > 2000 and invariant.baseline["traces"] > 2000
    truth = run.shop.truth["canary"]
    counts = {sel.split("{")[0]: v["count"] for sel, v in run.judgement.side_effects.items()}
    assert counts == {
        "oms_orders_recorded_total": truth.orders_recorded,
        "inventory_decrements_total": truth.decremented,
        "shop_webhooks_sent_total": truth.webhooks,
    }


def test_partial_checkouts_fail_the_trace_invariant_naming_example_traces(run_gate):
    run = run_gate(BASE.with_faults(partial_checkout=0.25), traced=True, sample=0.1)
    assert run.failing() == {"partial-checkout"}, run.judgement.reason
    outcome = run.outcome("partial-checkout")
    examples = outcome.evidence.traces.examples
    assert examples and all(len(e) == 32 for e in examples)
    assert "example canary traces: " + ", ".join(examples[:3]) in outcome.reason
    truth = run.shop.truth
    assert outcome.evidence.events.canary <= truth["canary"].traced_violations
    assert outcome.evidence.events.canary >= 0.95 * truth["canary"].traced_violations


def test_a_dark_canary_is_nodata_on_every_signal_never_a_pass(run_gate):
    end = math.floor(time.time() / 60) * 60 - 60
    run = run_gate(
        BASE.with_faults(metrics_dark_from=end - 240, spans_dark_from=end - 240), traced=True, sample=0.05
    )
    assert run.judgement.verdict == Verdict.NODATA, run.judgement.reason
    assert set(run.verdicts().values()) == {Verdict.NODATA}, run.verdicts()
    assert "stopped sending spans" in run.outcome("partial-checkout").reason
    assert "up == 0" in run.outcome("telemetry").reason


def test_spans_the_sdk_drops_under_a_burst_make_the_invariant_nodata_not_a_false_alarm(caplog):
    """No backpressure and a small SDK queue: the BatchSpanProcessor drops spans silently ("Queue full"). Lost
    order.create spans would read as partial checkouts; the roots lost with them give the loss away."""
    caplog.set_level(logging.ERROR, logger="opentelemetry")  # one "Queue full" warning per dropped span
    start = 1_700_000_040.0
    gate = load_gate(GATE)
    signal = gate.signal("partial-checkout")
    clock = SimClock(start)
    store = TraceStore(clock=clock, rules=[signal])
    with IntakeServer(create_otlp_app(store)) as server:
        shop = Shop(
            start=start,
            seed=5,
            traffic=Traffic(requests_per_second=15, checkout_share=1.0),
            span_exporter=otlp_exporter_factory(f"{server.url}/v1/traces"),
            span_queue=16,
            span_backpressure=False,
        )
        shop.run_until(start + 30)
        shop.close()
    clock.set(start + 200)
    emitted = shop.truth["canary"].spans + shop.truth["baseline"].spans
    received = sum(store.stats().spans_received.values())
    assert received < emitted  # the SDK dropped spans before they were sent
    ctx = EvalContext(
        gate=gate,
        metrics=None,
        window=Window(start, start + 60, 60),
        stage=gate.stages[0],  # type: ignore[arg-type]
        alpha=0.005,
        traces=store,
        stage_started=start,
    )
    out = measure_signal(signal, ctx)
    assert out.verdict == Verdict.NODATA, out.reason
    assert "dropped or lost" in out.reason and "root never arrived" in out.reason
