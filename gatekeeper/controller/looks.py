"""One look at a gate: the evidence window of its current stage, the sources, and the judge.

The window ends at the gate clock's ``now`` floored to the source step (repeated looks within a step query the
same grid) and starts at the stage's start, floored too, so a stage is judged on the evidence gathered while
its split was in place; it is never shorter than one step.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from gatekeeper.judge import Judgement, aggregate, evaluate_gate
from gatekeeper.signals import Window
from gatekeeper.sources.base import MetricsSource, TraceSource
from gatekeeper.sources.prometheus import PrometheusSource
from gatekeeper.sources.traces.select import TraceSources
from gatekeeper.spec.models import GateSpec, PrometheusSettings
from gatekeeper.spec.outcome import SignalOutcome, Verdict
from gatekeeper.spec.status import GateStatus

__all__ = ["Looker", "SourceFactory", "prometheus_source", "stage_window", "warm_up"]

log = logging.getLogger("gatekeeper.controller")


def warm_up() -> None:
    """Import every signal kind's evaluator now (scipy.stats takes seconds), not during a gate's first look."""
    import importlib

    from gatekeeper.signals.registry import _EVALUATORS

    for module in sorted(set(_EVALUATORS.values())):
        importlib.import_module(module)


def stage_window(*, now: float, stage_started: float, step: float) -> Window:
    end = math.floor(now / step) * step
    start = math.floor(stage_started / step) * step
    if end - start < step:
        start = end - step
    return Window(start=start, end=end, step=step)


SourceFactory = Callable[[PrometheusSettings, str], MetricsSource]


def prometheus_source(settings: PrometheusSettings, url: str) -> MetricsSource:
    """The production metrics source: one Prometheus-compatible endpoint with the gate's timeout and retries."""
    return PrometheusSource(url, timeout=settings.timeout, retries=settings.retries, headers=settings.headers)


class Looker:
    """Judges gates; one Prometheus client per (thread, endpoint), so concurrent looks never share a session."""

    def __init__(
        self,
        *,
        prometheus_url: str | None = None,
        max_signal_workers: int = 4,
        traces: TraceSource | None = None,
        source_factory: SourceFactory | None = None,
    ) -> None:
        self.prometheus_url = prometheus_url
        self.traces = traces  # the OTLP intake's store in this process, for trace-invariant signals
        self._trace_sources = TraceSources(local=traces)  # else Jaeger, else the intakes' counters
        self.max_signal_workers = max_signal_workers
        self._factory = source_factory or prometheus_source
        self._local = threading.local()

    def source(self, gate: GateSpec) -> MetricsSource:
        p = gate.source.prometheus
        url = self.prometheus_url or p.url
        key = (url, p.timeout, p.retries, tuple(sorted(p.headers.items())))
        cache: dict[tuple[object, ...], MetricsSource] = self._local.__dict__.setdefault("sources", {})
        if key not in cache:
            cache[key] = self._factory(p, url)
        return cache[key]

    def look(self, gate: GateSpec, state: GateStatus, *, now: float) -> Judgement:
        """The judgement for the gate's current stage; an unexpected failure is an ERROR look, never a pass."""
        stage = min(state.stage, len(gate.stages) - 1)
        started = state.stage_started_at if state.stage_started_at is not None else now
        p = gate.source.prometheus
        window = stage_window(now=now - p.delay, stage_started=started, step=p.step)
        try:
            return evaluate_gate(
                gate,
                metrics=self.source(gate),
                window=window,
                stage=stage,
                stage_started=started,
                max_workers=self.max_signal_workers,
                traces=self._trace_sources.for_gate(gate, self.source(gate)),
                carried=state.carried_signals(),
            )
        except Exception as e:  # a bug or an unforeseen answer: visible, never a pass
            log.exception("gate %s: evaluation failed", gate.name)
            outcome = SignalOutcome(
                name="evaluation", kind="internal", verdict=Verdict.ERROR, reason=f"evaluation failed: {e}"
            )
            return aggregate(
                [outcome],
                gate=gate.name,
                window={"start": window.start, "end": window.end, "step": window.step},
                stage=stage,
            )
