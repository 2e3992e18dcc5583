"""Prometheus metrics about the gates themselves, served at `/metrics`.

Everything lives in one explicit `CollectorRegistry` owned by a `GateMetrics` object (never the process-wide
default registry), so tests and several apps in one process never share counters.

Metric names are a public contract: the Grafana dashboard in `charts/gatekeeper/dashboards/gatekeeper.json`
queries exactly these (a test parses every panel's PromQL and checks each name is exported here).

The controller lives below this room and must not import it: it receives `GateMetrics.record` and
`GateMetrics.record_action` as plain callables when the process is wired up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app

from gatekeeper.judge import Judgement
from gatekeeper.spec.outcome import Verdict

__all__ = ["ANALYSIS_ACTIONS", "METRIC_NAMES", "GateMetrics", "exported_names"]

#: Actions that take the canary back or stop it because of what the analysis found.
ANALYSIS_ACTIONS = frozenset({"revert", "halt", "abort", "rollback"})

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class GateMetrics:
    """The gatekeeper metric families, registered in their own registry.

    `record(judgement, duration_seconds=...)` after every look; `record_action(gate=..., action=...)` after
    every transition; `record_error(gate=..., kind=...)` when a look could not be made at all.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.evaluations = Counter(
            "gatekeeper_evaluations",
            "Looks taken at a gate (one evaluation of every signal).",
            ["gate"],
            registry=r,
        )
        self.gate_verdicts = Counter(
            "gatekeeper_gate_verdicts",
            "Gate verdicts by value, one per look.",
            ["gate", "verdict"],
            registry=r,
        )
        self.signal_verdicts = Counter(
            "gatekeeper_signal_verdicts",
            "Signal verdicts by value, one per signal per look (dry-run signals included).",
            ["gate", "signal", "verdict"],
            registry=r,
        )
        self.gate_verdict = Gauge(
            "gatekeeper_gate_verdict",
            '1 for the gate\'s current verdict, 0 for the others (alert on verdict="fail").',
            ["gate", "verdict"],
            registry=r,
        )
        self.signal_verdict = Gauge(
            "gatekeeper_signal_verdict",
            "1 for the signal's current verdict, 0 for the others.",
            ["gate", "signal", "verdict"],
            registry=r,
        )
        self.duration = Histogram(
            "gatekeeper_evaluation_duration_seconds",
            "Wall time of one look (all signals, queries included).",
            ["gate"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "gatekeeper_evaluation_errors",
            "Looks or signals that ended in error (query failed, bad data, no look possible).",
            ["gate", "kind"],
            registry=r,
        )
        self.e_value = Gauge(
            "gatekeeper_signal_e_value",
            "The signal's harm e-value at the last look (anytime-valid evidence against the canary).",
            ["gate", "signal"],
            registry=r,
        )
        self.e_threshold = Gauge(
            "gatekeeper_signal_e_value_threshold",
            "The e-value at which the signal fails (1 / the signal's alpha).",
            ["gate", "signal"],
            registry=r,
        )
        self.effect = Gauge(
            "gatekeeper_signal_effect",
            "The measured effect (e.g. canary/baseline rate ratio) and its confidence bounds.",
            ["gate", "signal", "measure", "bound"],
            registry=r,
        )
        self.effect_limit = Gauge(
            "gatekeeper_signal_effect_limit",
            "The tolerated effect (1 + tolerance for ratios; the threshold for threshold signals).",
            ["gate", "signal", "measure"],
            registry=r,
        )
        self.samples = Gauge(
            "gatekeeper_signal_samples",
            "Exposure counted in the window per arm (requests, orders, processings).",
            ["gate", "signal", "arm"],
            registry=r,
        )
        self.stage = Gauge(
            "gatekeeper_gate_stage", "Current stage (1 = first) at the last look.", ["gate"], registry=r
        )
        self.weight = Gauge(
            "gatekeeper_gate_weight_percent",
            "Canary traffic weight of the current stage.",
            ["gate"],
            registry=r,
        )
        self.last_look = Gauge(
            "gatekeeper_gate_last_evaluation_timestamp_seconds",
            "Window end of the last look (unix seconds).",
            ["gate"],
            registry=r,
        )
        self.actions = Counter(
            "gatekeeper_actions",
            "Transitions taken by the controller, by action.",
            ["gate", "action"],
            registry=r,
        )
        self.analysis_aborts = Counter(
            "gatekeeper_analysis_aborts",
            "Reverts, halts and aborts caused by the analysis (not by an operator).",
            ["gate", "action"],
            registry=r,
        )

    # --- recording -----------------------------------------------------------------------------------------

    def record(self, judgement: Judgement, *, duration_seconds: float | None = None) -> None:
        """Account one look. Safe to call from any thread."""
        gate = judgement.gate
        self.evaluations.labels(gate).inc()
        self.gate_verdicts.labels(gate, judgement.verdict.value).inc()
        _state_set(self.gate_verdict, (gate,), judgement.verdict.value)
        if duration_seconds is not None:
            self.duration.labels(gate).observe(max(duration_seconds, 0.0))
        self.stage.labels(gate).set(judgement.stage + 1)
        if judgement.weight is not None:
            self.weight.labels(gate).set(judgement.weight)
        end = judgement.window.get("end") if judgement.window else None
        if end is not None:
            self.last_look.labels(gate).set(end)
        for s in judgement.signals:
            self._record_signal(gate, s)

    def _record_signal(self, gate: str, s: Any) -> None:
        name = s.name
        self.signal_verdicts.labels(gate, name, s.verdict.value).inc()
        _state_set(self.signal_verdict, (gate, name), s.verdict.value)
        if s.verdict == Verdict.ERROR:
            self.errors.labels(gate, "signal").inc()
        ev = s.evidence or {}
        if _finite(ev.get("e_value")):
            self.e_value.labels(gate, name).set(ev["e_value"])
            if _finite(ev.get("threshold")):
                self.e_threshold.labels(gate, name).set(ev["threshold"])
        samples = ev.get("samples")
        if isinstance(samples, dict):
            for arm in ("canary", "baseline"):
                if _finite(samples.get(arm)):
                    self.samples.labels(gate, name, arm).set(samples[arm])
        effect = s.effect
        if effect is None:
            return
        for bound in ("estimate", "lower", "upper"):
            value = getattr(effect, bound)
            if value is not None and not math.isnan(value):
                self.effect.labels(gate, name, effect.measure, bound).set(value)
        if effect.limit is not None and not math.isnan(effect.limit):
            self.effect_limit.labels(gate, name, effect.measure).set(effect.limit)

    def record_action(self, *, gate: str, action: str, caused_by_analysis: bool | None = None) -> None:
        """Account one transition. `caused_by_analysis` defaults to True for revert/halt/abort/rollback: pass
        False for an operator's abort so only the gate's own decisions count as analysis aborts."""
        if not action:
            return
        self.actions.labels(gate, action).inc()
        analysis = action in ANALYSIS_ACTIONS if caused_by_analysis is None else caused_by_analysis
        if analysis and action in ANALYSIS_ACTIONS:
            self.analysis_aborts.labels(gate, action).inc()

    def record_error(self, *, gate: str, kind: str) -> None:
        """A look that could not be made at all (bad spec, source down before any signal ran)."""
        self.errors.labels(gate, kind).inc()

    # --- serving -------------------------------------------------------------------------------------------

    def asgi_app(self) -> Callable[..., Any]:
        """The ASGI app for `/metrics` over this registry only."""
        return make_asgi_app(registry=self.registry)


def _state_set(gauge: Gauge, labels: tuple[str, ...], current: str) -> None:
    for v in Verdict:
        gauge.labels(*labels, v.value).set(1.0 if v.value == current else 0.0)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry exposes now (`_total`, `_bucket`, `_count`… included)."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
    return names


#: The sample names `/metrics` exports (what PromQL queries name), for documentation and the dashboard test.
METRIC_NAMES: tuple[str, ...] = (
    "gatekeeper_evaluations_total",
    "gatekeeper_gate_verdicts_total",
    "gatekeeper_signal_verdicts_total",
    "gatekeeper_gate_verdict",
    "gatekeeper_signal_verdict",
    "gatekeeper_evaluation_duration_seconds_bucket",
    "gatekeeper_evaluation_duration_seconds_sum",
    "gatekeeper_evaluation_duration_seconds_count",
    "gatekeeper_evaluation_errors_total",
    "gatekeeper_signal_e_value",
    "gatekeeper_signal_e_value_threshold",
    "gatekeeper_signal_effect",
    "gatekeeper_signal_effect_limit",
    "gatekeeper_signal_samples",
    "gatekeeper_gate_stage",
    "gatekeeper_gate_weight_percent",
    "gatekeeper_gate_last_evaluation_timestamp_seconds",
    "gatekeeper_actions_total",
    "gatekeeper_analysis_aborts_total",
)
