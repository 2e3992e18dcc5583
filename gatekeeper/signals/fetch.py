"""Fetch per-step increments and freshness for one arm, aligned on the window's step grid."""

from __future__ import annotations

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.render import increase, scoped
from gatekeeper.sources.base import QueryResult


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


def increments(
    ctx: EvalContext, selector: str, arm: str, *, suffix: str = ""
) -> tuple[str, np.ndarray, bool]:
    """Per-step event counts of a counter selector for `arm` ('canary' or 'baseline')."""
    scope = getattr(ctx.gate.scopes, arm)
    query = increase(selector, scope, ctx.window.step, suffix=suffix)
    points = grid(ctx)
    result = ctx.metrics.range(query, start=float(points[0]), end=float(points[-1]), step=ctx.window.step)
    values, seen = align(result, points)
    return query, values, seen


def newest_sample(ctx: EvalContext, selector: str, arm: str, *, suffix: str = "") -> tuple[str, float | None]:
    """Unix time of the arm's newest sample of `selector` as of the window end (None: nothing in lookback)."""
    query = f"max(timestamp({scoped(selector, getattr(ctx.gate.scopes, arm), suffix=suffix)}))"
    return query, ctx.metrics.instant(query, at=ctx.window.end).scalar()


def staleness_gap(ctx: EvalContext, selector: str, *, suffix: str = "") -> tuple[str | None, dict[str, str]]:
    """A reason when the canary's newest sample is stale while the baseline's is fresh (or both are stale)."""
    limit = ctx.gate.source.prometheus.max_staleness
    queries: dict[str, str] = {}
    ages: dict[str, float | None] = {}
    for arm in ("canary", "baseline"):
        q, newest = newest_sample(ctx, selector, arm, suffix=suffix)
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
