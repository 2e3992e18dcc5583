"""Fetch per-step counts and freshness for both arms, aligned on the window's step grid.

Each fetch asks one folded query for both arms when the gate's scopes allow it (see `render.split_arms`), else
one query per arm; either way every arm's answer carries the exact query text that produced it, which is what
an outcome records as "the query behind it". A folded answer without a group for an arm is that arm's empty
answer: no data and stale data stay visible exactly as with separate queries.

`counters` counts events exactly: it reads each counter's raw samples (`selector[range]`) and differences them
itself. Prometheus' `increase()`/`rate()` extrapolate each window to its full length (with 30-s scrapes and
60-s steps every value is about twice the events of half the step), which doubles the variance the tests see
and makes an exact test anti-conservative; raw differences are the counter's true increments for any scrape
interval and step. The newest raw sample is the arm's freshness, so it costs no query of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import promql_parser

from gatekeeper.signals import promql
from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.render import aggregate, scoped, split_arms
from gatekeeper.sources.base import QueryResult, Series
from gatekeeper.spec.durations import format_duration

ARMS = ("canary", "baseline")
LOOKBACK = 300.0  # Prometheus' default lookback delta: a series with no sample this long before is new

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
    row_of: Sequence[int] | np.ndarray,
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
    """A counter to fetch: its exact increments per step (summed per `by` label, e.g. `le`), and its newest
    sample time. `suffix` extends the metric name (`_bucket`)."""

    selector: str
    by: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class CounterData:
    """One arm's answer for one `Counter`: the query that produced it (shared by both arms when folded), the
    per-step increments (one series per `by` value, on the window's grid), the newest sample time (None: no
    sample in the fetched range), and how the counting went (`notes`: series that started inside the
    window, counter resets)."""

    query: str
    series: tuple[Series, ...]
    newest: float | None
    notes: tuple[str, ...] = ()


def raw_query(counter: Counter, scope: dict[str, str], length: float) -> str:
    """The raw samples of every series of `counter` in `scope` over the last `length` seconds."""
    return f"{scoped(counter.selector, scope, suffix=counter.suffix)}[{format_duration(length)}]"


def fetch_length(ctx: EvalContext) -> float:
    """How far back `counters` reads raw samples: the window plus Prometheus' lookback, so every series has
    its last sample before the window as the base of its first increment."""
    points = grid(ctx)
    return float(points[-1] - points[0]) + ctx.window.step + LOOKBACK


def counter_queries(ctx: EvalContext, wanted: dict[str, Counter]) -> dict[str, dict[str, str]]:
    """Per counter, per arm: the query text `counters` records for it (without running anything)."""
    length = fetch_length(ctx)
    scopes = ctx.gate.scopes
    split = split_arms(scopes.canary, scopes.baseline)
    out: dict[str, dict[str, str]] = {}
    for name in wanted:
        out[name] = {
            arm: raw_query(wanted[name], split.scope if split else getattr(scopes, arm), length)
            for arm in ARMS
        }
    return out


def _raw_render(counter: Counter, length: float) -> Render:
    """Renders `counter`'s raw-sample query over `length` seconds for a scope (no extra grouping)."""

    def render(scope: dict[str, str], grouping: tuple[str, ...]) -> str:
        return raw_query(counter, scope, length)

    return render


def counters(ctx: EvalContext, wanted: dict[str, Counter]) -> dict[str, dict[str, CounterData]]:
    """Per counter name, per arm: the counter's exact increments on the window's steps and its newest sample.

    One instant query per distinct selector returns the raw samples (folded over both arms when the scopes
    allow it); a counter whose selector only adds matchers to another's on the same metric (`x{code=~"5.."}`
    beside `x`) is picked from that answer instead of asked again. Increments are differences of consecutive
    raw samples with counter resets handled, never Prometheus' extrapolated `increase()`; see `exact_steps`.
    """
    points = grid(ctx)
    length = fetch_length(ctx)
    plan = _plan(wanted)
    answers: dict[str, dict[str, QueryResult]] = {}
    for name, (source, _) in plan.items():
        if source == name:
            answers[name] = by_arm(
                ctx,
                _raw_render(wanted[name], length),
                lambda q: ctx.metrics.instant(q, at=float(points[-1])),
            )
    texts = counter_queries(ctx, wanted)
    out: dict[str, dict[str, CounterData]] = {name: {} for name in wanted}
    for name, (source, extra) in plan.items():
        for arm, result in answers[source].items():
            raw = tuple(s for s in result.series if _matches(s.labels, extra))
            # A counter read from another's answer records its own query: the PromQL that returns exactly the
            # series it was counted from, so the evidence can be reproduced by pasting it into Prometheus.
            query = result.query if source == name else texts[name][arm]
            out[name][arm] = _counted(raw, wanted[name], points, ctx.window.step, query)
    return out


def _counted(
    raw: tuple[Series, ...], counter: Counter, points: np.ndarray, step: float, query: str
) -> CounterData:
    steps, newest, started, resets = exact_steps(raw, points=points, step=step)
    by = [label for label in counter.by.split(",") if label]
    grouped: dict[tuple[str, ...], np.ndarray] = {}
    for s, inc in zip(raw, steps, strict=True):
        key = tuple(s.labels.get(label, "") for label in by)
        grouped[key] = grouped[key] + inc if key in grouped else inc.copy()
    series = tuple(
        Series(labels=dict(zip(by, key, strict=True)), timestamps=points, values=values)
        for key, values in grouped.items()
    )
    notes = []
    if started:
        notes.append(f"{started} series started inside the window: their first samples count from zero")
    if resets:
        notes.append(f"{resets} counter resets: counted from zero after each")
    return CounterData(query, series, newest, tuple(notes))


def exact_steps(
    raw: Sequence[Series], *, points: np.ndarray, step: float
) -> tuple[list[np.ndarray], float | None, int, int]:
    """Each series' exact increments per step of the grid `points` (step k covers (points[k] - step,
    points[k]]), from its raw samples.

    An increment is the difference of two consecutive samples, booked in the step of the later one; a sample
    below its predecessor is a counter reset (the process restarted) and counts from zero. The base of a
    series' first increment is its last sample at or before the window start; a series without one started
    inside the window and counts from zero (client libraries create counters at zero, often at the first
    event: Prometheus' `increase()` misses those first events). A missed scrape moves increments into the
    step of the next sample, never loses them. Returns (increments per series, the newest sample time,
    series started inside the window, resets).
    """
    start = float(points[0]) - step
    n, m = len(points), len(raw)
    if not m:
        return [], None, 0, 0
    # every series at once: one pass of array operations over all samples, each tagged with its series
    lengths = [len(s.timestamps) for s in raw]
    sid = np.repeat(np.arange(m), lengths)
    ts = np.concatenate([s.timestamps for s in raw]).astype(float, copy=False)
    vs = np.concatenate([s.values for s in raw]).astype(float, copy=False)
    ok = np.isfinite(vs) & (ts <= points[-1] + 1e-6)
    sid, ts, vs = sid[ok], ts[ok], vs[ok]
    inc = np.zeros((m, n))
    if not len(ts):
        return list(inc), None, 0, 0
    newest = float(ts.max())
    before = ts <= start + 1e-6
    # the base of each series: its last sample at or before the window start (samples are in time order)
    at = np.flatnonzero(before)
    last = at[np.r_[sid[at][1:] != sid[at][:-1], True]] if len(at) else at
    base = np.zeros(m)
    base[sid[last]] = vs[last]
    has_base = np.zeros(m, dtype=bool)
    has_base[sid[last]] = True
    has_samples = np.zeros(m, dtype=bool)
    has_samples[sid] = True
    started = int((has_samples & ~has_base).sum())
    sid, ts, vs = sid[~before], ts[~before], vs[~before]
    if len(ts):
        prev = np.empty_like(vs)
        prev[1:] = vs[:-1]
        first = np.r_[True, sid[1:] != sid[:-1]]
        prev[first] = base[sid[first]]
        delta = vs - prev
        dropped = delta < 0
        resets = int(dropped.sum())
        delta = np.where(dropped, vs, delta)
        k = np.ceil((ts - start) / step - 1e-9).astype(int) - 1
        keep = (k >= 0) & (k < n)
        np.add.at(inc, (sid[keep], k[keep]), delta[keep])
    else:
        resets = 0
    return list(np.rint(inc)), newest, started, resets


def _plan(wanted: dict[str, Counter]) -> dict[str, tuple[str, tuple[tuple[str, str, str], ...]]]:
    """Per counter: (the counter whose answer it is read from, the extra matchers that pick its series)."""
    parsed = {name: _parse_selector(c) for name, c in wanted.items()}
    plan: dict[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {}
    for name, mine in parsed.items():
        plan[name] = (name, ())
        if mine is None:
            continue
        for other, theirs in parsed.items():
            if other == name or theirs is None or plan.get(other, (other,))[0] != other:
                continue
            if wanted[other].suffix == wanted[name].suffix and mine[0] == theirs[0] and theirs[1] < mine[1]:
                extra = tuple(sorted(mine[1] - theirs[1]))
                if all(_usable(m) for m in extra):
                    plan[name] = (other, extra)
                    break
    return plan


def _parse_selector(c: Counter) -> tuple[str, frozenset[tuple[str, str, str]]] | None:
    try:
        expr = promql.parse(c.selector)
    except Exception:  # the query is rendered and reported as it is; only the shortcut is skipped
        return None
    if not isinstance(expr, promql_parser.VectorSelector) or not expr.name:
        return None
    ops = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
    found = set()
    for m in expr.matchers.matchers:
        op = ops.get(str(m.op).rsplit(".", 1)[-1])
        if op is None:
            return None
        found.add((m.name, op, m.value))
    return expr.name, frozenset(found)


def _usable(matcher: tuple[str, str, str]) -> bool:
    if matcher[1] in ("=~", "!~"):
        try:
            re.compile(matcher[2])
        except re.error:
            return False
    return True


def _matches(labels: dict[str, str], extra: tuple[tuple[str, str, str], ...]) -> bool:
    """Prometheus label matching (regexes fully anchored; a missing label is the empty string)."""
    for name, op, value in extra:
        have = labels.get(name, "")
        if (op == "=" and have != value) or (op == "!=" and have == value):
            return False
        if op in ("=~", "!~") and (re.fullmatch(value, have) is None) == (op == "=~"):
            return False
    return True


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
