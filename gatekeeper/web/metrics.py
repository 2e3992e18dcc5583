"""Prometheus metrics about the gates themselves, served at `/metrics`.

Everything lives in one explicit `CollectorRegistry` owned by a `GateMetrics` object (never the process-wide
default registry), so tests and several apps in one process never share counters.

Metric names are a public contract: the Grafana dashboard in `charts/gatekeeper/dashboards/gatekeeper.json`
queries exactly these (a test parses every panel's PromQL and checks each name is exported here).

The controller lives below this room and must not import it: `gatekeeper controller run` hands it
`GateMetrics.observer()`, an implementation of `gatekeeper.controller.runtime.Observer` over these metrics.

Every signal exports what it is judged on next to what it is judged against, so one Grafana panel can draw both:
`gatekeeper_signal_effect{measure, bound}` and `gatekeeper_signal_effect_limit{measure, side}`.

| kinds | measure | effect (bound) | limit (side) |
|---|---|---|---|
| ratio, latency, invariant, drift, duplicates, retries | `rate ratio` (canary/baseline) | estimate, lower, upper | `max` 1 + tolerance (increase), `min` 1 / (1 + tolerance) (decrease), both (either) |
| threshold | `value` (the canary's latest) | estimate | `max` and/or `min`, as the signal sets them |
| health | `staleness (s)` (the canary's oldest required series) | estimate | `max` maxStaleness |

Limits come from the gate's spec when the gate is known (the controller, `gatekeeper serve`'s evaluations),
so they are there from the first look even before an effect could be estimated; otherwise from the outcome.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app

from gatekeeper.judge import Judgement
from gatekeeper.spec import GateSpec
from gatekeeper.spec.evidence import CountEvidence
from gatekeeper.spec.outcome import SignalOutcome, Verdict
from gatekeeper.spec.signals import Direction
from gatekeeper.spec.status import GateStatus, Phase

__all__ = [
    "ACTION_PHASES",
    "ANALYSIS_ACTIONS",
    "METRIC_NAMES",
    "GateMetrics",
    "MetricsObserver",
    "exported_names",
    "signal_limits",
]

#: Actions that take the canary back or stop it because of what the analysis found.
ANALYSIS_ACTIONS = frozenset({"revert", "halt", "abort", "rollback"})

#: The phase a transition leaves the gate in (approve and hold leave it where it was).
ACTION_PHASES = {
    "start": Phase.PROGRESSING,
    "advance": Phase.PROGRESSING,
    "resume": Phase.PROGRESSING,
    "await-approval": Phase.AWAITING_APPROVAL,
    "pause": Phase.PAUSED,
    "promote": Phase.PROMOTED,
    "revert": Phase.ROLLED_BACK,
    "halt": Phase.HALTED,
    "abort": Phase.ABORTED,
}

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
            "The bound the effect is judged against (side=max: harm above it; side=min: harm below it).",
            ["gate", "signal", "measure", "side"],
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
        self.phase = Gauge(
            "gatekeeper_gate_phase",
            "1 for the gate's phase after its last transition, 0 for the others.",
            ["gate", "phase"],
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

    def record(
        self, judgement: Judgement, *, duration_seconds: float | None = None, spec: GateSpec | None = None
    ) -> None:
        """Account one look. Safe to call from any thread. `spec`: the gate judged, for every signal's limits."""
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
        limits = {sig.name: signal_limits(sig) for sig in spec.signals} if spec is not None else {}
        for s in judgement.signals:
            self._record_signal(gate, s, limits.get(s.name))

    def _record_signal(self, gate: str, s: SignalOutcome, limits: _Limits | None) -> None:
        name = s.name
        self.signal_verdicts.labels(gate, name, s.verdict.value).inc()
        _state_set(self.signal_verdict, (gate, name), s.verdict.value)
        if s.verdict == Verdict.ERROR:
            self.errors.labels(gate, "signal").inc()
        ev = s.evidence
        if isinstance(ev, CountEvidence):
            if ev.e_value is not None and _finite(ev.e_value):
                self.e_value.labels(gate, name).set(ev.e_value)
                if ev.threshold is not None and _finite(ev.threshold):
                    self.e_threshold.labels(gate, name).set(ev.threshold)
            if ev.samples is not None:
                self.samples.labels(gate, name, "canary").set(ev.samples.canary)
                self.samples.labels(gate, name, "baseline").set(ev.samples.baseline)
        effect = s.effect
        measure = effect.measure if effect is not None else None
        if effect is not None:
            for bound in ("estimate", "lower", "upper"):
                value = getattr(effect, bound)
                if value is not None and not math.isnan(value):
                    self.effect.labels(gate, name, effect.measure, bound).set(value)
        elif s.kind == "health":
            facts = s.canary.get("age_seconds") or {}  # selector -> age, and "up" -> min(up) when checked
            ages = [a for k, a in facts.items() if k != "up" and _finite(a)]
            measure = _STALENESS
            if ages:
                self.effect.labels(gate, name, measure, "estimate").set(max(ages))
        if limits is not None and (measure is None or measure == limits[0]):
            for side, value in limits[1]:
                self.effect_limit.labels(gate, name, limits[0], side).set(value)
        elif effect is not None and effect.limit is not None and math.isfinite(effect.limit):
            self.effect_limit.labels(gate, name, effect.measure, "max").set(effect.limit)

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

    def record_phase(self, *, gate: str, phase: str) -> None:
        """The gate's phase now (a state set: 1 for it, 0 for every other phase)."""
        for p in Phase:
            self.phase.labels(gate, p.value).set(1.0 if p.value == phase else 0.0)

    def record_position(self, *, gate: str, stage: int | None = None, weight: float | None = None) -> None:
        """The gate's stage (0-based here, exported 1-based) and canary weight after a transition."""
        if stage is not None:
            self.stage.labels(gate).set(stage + 1)
        if weight is not None:
            self.weight.labels(gate).set(weight)

    def observer(self) -> MetricsObserver:
        """The controller's `Observer` over these metrics (see `MetricsObserver`)."""
        return MetricsObserver(self)

    # --- serving -------------------------------------------------------------------------------------------

    def asgi_app(self) -> Callable[..., Any]:
        """The ASGI app for `/metrics` over this registry only."""
        return make_asgi_app(registry=self.registry)


_STALENESS = "staleness (s)"
_Limits = tuple[str, tuple[tuple[str, float], ...]]


def signal_limits(signal: Any) -> _Limits:
    """(measure, ((side, limit), ...)) a signal of the spec is judged against; see the module docstring."""
    kind = signal.kind
    if kind == "threshold":
        sides = (("max", signal.max), ("min", signal.min))
        return "value", tuple((side, float(v)) for side, v in sides if v is not None)
    if kind == "health":
        return _STALENESS, (("max", float(signal.max_staleness)),)
    limit = 1.0 + signal.tolerance
    direction = getattr(signal, "direction", Direction.INCREASE)
    out: list[tuple[str, float]] = []
    if direction in (Direction.INCREASE, Direction.EITHER):
        out.append(("max", limit))
    if direction in (Direction.DECREASE, Direction.EITHER):
        out.append(("min", 1.0 / limit))
    return "rate ratio", tuple(out)


class MetricsObserver:
    """`gatekeeper.controller.runtime.Observer` over `GateMetrics`, wired by `gatekeeper controller run`.

    A look records the judgement (verdict, evidence, effect and limits from the gate's spec, stage and weight);
    a transition counts the action (an operator's abort is an action, never an analysis abort) and moves the
    phase, stage and weight gauges, so a rolled-back gate shows weight 0 although it is never looked at again.
    Thread-safe: the controller calls it from its worker threads.
    """

    def __init__(self, metrics: GateMetrics) -> None:
        self.metrics = metrics
        self._lock = threading.Lock()
        self._stage: dict[str, int] = {}  # the last stage seen per gate (a look's, or a transition's)

    def looked(self, gate: GateSpec, judgement: Judgement, seconds: float) -> None:
        self.metrics.record(judgement, duration_seconds=seconds, spec=gate)
        with self._lock:
            self._stage[gate.name] = judgement.stage

    def acted(self, gate: GateSpec, action: str, *, by_operator: bool) -> None:
        name = gate.name
        self.metrics.record_action(gate=name, action=action, caused_by_analysis=not by_operator)
        phase = ACTION_PHASES.get(action)
        if phase is not None:
            self.metrics.record_phase(gate=name, phase=phase.value)
        with self._lock:
            stage, weight = self._position(gate, action, self._stage.get(name))
            if stage is not None:
                self._stage[name] = stage
        self.metrics.record_position(gate=name, stage=stage, weight=weight)

    def settled(self, gate: GateSpec, status: GateStatus) -> None:
        """The stored status after each reconcile: the exact phase (holds that pause included), the stage and
        the weight in place, also after a restart before any transition."""
        self.metrics.record_phase(gate=gate.name, phase=status.phase.value)
        self.metrics.record_position(gate=gate.name, stage=status.stage, weight=status.weight)
        with self._lock:
            self._stage[gate.name] = status.stage

    @staticmethod
    def _position(gate: GateSpec, action: str, known: int | None) -> tuple[int | None, float | None]:
        last = len(gate.stages) - 1
        if action == "start":
            return 0, gate.stages[0].weight
        if action == "advance" and known is not None and known < last:
            return known + 1, gate.stages[known + 1].weight
        if action == "promote":
            return last, 100.0
        if action in ("revert", "abort"):
            return None, 0.0
        return None, None


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
    "gatekeeper_gate_phase",
    "gatekeeper_gate_last_evaluation_timestamp_seconds",
    "gatekeeper_actions_total",
    "gatekeeper_analysis_aborts_total",
)
