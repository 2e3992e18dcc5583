"""What a signal measurement gets: the gate, the sources, the window and the stage it judges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gatekeeper.sources.base import MetricsSource, TraceSource
from gatekeeper.spec.models import GateSpec, Stage
from gatekeeper.spec.window import Window


@dataclass(frozen=True)
class EvalContext:
    gate: GateSpec
    metrics: MetricsSource
    window: Window
    stage: Stage
    alpha: float  # this signal's share of the gate's false-alarm budget
    traces: TraceSource | None = None
    stage_started: float | None = None  # None: the window start
    # Per signal name: the sequential evidence of the rollout's earlier stages (a `SignalOutcome.carry`), so
    # one e-process runs across every stage and look of a rollout.
    carried: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def stage_elapsed(self) -> float:
        return self.window.end - (self.stage_started if self.stage_started is not None else self.window.start)
