"""Threshold signals: an absolute bound on any PromQL expression, measured on the canary at every step
(Flagger's `thresholdRange`, Argo's `successCondition`). Empty, NaN or Inf is never a pass.

`initialDelay`, as in Argo Rollouts: nothing is measured until the delay after the stage start has passed,
and steps inside it never count as failed measurements."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.fetch import grid
from gatekeeper.signals.render import fill
from gatekeeper.spec.evidence import ThresholdEvidence
from gatekeeper.spec.outcome import Effect, SignalOutcome, Verdict
from gatekeeper.spec.signals import ThresholdSignal


def measure(signal: ThresholdSignal, ctx: EvalContext) -> SignalOutcome:
    w = ctx.window
    queries = {
        arm: fill(signal.query, scope=getattr(ctx.gate.scopes, arm), arm=arm, window=w.length, step=w.step)
        for arm in ("canary", "baseline")
    }
    points = grid(ctx)
    if signal.initial_delay and ctx.stage_elapsed < signal.initial_delay:
        waiting = f"in initial delay ({signal.initial_delay:g}s) of the stage"
        return SignalOutcome.of(signal, Verdict.INCONCLUSIVE, waiting, queries=queries)
    result = ctx.metrics.range(queries["canary"], start=float(points[0]), end=float(points[-1]), step=w.step)
    base = ctx.metrics.instant(queries["baseline"], at=w.end).scalar()

    def out(verdict: Verdict, reason: str, **kw: Any) -> SignalOutcome:
        return SignalOutcome.of(signal, verdict, reason, queries=dict(queries), **kw)

    if result.empty:
        return out(Verdict.NODATA, "the query returned no series for the canary: empty is not a pass")
    if len(result.series) > 1:
        return out(
            Verdict.ERROR, f"the query returned {len(result.series)} series; aggregate it to one (e.g. sum())"
        )
    s = result.series[0]
    values, times = s.values, s.timestamps
    if signal.initial_delay:
        measured_from = ctx.window.end - ctx.stage_elapsed + signal.initial_delay
        values, times = values[s.timestamps >= measured_from], times[s.timestamps >= measured_from]
        if not len(values):
            return out(Verdict.NODATA, "no measurement since the initial delay ended: empty is not a pass")
    if ctx.window.end - s.timestamps[-1] > ctx.gate.source.prometheus.max_staleness:
        return out(
            Verdict.NODATA, f"the canary's newest value is {ctx.window.end - s.timestamps[-1]:.0f}s old"
        )
    bad = [v for v in values if not math.isfinite(v)]
    latest = float(values[-1])
    canary = {"value": latest if math.isfinite(latest) else str(latest), "measurements": len(values)}
    baseline = {"value": base}
    bounds = f"[{'-inf' if signal.min is None else f'{signal.min:g}'}, {'inf' if signal.max is None else f'{signal.max:g}'}]"
    effect = Effect(
        measure="value",
        estimate=latest if math.isfinite(latest) else None,
        limit=signal.max if signal.max is not None else signal.min,
    )
    if bad:
        return out(
            Verdict.NODATA,
            f"{len(bad)} of {len(values)} measurements are NaN/Inf (e.g. 0/0 with no traffic)",
            canary=canary,
            baseline=baseline,
            effect=effect,
        )
    lo = -np.inf if signal.min is None else signal.min
    hi = np.inf if signal.max is None else signal.max
    failed = int(np.sum((values < lo) | (values > hi)))
    evidence = ThresholdEvidence(
        failed_measurements=failed,
        failure_limit=signal.failure_limit,
        values=tuple(values.tolist()[-60:]),
        values_t=tuple(times.tolist()[-60:]),
    )
    if failed > signal.failure_limit:
        return out(
            Verdict.FAIL,
            f"{failed} of {len(values)} measurements outside {bounds} (limit {signal.failure_limit}); "
            f"latest {latest:.4g}",
            canary=canary,
            baseline=baseline,
            effect=effect,
            evidence=evidence,
        )
    return out(
        Verdict.PASS,
        f"latest {latest:.4g} within {bounds}; {failed} of {len(values)} outside",
        canary=canary,
        baseline=baseline,
        effect=effect,
        evidence=evidence,
    )


__all__ = ["grid", "measure"]
