"""`/metrics`: gate metrics in an explicit registry, served by the real app over real HTTP, and the Grafana
dashboard whose every PromQL expression must only use names that registry exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import promql_parser
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.judge import aggregate
from gatekeeper.ops.repository import InMemoryGateRepository
from gatekeeper.spec.evidence import ArmPair, CountEvidence, SequentialTest
from gatekeeper.spec.outcome import Effect, SignalOutcome, Verdict
from gatekeeper.web.app import BackgroundServer, create_app
from gatekeeper.web.metrics import METRIC_NAMES, GateMetrics, exported_names

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "charts" / "gatekeeper" / "dashboards" / "gatekeeper.json"
# Grafana's built-in variables are not PromQL; give them values the parser accepts.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}


def sequential(e_value: float, threshold: float) -> SequentialTest:
    """The e-values of a sequential count test whose harm e-value is `e_value` now."""
    return SequentialTest(e_value=e_value, max_e_value=e_value, safety_e_value=1.0, threshold=threshold)


def judgement(*, gate: str = "checkout", error_verdict: Verdict = Verdict.FAIL):  # type: ignore[no-untyped-def]
    failing = SignalOutcome(
        name="error-rate",
        kind="ratio",
        verdict=error_verdict,
        reason="rate ratio 4.6x exceeds 1.2x",
        canary={"events": 312, "requests": 5931, "rate": 312 / 5931},
        baseline={"events": 68, "requests": 5908, "rate": 68 / 5908},
        effect=Effect(measure="rate ratio", estimate=4.57, lower=2.71, upper=8.0, limit=1.2),
        evidence=CountEvidence(test=sequential(3.2e6, 150.0), samples=ArmPair(canary=5931, baseline=5908)),
        critical=True,
    )
    passing = SignalOutcome(
        name="latency-p99",
        kind="latency",
        verdict=Verdict.PASS,
        reason="fine",
        effect=Effect(measure="rate ratio", estimate=float("nan"), lower=None, upper=1.1, limit=1.5),
        evidence=CountEvidence(test=sequential(float("inf"), 300.0)),
    )
    broken = SignalOutcome(name="slow-requests", kind="latency", verdict=Verdict.ERROR, reason="query failed")
    return aggregate(
        [failing, passing, broken],
        gate=gate,
        window={"start": 1000.0, "end": 1600.0, "step": 60.0},
        stage=1,
        weight=5.0,
    )


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_endpoint_serves_verdicts_e_values_and_effects_of_a_recorded_look() -> None:
    metrics = GateMetrics()
    metrics.record(judgement(), duration_seconds=0.42)
    metrics.record_action(gate="checkout", action="revert")
    app = create_app(repository=InMemoryGateRepository(), metrics=metrics)
    with BackgroundServer(app) as server:
        m = scrape(server.url)
    assert m[("gatekeeper_evaluations_total", (("gate", "checkout"),))] == 1
    assert m[("gatekeeper_gate_verdicts_total", (("gate", "checkout"), ("verdict", "fail")))] == 1
    assert m[("gatekeeper_gate_verdict", (("gate", "checkout"), ("verdict", "fail")))] == 1
    assert m[("gatekeeper_gate_verdict", (("gate", "checkout"), ("verdict", "pass")))] == 0
    sig = (("gate", "checkout"), ("signal", "error-rate"))
    assert m[("gatekeeper_signal_e_value", sig)] == pytest.approx(3.2e6)
    assert m[("gatekeeper_signal_e_value_threshold", sig)] == 150.0
    bound = (("bound", "lower"), ("gate", "checkout"), ("measure", "rate ratio"), ("signal", "error-rate"))
    assert m[("gatekeeper_signal_effect", bound)] == pytest.approx(2.71)
    limit = (("gate", "checkout"), ("measure", "rate ratio"), ("side", "max"), ("signal", "error-rate"))
    assert m[("gatekeeper_signal_effect_limit", limit)] == pytest.approx(1.2)
    assert m[("gatekeeper_signal_samples", (("arm", "canary"), *sig))] == 5931
    assert m[("gatekeeper_evaluation_duration_seconds_count", (("gate", "checkout"),))] == 1
    assert m[("gatekeeper_evaluation_errors_total", (("gate", "checkout"), ("kind", "signal")))] == 1
    assert m[("gatekeeper_analysis_aborts_total", (("action", "revert"), ("gate", "checkout")))] == 1
    assert m[("gatekeeper_gate_weight_percent", (("gate", "checkout"),))] == 5.0
    assert m[("gatekeeper_gate_stage", (("gate", "checkout"),))] == 2  # 1-based for people
    # non-finite numbers are not exported as if they were measurements
    latency = (("gate", "checkout"), ("signal", "latency-p99"))
    assert ("gatekeeper_signal_e_value", latency) not in m
    estimate = (
        ("bound", "estimate"),
        ("gate", "checkout"),
        ("measure", "rate ratio"),
        ("signal", "latency-p99"),
    )
    assert ("gatekeeper_signal_effect", estimate) not in m  # NaN estimate
    upper = (("bound", "upper"), ("gate", "checkout"), ("measure", "rate ratio"), ("signal", "latency-p99"))
    assert m[("gatekeeper_signal_effect", upper)] == pytest.approx(1.1)


def test_each_gate_metrics_object_has_its_own_registry_and_never_touches_the_default_one() -> None:
    a, b = GateMetrics(), GateMetrics()
    a.record(judgement(gate="one"))
    assert "gatekeeper_evaluations_total" in exported_names(a.registry)
    assert not any(s.labels.get("gate") == "one" for f in b.registry.collect() for s in f.samples)
    assert not any(f.name.startswith("gatekeeper_") for f in REGISTRY.collect())


def test_an_operator_abort_is_an_action_but_not_an_abort_caused_by_the_analysis() -> None:
    metrics = GateMetrics()
    metrics.record_action(gate="g", action="abort", caused_by_analysis=False)
    metrics.record_action(gate="g", action="halt")
    metrics.record_action(gate="g", action="advance")
    samples = {
        (s.name, s.labels.get("action")): s.value
        for f in metrics.registry.collect()
        for s in f.samples
        if s.name.endswith("_total")
    }
    assert samples[("gatekeeper_actions_total", "abort")] == 1
    assert samples[("gatekeeper_analysis_aborts_total", "halt")] == 1
    assert ("gatekeeper_analysis_aborts_total", "abort") not in samples
    assert ("gatekeeper_analysis_aborts_total", "advance") not in samples


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            out.append((panel["title"], target["expr"]))
    return out


def metric_names(expr: str) -> set[str]:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    names: set[str] = set()

    def visit(node):  # type: ignore[no-untyped-def]
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def test_grafana_dashboard_queries_only_metric_names_the_registry_exports() -> None:
    metrics = GateMetrics()
    metrics.record(judgement(), duration_seconds=0.1)  # every family gets samples
    metrics.record_action(gate="checkout", action="revert")
    metrics.record_phase(gate="checkout", phase="RolledBack")
    exported = exported_names(metrics.registry)
    assert set(METRIC_NAMES) <= exported
    used: set[str] = set()
    for title, expr in dashboard_exprs():
        names = metric_names(expr)
        assert names, f"panel {title!r}: no metric in {expr!r}"
        unknown = names - exported
        assert not unknown, f"panel {title!r} queries {sorted(unknown)}, which /metrics does not export"
        used |= names
    dash = json.loads(DASHBOARD.read_text())
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            (name,) = re.findall(r"label_values\((\w+)", var["definition"])
            assert name in exported
    # the dashboard shows the verdicts, the evidence and the aborts, not just some of the metrics
    for needed in (
        "gatekeeper_gate_verdict",
        "gatekeeper_signal_e_value",
        "gatekeeper_signal_e_value_threshold",
        "gatekeeper_signal_effect",
        "gatekeeper_signal_effect_limit",
        "gatekeeper_analysis_aborts_total",
        "gatekeeper_evaluation_errors_total",
        "gatekeeper_evaluation_duration_seconds_bucket",
        "gatekeeper_gate_phase",
        "gatekeeper_gate_stage",
        "gatekeeper_gate_weight_percent",
    ):
        assert needed in used, needed


def test_metric_name_check_catches_a_panel_with_a_name_the_registry_does_not_export() -> None:
    """The check above can fail: a typo'd metric is reported by name."""
    exported = exported_names(GateMetrics().registry) | {"gatekeeper_gate_verdict"}
    names = metric_names('sum(rate(gatekeeper_verdicts_totl{gate=~"$gate"}[$__rate_interval]))')
    assert names - exported == {"gatekeeper_verdicts_totl"}


# -- every signal kind: the measured value next to the bound it is judged against ------------------------------
def checkout_gate_with_every_kind():  # type: ignore[no-untyped-def]
    """gates/checkout.yaml (ratio, latency, invariant, drift, duplicates, retries, health) plus a two-sided
    threshold, a one-sided one and a ratio whose harmful direction is a decrease."""
    from gatekeeper.spec import load_gate
    from gatekeeper.spec.signals import RatioSignal, ThresholdSignal

    gate = load_gate(ROOT / "gates" / "checkout.yaml")
    extra = [
        ThresholdSignal.model_validate(
            {"name": "cpu", "kind": "threshold", "query": "x", "min": 0.1, "max": 2}
        ),
        ThresholdSignal.model_validate({"name": "floor", "kind": "threshold", "query": "y", "min": 5}),
        RatioSignal.model_validate(
            {
                "name": "conversion",
                "kind": "ratio",
                "bad": "a",
                "total": "b",
                "direction": "decrease",
                "tolerance": 0.25,
            }
        ),
    ]
    return gate.model_copy(update={"signals": [*gate.signals, *extra]})


def outcome_of(signal, *, measured: bool):  # type: ignore[no-untyped-def]
    """What each kind's evaluator returns: count kinds a rate-ratio effect once events exist (none before),
    threshold the latest value, health the ages of the canary's required series."""
    kw = {}
    if signal.kind == "threshold":
        kw["effect"] = Effect(measure="value", estimate=1.7, limit=signal.max or signal.min)
    elif signal.kind == "health":
        kw["canary"] = {
            "age_seconds": {"http_requests_total": 12.0, "orders_total": 47.5, "gone": None, "up": 60.0}
        }
    elif measured:
        kw["effect"] = Effect(
            measure="rate ratio", estimate=1.1, lower=0.9, upper=1.3, limit=1 + signal.tolerance
        )
    return SignalOutcome(name=signal.name, kind=signal.kind, verdict=Verdict.INCONCLUSIVE, reason="r", **kw)


def samples_of(metrics: GateMetrics, name: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in metrics.registry.collect()
        for s in f.samples
        if s.name == name
    }


def test_every_signal_kind_exports_its_measured_value_next_to_the_limit_it_is_judged_against() -> None:
    gate = checkout_gate_with_every_kind()
    kinds = {s.kind for s in gate.signals}
    assert kinds >= {"ratio", "latency", "threshold", "invariant", "drift", "duplicates", "retries", "health"}
    metrics = GateMetrics()
    for measured in (False, True):  # before any event (no effect yet), then with one
        outcomes = [outcome_of(s, measured=measured) for s in gate.signals]
        metrics.record(aggregate(outcomes, gate="checkout", window={"end": 1.0}, stage=0), spec=gate)
        limits = samples_of(metrics, "gatekeeper_signal_effect_limit")
        for s in gate.signals:
            mine = {dict(k)["measure"] for k in limits if dict(k)["signal"] == s.name}
            assert len(mine) == 1, f"{s.kind} signal {s.name}: limits {mine}"
    effects = samples_of(metrics, "gatekeeper_signal_effect")
    for s in gate.signals:  # the same measure label on both lines, so one panel draws them together
        (measure,) = {dict(k)["measure"] for k in limits if dict(k)["signal"] == s.name}
        assert any(dict(k)["signal"] == s.name and dict(k)["measure"] == measure for k in effects), s.name

    def limit(signal: str, side: str) -> float | None:
        hits = [v for k, v in limits.items() if dict(k)["signal"] == signal and dict(k)["side"] == side]
        return hits[0] if hits else None

    assert (limit("error-rate", "max"), limit("error-rate", "min")) == (1.5, None)
    assert limit("conversion", "min") == pytest.approx(1 / 1.25) and limit("conversion", "max") is None
    assert (limit("cpu", "min"), limit("cpu", "max")) == (0.1, 2.0)  # both bounds, not only the max
    assert (limit("floor", "min"), limit("floor", "max")) == (5.0, None)
    assert limit("telemetry", "max") == 120.0
    health = {dict(k)["bound"]: v for k, v in effects.items() if dict(k)["signal"] == "telemetry"}
    assert health == {"estimate": 47.5}  # the stalest required series the canary has


def test_without_the_spec_the_limit_is_the_outcomes_own() -> None:
    metrics = GateMetrics()
    metrics.record(judgement())
    limits = samples_of(metrics, "gatekeeper_signal_effect_limit")
    assert (
        limits[(("gate", "checkout"), ("measure", "rate ratio"), ("side", "max"), ("signal", "error-rate"))]
        == 1.2
    )


# -- the controller's Observer ----------------------------------------------------------------------------------
def test_the_controller_observer_moves_phase_stage_and_weight_and_counts_only_the_analysis_aborts() -> None:
    from gatekeeper.controller.kube import parse_gate
    from gatekeeper.controller.runtime import Observer
    from tests.controller_support import gate_body

    body = gate_body("web", service="checkout")
    body["metadata"]["namespace"] = "shop"
    gate = parse_gate(body)  # stages 1, 5, 25, 50, 100
    other = gate.model_copy(update={"name": "other"})
    metrics = GateMetrics()
    observer: Observer = metrics.observer()
    look = aggregate([outcome_of(gate.signals[0], measured=True)], gate="web", window={"end": 9.0}, stage=0,
                     weight=1.0)  # fmt: skip
    observer.acted(gate, "start", by_operator=False)
    observer.looked(gate, look, 0.05)
    observer.acted(gate, "advance", by_operator=False)
    position = (
        samples_of(metrics, "gatekeeper_gate_stage"),
        samples_of(metrics, "gatekeeper_gate_weight_percent"),
    )
    assert position == ({(("gate", "web"),): 2.0}, {(("gate", "web"),): 5.0})
    observer.acted(gate, "revert", by_operator=False)
    observer.acted(other, "start", by_operator=False)
    observer.acted(other, "abort", by_operator=True)  # `gatekeeper abort`: an operator's, not the analysis's
    assert samples_of(metrics, "gatekeeper_gate_weight_percent") == {
        (("gate", "web"),): 0.0,
        (("gate", "other"),): 0.0,
    }
    phases = {k: v for k, v in samples_of(metrics, "gatekeeper_gate_phase").items() if v == 1}
    assert phases == {
        (("gate", "web"), ("phase", "RolledBack")): 1,
        (("gate", "other"), ("phase", "Aborted")): 1,
    }
    aborts = samples_of(metrics, "gatekeeper_analysis_aborts_total")
    assert aborts == {(("action", "revert"), ("gate", "web")): 1.0}
    actions = samples_of(metrics, "gatekeeper_actions_total")
    assert actions[(("action", "abort"), ("gate", "other"))] == 1
    assert samples_of(metrics, "gatekeeper_evaluation_duration_seconds_count") == {(("gate", "web"),): 1.0}
    limit = (("gate", "web"), ("measure", "rate ratio"), ("side", "max"), ("signal", "error-rate"))
    assert samples_of(metrics, "gatekeeper_signal_effect_limit") == {limit: 1.5}  # the spec's tolerance 0.5


def test_the_settled_status_sets_the_exact_phase_stage_and_weight_a_pausing_hold_included() -> None:
    from gatekeeper.controller.kube import parse_gate
    from gatekeeper.spec.status import GateStatus, Phase
    from tests.controller_support import gate_body

    body = gate_body("web", service="checkout")
    body["metadata"]["namespace"] = "shop"
    gate = parse_gate(body)
    metrics = GateMetrics()
    observer = metrics.observer()
    observer.acted(gate, "start", by_operator=False)
    observer.acted(gate, "hold", by_operator=False)  # an outage past its budget: a hold that pauses
    observer.settled(gate, GateStatus(phase=Phase.PAUSED, stage=2, weight=25.0))
    phases = {k: v for k, v in samples_of(metrics, "gatekeeper_gate_phase").items() if v == 1}
    assert phases == {(("gate", "web"), ("phase", "Paused")): 1}
    assert samples_of(metrics, "gatekeeper_gate_stage") == {(("gate", "web"),): 3.0}
    assert samples_of(metrics, "gatekeeper_gate_weight_percent") == {(("gate", "web"),): 25.0}
