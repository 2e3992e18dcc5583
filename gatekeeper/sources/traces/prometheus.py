"""The intake replicas' counts, read back from Prometheus: the `TraceSource` of the controller in a cluster.

Each intake replica exports cumulative counters per rule (`Rule.key`) and version (`gatekeeper.sources.traces.
metrics`); Prometheus scrapes every replica. For a window this source asks one range query for the raw
counters of one rule and version at the window's step points (plus one point before the first step), and
takes per-series differences between points, a drop being a counter reset (a restarted replica counts from
zero again). That is exact: no `increase()` extrapolation, so the summed counts equal what the intakes counted.

Per step: checked traces and violations (the count test's exposure and events). For the window: spans the
intakes dropped for the version, plus the rule's incomplete traces (spans that did not all reach one intake:
lost roots, traces split across replicas), reported together as `dropped_spans` (each incomplete trace lost at
least one span), which the invariant signal turns into a visible gap; and the newest span of the version, for
the dark-canary check. Violating trace ids stay in the intakes' logs and `/metrics` only: `examples` is empty.

Counter increments carry the scrape time, not the span time: a trace is counted in the step in which an intake
finished judging it (its completion timeout after its last span), so live windows should end at least a scrape
interval plus the completion timeout before now (the gate's `source.prometheus.delay`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gatekeeper.sources.base import InvariantCounts, MetricsSource, Series
from gatekeeper.sources.traces.buckets import step_grid
from gatekeeper.sources.traces.metrics import PREFIX
from gatekeeper.sources.traces.rules import Rule

__all__ = ["PrometheusTraceSource", "counts_query"]

_PART = "gatekeeper_part"
_COUNTERS = {
    "checked": "invariant_checked_traces_total",
    "violations": "invariant_violations_total",
    "incomplete": "invariant_incomplete_traces_total",
}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def counts_query(rule: Rule, *, version: str, prefix: str = PREFIX) -> str:
    """One PromQL query for every counter one rule and version needs, parts told apart by `gatekeeper_part`."""
    v = _quote(version)
    parts = [
        f'label_replace({prefix}_{metric}{{rule="{rule.key}",version={v}}}, "{_PART}", "{part}", "", "")'
        for part, metric in _COUNTERS.items()
    ]
    parts.append(f'label_replace({prefix}_spans_dropped_total{{version={v}}}, "{_PART}", "dropped", "", "")')
    parts.append(
        f'label_replace(max({prefix}_newest_span_timestamp_seconds{{version={v}}}), "{_PART}", "newest", "", "")'
    )
    return " or ".join(parts)


class PrometheusTraceSource:
    """`TraceSource` over the intakes' counters in Prometheus (through the gate's own `MetricsSource`)."""

    def __init__(self, metrics: MetricsSource, *, prefix: str = PREFIX) -> None:
        self.metrics = metrics
        self.prefix = prefix

    def invariant_counts(
        self, signal: Any, *, arm: str, start: float, end: float, step: float
    ) -> InvariantCounts:
        rule = Rule.of(signal)
        points = step_grid(start, end, step)
        query = counts_query(rule, version=arm, prefix=self.prefix)
        result = self.metrics.range(query, start=float(points[0]) - step, end=end, step=step)
        every = np.concatenate(([points[0] - step], points))
        sums = {part: np.zeros(len(points)) for part in (*_COUNTERS, "dropped")}
        newest: float | None = None
        for series in result.series:
            part = series.labels.get(_PART, "")
            values = _on_points(series, every, step)
            if part == "newest":
                seen = values[~np.isnan(values)]
                newest = min(float(seen[-1]), end) if len(seen) else None
            elif part in sums:
                sums[part] += _increments(values)
        return InvariantCounts(
            timestamps=points,
            checked=np.rint(sums["checked"]).astype(np.int64),
            violations=np.rint(sums["violations"]).astype(np.int64),
            examples=(),
            dropped_spans=round(sums["dropped"].sum() + sums["incomplete"].sum()),
            newest_span=newest,
        )


def _on_points(series: Series, points: np.ndarray, step: float) -> np.ndarray:
    """The series' value at each point (NaN where it has none)."""
    out = np.full(len(points), np.nan)
    if not len(series.timestamps):
        return out
    idx = np.rint((series.timestamps - points[0]) / step).astype(np.int64)
    ok = (idx >= 0) & (idx < len(points))
    out[idx[ok]] = series.values[ok]
    return out


def _increments(values: np.ndarray) -> np.ndarray:
    """Per-interval increase of a cumulative counter sampled at n+1 points (n intervals). A counter first seen
    inside the window started from zero there; a value below the previous one is a reset (the replica
    restarted) and counts from zero; a gap keeps the last value."""
    out = np.zeros(len(values) - 1)
    last: float | None = None if np.isnan(values[0]) else float(values[0])
    for i in range(1, len(values)):
        v = values[i]
        if np.isnan(v):
            continue
        v = float(v)
        out[i - 1] = v if last is None or v < last else v - last
        last = v
    return out
