"""Fetch per-step increments and freshness for both arms, aligned on the window's step grid.

Each fetch asks one folded query for both arms when the gate's scopes allow it (see `render.split_arms`), else
one query per arm; either way every arm's answer carries the exact query text that produced it, which is what
an outcome records as "the query behind it". A folded answer without a group for an arm is that arm's empty
answer: no data and stale data stay visible exactly as with separate queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.render import aggregate, increase, scoped, split_arms
from gatekeeper.sources.base import QueryResult, Series

ARMS = ("canary", "baseline")

#: scope, extra grouping labels -> PromQL
Render = Callable[[dict[str, str], tuple[str, ...]], str]


def grid(ctx: EvalContext) -> np.ndarray:
    w = ctx.window
    n = max(round(w.length / w.step), 1)
    return w.end - w.step * np.arange(n - 1, -1, -1, dtype=float)


def align(result: QueryResult, points: np.ndarray) -> tuple[np.ndarray, bool]:
    """Sum a range result's series onto `points`; missing steps are 0. Returns (values, any data at all)."""
    out = np.zeros(len(points))
    seen = False
    step = float(points[1] - points[0]) if len(points) > 1 else 1.0
    for s in result.series:
        if not len(s.timestamps):
            continue
        pos = (s.timestamps - points[0]) / step
        idx = np.rint(pos).astype(int)
        ok = (np.abs(pos - idx) < 1e-6) & (idx >= 0) & (idx < len(points)) & np.isfinite(s.values)
        if ok.any():
            np.add.at(out, idx[ok], np.maximum(s.values[ok], 0.0))
            seen = True
    return np.rint(out), seen


def by_arm(ctx: EvalContext, render: Render, run: Callable[[str], QueryResult]) -> dict[str, QueryResult]:
    """Each arm's answer to `render(scope, grouping)`: one folded query split by the arms' label values when the
    scopes allow it, else `render(arm's scope, ())` per arm. Series of a folded answer that belong to neither
    arm (a combination of values no arm has) are dropped."""
    scopes = ctx.gate.scopes
    split = split_arms(scopes.canary, scopes.baseline)
    if split is None:
        return {arm: run(render(getattr(scopes, arm), ())) for arm in ARMS}
    both = run(render(split.scope, split.labels))
    picked: dict[str, list[Series]] = {arm: [] for arm in ARMS}
    for s in both.series:
        arm = split.arm_of(s.labels)
        if arm is not None:
            picked[arm].append(s)
    return {arm: replace(both, series=tuple(picked[arm])) for arm in ARMS}


def range_by_arm(ctx: EvalContext, render: Render) -> dict[str, QueryResult]:
    """`by_arm` for a range query over the window's step grid."""
    points = grid(ctx)
    start, end, step = float(points[0]), float(points[-1]), ctx.window.step
    return by_arm(ctx, render, lambda q: ctx.metrics.range(q, start=start, end=end, step=step))


def instant_by_arm(ctx: EvalContext, render: Render) -> dict[str, QueryResult]:
    """`by_arm` for an instant query at the window's end."""
    return by_arm(ctx, render, lambda q: ctx.metrics.instant(q, at=ctx.window.end))


def increase_render(selector: str, step: float, *, by: str = "", suffix: str = "") -> Render:
    """`sum by (by, grouping)(increase(selector{scope}[step]))` for `by_arm`."""
    return lambda scope, grouping: increase(
        selector, scope, step, by=",".join((by, *grouping)), suffix=suffix
    )


def increments(
    ctx: EvalContext, selector: str, *, suffix: str = ""
) -> dict[str, tuple[str, np.ndarray, bool]]:
    """Per arm: (query, per-step event counts of a counter selector on the grid, any data at all)."""
    points = grid(ctx)
    results = range_by_arm(ctx, increase_render(selector, ctx.window.step, suffix=suffix))
    out = {}
    for arm, result in results.items():
        values, seen = align(result, points)
        out[arm] = (result.query, values, seen)
    return out


def newest_samples(
    ctx: EvalContext, selector: str, *, suffix: str = ""
) -> dict[str, tuple[str, float | None]]:
    """Per arm: (query, unix time of the arm's newest sample of `selector` as of the window end; None when
    nothing is within the 5m lookback)."""
    results = instant_by_arm(
        ctx,
        lambda scope, grouping: aggregate(
            "max", f"timestamp({scoped(selector, scope, suffix=suffix)})", grouping
        ),
    )
    return {arm: (r.query, r.scalar()) for arm, r in results.items()}


def staleness_gap(ctx: EvalContext, selector: str, *, suffix: str = "") -> tuple[str | None, dict[str, str]]:
    """A reason when the canary's newest sample is stale while the baseline's is fresh (or both are stale)."""
    limit = ctx.gate.source.prometheus.max_staleness
    queries: dict[str, str] = {}
    ages: dict[str, float | None] = {}
    for arm, (q, newest) in newest_samples(ctx, selector, suffix=suffix).items():
        queries[f"{arm}_newest"] = q
        ages[arm] = None if newest is None else ctx.window.end - newest
    stale = {arm: age is None or age > limit for arm, age in ages.items()}
    if stale["canary"]:
        age = ages["canary"]
        when = "no sample within the 5m lookback" if age is None else f"its newest sample is {age:.0f}s old"
        other = "" if stale["baseline"] else f" while the baseline's is {ages['baseline']:.0f}s old"
        return f"canary stopped reporting {selector}: {when}{other} (limit {limit:g}s)", queries
    if stale["baseline"]:
        return f"baseline stopped reporting {selector}: nothing fresh to compare the canary with", queries
    return None, queries
