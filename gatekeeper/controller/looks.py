"""One look at a gate: the evidence window of its current stage, its sources, and `gatekeeper.evaluation`.

The window ends at the gate clock's ``now`` less the source's settle delay and starts at the stage's start
(`gatekeeper.evaluation.stage_window`), so a stage is judged on the evidence gathered while its split was in
place.
"""

from __future__ import annotations

import threading

from gatekeeper.evaluation import SourceFactory, prometheus_source, safe_judgement, stage_window
from gatekeeper.judge import Judgement
from gatekeeper.signals import load_kinds
from gatekeeper.sources.base import MetricsSource, TraceSource
from gatekeeper.sources.traces.select import TraceSources
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.status import GateStatus

__all__ = ["Looker", "warm_up"]


def warm_up() -> None:
    """Import every signal kind now (scipy.stats takes seconds), not during a gate's first look."""
    load_kinds()


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

    def judge(self, gate: GateSpec, state: GateStatus, *, now: float) -> Judgement:
        """The judgement for the gate's current stage; an unexpected failure is an ERROR look, never a pass."""
        stage = min(state.stage, len(gate.stages) - 1)
        started = state.stage_started_at if state.stage_started_at is not None else now
        p = gate.source.prometheus
        metrics = self.source(gate)
        return safe_judgement(
            gate,
            window=stage_window(now=now - p.delay, stage_started=started, step=p.step),
            stage=stage,
            metrics=metrics,
            traces=self._trace_sources.for_gate(gate, metrics),
            stage_started=started,
            carried=state.carried_signals(),
            max_workers=self.max_signal_workers,
        )
