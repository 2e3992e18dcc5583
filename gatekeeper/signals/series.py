"""Per-arm values of one signal for the scoring modes (Kayenta, Keptn): the same PromQL the signal renders,
asked as a range query (one value per step, Kayenta's input) or as one instant query over the whole window
(one value per arm, a Keptn SLI).

Every signal kind with a numeric value per arm has one expression per arm:

- threshold: its free-form query with `${selector}` filled for the arm (so a query without `${selector}`
  measures the same series for both arms, which the caller can see in `same_query`);
- ratio, drift, duplicates, retries: events over exposure, `sum(increase(bad[w])) / sum(increase(total[w]))`
  (drift counts placed orders that were never recorded: `1 - recorded/placed`);
- latency with `quantile`: `histogram_quantile(q, sum by (le) (increase(h_bucket[w])))`.

Other kinds (health, invariant, latency `slowerThan`) have no single value per arm: `UnsupportedSignal`.
Missing steps are NaN, never 0: no data is not a value.
"""

from __future__ import annotations

import math

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.fetch import grid
from gatekeeper.signals.render import fill, increase
from gatekeeper.spec.durations import format_duration
from gatekeeper.spec.measurements import ArmSeries, ArmValues

__all__ = [
    "COUNT_FIELDS",
    "UnsupportedSignal",
    "arm_query",
    "step_series",
    "window_values",
]

COUNT_FIELDS = {
    "ratio": ("bad", "total"),
    "duplicates": ("duplicates", "processed"),
    "retries": ("retries", "requests"),
    "drift": ("recorded", "placed"),
}


class UnsupportedSignal(ValueError):
    """The signal kind has no single numeric value per arm; the message names the kinds that do."""


def arm_query(signal: object, ctx: EvalContext, arm: str, *, window: float) -> str:
    """The PromQL giving `signal`'s value for `arm` over a lookback of `window` seconds."""
    scope = getattr(ctx.gate.scopes, arm)
    kind = getattr(signal, "kind", "")
    if kind == "threshold":
        return fill(signal.query, scope=scope, arm=arm, window=window, step=ctx.window.step)  # type: ignore[attr-defined]
    if kind in COUNT_FIELDS:
        events, exposure = (getattr(signal, f) for f in COUNT_FIELDS[kind])
        ratio = f"{increase(events, scope, window)} / {increase(exposure, scope, window)}"
        return f"1 - ({ratio})" if kind == "drift" else ratio
    if kind == "latency" and getattr(signal, "quantile", None) is not None:
        buckets = increase(signal.histogram, scope, window, by="le", suffix="_bucket")  # type: ignore[attr-defined]
        return f"histogram_quantile({signal.quantile:g}, {buckets})"  # type: ignore[attr-defined]
    raise UnsupportedSignal(
        f"signal kind '{kind}' has no single value per arm for the scoring modes: use threshold, ratio, drift, "
        "duplicates, retries or a latency signal with 'quantile'"
    )


def step_series(signal: object, ctx: EvalContext) -> ArmSeries:
    """Per-step values of both arms (Kayenta's per-interval series), one range query per arm."""
    points = grid(ctx)
    step = ctx.window.step
    queries: dict[str, str] = {}
    values: dict[str, np.ndarray] = {}
    problem = None
    for arm in ("canary", "baseline"):
        query = arm_query(signal, ctx, arm, window=step)
        queries[arm] = query
        result = ctx.metrics.range(query, start=float(points[0]), end=float(points[-1]), step=step)
        out = np.full(len(points), np.nan)
        if len(result.series) > 1:
            problem = (
                f"the {arm} query returned {len(result.series)} series; aggregate it to one "
                "(e.g. sum() or avg())"
            )
        index = {round(float(t), 3): i for i, t in enumerate(points)}
        for s in result.series[:1]:
            for t, v in zip(s.timestamps, s.values, strict=True):
                i = index.get(round(float(t), 3))
                if i is not None and math.isfinite(float(v)):
                    out[i] = float(v)
        values[arm] = out
    return ArmSeries(points, values["canary"], values["baseline"], queries, problem)


def window_values(signal: object, ctx: EvalContext) -> ArmValues:
    """One value per arm over the whole window (a Keptn SLI: `$DURATION_SECONDS` is the window length)."""
    queries: dict[str, str] = {}
    found: dict[str, float | None] = {}
    problem = None
    for arm in ("canary", "baseline"):
        query = arm_query(signal, ctx, arm, window=ctx.window.length)
        queries[arm] = query
        result = ctx.metrics.instant(query, at=ctx.window.end)
        if len(result.series) > 1:
            problem = f"the {arm} query returned {len(result.series)} series; aggregate it to one"
        value = result.scalar()
        found[arm] = value if value is not None and math.isfinite(value) else None
    queries["window"] = format_duration(ctx.window.length)
    return ArmValues(found["canary"], found["baseline"], queries, problem)
