"""Fetch per-step increments and freshness for both arms, aligned on the window's step grid.

Each fetch asks one folded query for both arms when the gate's scopes allow it (see `render.split_arms`), else
one query per arm; either way every arm's answer carries the exact query text that produced it, which is what
an outcome records as "the query behind it". A folded answer without a group for an arm is that arm's empty
answer: no data and stale data stay visible exactly as with separate queries.

`counters` asks every counter a signal needs, with each one's per-step increments and newest sample time, in a
single range query: parts joined by `or`, told apart by the `gatekeeper_part` label. A newest-sample part at
the grid's last point, the window end, is what an instant `max(timestamp(...))` at the window end returns, so
freshness costs no round-trip of its own, and a look of a ratio signal is one request instead of eight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.render import aggregate, increase, scoped, split_arms
from gatekeeper.sources.base import QueryResult, Series

ARMS = ("canary", "baseline")
PART = "gatekeeper_part"  # tells the parts of a combined query apart
NEWEST = ":newest"  # suffix of a newest-sample part's name

#: (scope, extra grouping labels) -> PromQL
Render = Callable[[dict[str, str], tuple[str, ...]], str]


def grid(ctx: EvalContext) -> np.ndarray:
    w = ctx.window
    n = max(round(w.length / w.step), 1)
    return w.end - w.step * np.arange(n - 1, -1, -1, dtype=float)


def align(series: Sequence[Series], points: np.ndarray) -> tuple[np.ndarray, bool]:
    """Sum series onto `points`; missing steps are 0. Returns (values, any data at all)."""
    matrix, seen = align_rows(series, [0] * len(series), points, rows=1)
    return matrix[0], bool(seen[0])


def align_rows(
    series: Sequence[Series],
    row_of: Sequence[int],
    points: np.ndarray,
    *,
    rows: int,
    round_each: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum each series `series[i]` onto row `row_of[i]` of a (rows, len(points)) grid in one vectorised pass;
    negative and non-finite values and points off the grid are dropped. Sums are rounded to whole events
    (`round_each`: each value before summing). Returns (matrix, per-row "any data at all")."""
    out = np.zeros((rows, len(points)))
    seen = np.zeros(rows, dtype=bool)
    lengths = [len(s.timestamps) for s in series]
    if not sum(lengths):
        return out, seen
    ts = np.concatenate([s.timestamps for s in series])
    values = np.concatenate([s.values for s in series])
    row = np.repeat(np.asarray(row_of, dtype=int), lengths)
    step = float(points[1] - points[0]) if len(points) > 1 else 1.0
    pos = (ts - points[0]) / step
    idx = np.rint(pos).astype(int)
    ok = (np.abs(pos - idx) < 1e-6) & (idx >= 0) & (idx < len(points)) & np.isfinite(values)
    kept = np.maximum(values[ok], 0.0)
    np.add.at(out, (row[ok], idx[ok]), np.rint(kept) if round_each else kept)
    seen[row[ok]] = True
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


@dataclass(frozen=True)
class Counter:
    """A counter to fetch: `sum by (by)(increase(selector<suffix>[step]))` per step, and the newest sample time
    of `selector<fresh_suffix>` (default: `suffix`) at the window end."""

    selector: str
    by: str = ""
    suffix: str = ""
    fresh_suffix: str | None = None


@dataclass(frozen=True)
class CounterData:
    """One arm's answer for one `Counter`: the query that produced it (shared by every counter of the fetch, and
    by both arms when folded), the increments' series, and the newest sample time (None: none in lookback)."""

    query: str
    series: tuple[Series, ...]
    newest: float | None


def counters_query(
    wanted: dict[str, Counter], scope: dict[str, str], step: float, grouping: Sequence[str] = ()
) -> str:
    """The PromQL behind `counters` for one scope (an arm's, or the folded one grouped by the arm labels): per
    counter an increments part and a newest-sample part, each tagged with its name, joined by `or`."""
    parts = []
    for name, c in wanted.items():
        inc = increase(c.selector, scope, step, by=",".join((c.by, *grouping)), suffix=c.suffix)
        fresh = c.suffix if c.fresh_suffix is None else c.fresh_suffix
        newest = aggregate("max", f"timestamp({scoped(c.selector, scope, suffix=fresh)})", grouping)
        parts += [_tagged(inc, name), _tagged(newest, f"{name}{NEWEST}")]
    return " or ".join(parts)


def counters(ctx: EvalContext, wanted: dict[str, Counter]) -> dict[str, dict[str, CounterData]]:
    """Per counter name, per arm: the counter's increments on the window's steps and its freshness, all from one
    range query (per arm, or folded over both)."""
    points = grid(ctx)
    start, end, step = float(points[0]), float(points[-1]), ctx.window.step
    results = by_arm(
        ctx,
        lambda scope, grouping: counters_query(wanted, scope, step, grouping),
        lambda q: ctx.metrics.range(q, start=start, end=end, step=step),
    )
    out: dict[str, dict[str, CounterData]] = {name: {} for name in wanted}
    for arm, result in results.items():
        parts: dict[str, list[Series]] = {}
        for s in result.series:
            parts.setdefault(s.labels.get(PART, ""), []).append(s)
        for name in wanted:
            newest = _value_at_end(parts.get(f"{name}{NEWEST}", []), end)
            out[name][arm] = CounterData(result.query, tuple(parts.get(name, [])), newest)
    return out


def _tagged(expr: str, part: str) -> str:
    return f'label_replace({expr}, "{PART}", "{part}", "", "")'


def _value_at_end(series: list[Series], end: float) -> float | None:
    """The largest value any of `series` has at `end`, the last point of the range (None: no value there)."""
    found = [float(s.values[-1]) for s in series if len(s.timestamps) and abs(s.timestamps[-1] - end) < 1e-6]
    return max(found) if found else None


def newest_samples(
    ctx: EvalContext, selector: str, *, suffix: str = ""
) -> dict[str, tuple[str, float | None]]:
    """Per arm: (query, unix time of the arm's newest sample of `selector` as of the window end; None when
    nothing is within the 5m lookback), from one instant query (per arm or folded)."""

    def render(scope: dict[str, str], grouping: tuple[str, ...]) -> str:
        return aggregate("max", f"timestamp({scoped(selector, scope, suffix=suffix)})", grouping)

    results = by_arm(ctx, render, lambda q: ctx.metrics.instant(q, at=ctx.window.end))
    return {arm: (r.query, r.scalar()) for arm, r in results.items()}


def staleness_gap(
    ctx: EvalContext, selector: str, newest: dict[str, tuple[str, float | None]]
) -> tuple[str | None, dict[str, str]]:
    """A reason when the canary's newest sample is stale while the baseline's is fresh (or both are stale).
    `newest`: per arm, the query and the newest sample time of `selector` at the window end."""
    limit = ctx.gate.source.prometheus.max_staleness
    queries: dict[str, str] = {}
    ages: dict[str, float | None] = {}
    for arm, (q, t) in newest.items():
        queries[f"{arm}_newest"] = q
        ages[arm] = None if t is None else ctx.window.end - t
    stale = {arm: age is None or age > limit for arm, age in ages.items()}
    if stale["canary"]:
        age = ages["canary"]
        when = "no sample within the 5m lookback" if age is None else f"its newest sample is {age:.0f}s old"
        other = "" if stale["baseline"] else f" while the baseline's is {ages['baseline']:.0f}s old"
        return f"canary stopped reporting {selector}: {when}{other} (limit {limit:g}s)", queries
    if stale["baseline"]:
        return f"baseline stopped reporting {selector}: nothing fresh to compare the canary with", queries
    return None, queries
