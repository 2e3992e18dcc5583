"""Judge a gate over a window: gather its evidence, hand it to the judge. Same code for every caller."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from gatekeeper.evaluation import gather
from gatekeeper.evaluation.sources import open_prometheus
from gatekeeper.judge import Judgement, aggregate, signal_alphas
from gatekeeper.judge import kayenta as kayenta_judge
from gatekeeper.judge import keptn as keptn_judge
from gatekeeper.signals import EvalContext
from gatekeeper.sources.base import MetricsSource, TraceSource
from gatekeeper.sources.cache import MemoSource
from gatekeeper.sources.prometheus import PrometheusSource
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.outcome import SignalOutcome, Verdict
from gatekeeper.spec.window import Window

__all__ = ["error_judgement", "judge_gate", "safe_judgement"]

log = logging.getLogger("gatekeeper.evaluation")


def judge_gate(
    gate: GateSpec,
    *,
    metrics: MetricsSource,
    window: Window,
    stage: int = 0,
    stage_started: float | None = None,
    traces: TraceSource | None = None,
    max_workers: int = 8,
    carried: Mapping[str, Mapping[str, Any]] | None = None,
) -> Judgement:
    """Every signal of `gate` over `window` at stage index `stage`, judged by the gate's scoring mode.

    `stage_started`: when the stage began (the window start when None), for minimum durations and initial
    delays. `carried`: per signal, the sequential evidence of the rollout's earlier stages
    (`GateStatus.carried_signals()`), which the count tests continue. Raises on bad input (a stage that does
    not exist) and on bugs; `safe_judgement` turns those into an ERROR judgement."""
    if not 0 <= stage < len(gate.stages):
        raise ValueError(f"stage {stage} does not exist: the gate has stages 0..{len(gate.stages) - 1}")
    metrics = MemoSource(metrics)  # signals share queries; each distinct one runs once per judgement

    def context(alpha: float) -> EvalContext:
        return EvalContext(
            gate=gate,
            metrics=metrics,
            window=window,
            stage=gate.stages[stage],
            alpha=alpha,
            traces=traces,
            stage_started=stage_started,
            carried=carried or {},
        )

    if gate.mode == "kayenta":  # score-based modes for teams migrating from those tools
        ctx = context(gate.alpha)
        series, waiting = gather.kayenta_series(ctx)
        return kayenta_judge.score_gate(
            gate, series, window=window, stage=stage, stage_elapsed=ctx.stage_elapsed, waiting=waiting
        )
    if gate.mode == "keptn":
        ctx = context(gate.alpha)
        values = gather.keptn_values(ctx)
        return keptn_judge.score_gate(
            gate, values, window=window, stage=stage, stage_elapsed=ctx.stage_elapsed
        )
    alphas = signal_alphas(gate)
    outcomes = gather.signal_outcomes(
        gate, context=lambda name: context(alphas[name]), max_workers=max_workers
    )
    return aggregate(
        outcomes,
        gate=gate.name,
        window=window.to_dict(),
        stage=stage,
        weight=gate.stages[stage].weight,
        mode=gate.mode,
        side_effects=gather.side_effects(context(alphas[gate.signals[0].name])),
        owners=tuple(gate.owners),
    )


def safe_judgement(
    gate: GateSpec,
    *,
    window: Window,
    stage: int = 0,
    metrics: MetricsSource | None = None,
    prometheus_url: str | None = None,
    traces: TraceSource | None = None,
    stage_started: float | None = None,
    carried: Mapping[str, Mapping[str, Any]] | None = None,
    max_workers: int = 8,
    on_crash: Callable[[Exception], None] | None = None,
) -> Judgement:
    """`judge_gate`, where any exception becomes an ERROR judgement naming it: visible, never a pass.

    `metrics`: the source to read; without one, the gate's own Prometheus (at `prometheus_url` when given) is
    opened for this judgement and closed after it. `on_crash` is told of the exception (e.g. to count it); the
    exception is logged with its traceback."""
    opened: PrometheusSource | None = None
    try:
        if metrics is None:
            metrics = opened = open_prometheus(gate, url=prometheus_url)
        return judge_gate(
            gate,
            metrics=metrics,
            window=window,
            stage=stage,
            stage_started=stage_started,
            traces=traces,
            max_workers=max_workers,
            carried=carried,
        )
    except Exception as e:  # a bug or an unforeseen answer: visible, never a pass
        log.exception("gate %s: evaluation failed", gate.name)
        if on_crash is not None:
            on_crash(e)
        return error_judgement(gate, window=window, stage=stage, reason=f"evaluation failed: {e}")
    finally:
        if opened is not None:
            opened.close()


def error_judgement(gate: GateSpec, *, window: Window, stage: int, reason: str) -> Judgement:
    """An ERROR judgement of the whole gate: one internal outcome carrying `reason`."""
    outcome = SignalOutcome(name="evaluation", kind="internal", verdict=Verdict.ERROR, reason=reason)
    weight = gate.stages[stage].weight if 0 <= stage < len(gate.stages) else None
    return aggregate([outcome], gate=gate.name, window=window.to_dict(), stage=stage, weight=weight)
