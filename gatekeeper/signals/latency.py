"""Latency from a Prometheus histogram, reduced to counts so the anytime-valid count test applies
(docs/statistics.md §2): requests slower than `slowerThan`, or, for a quantile objective, requests slower than
the baseline's quantile bucket bound (the canary's exceedance of the baseline's p-quantile)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.counts import ArmCounts, carried_extra, count_outcome
from gatekeeper.signals.fetch import Counter, align_rows, counters, grid, staleness_gap
from gatekeeper.sources.base import Series
from gatekeeper.spec.evidence import LatencyObjective
from gatekeeper.spec.outcome import SignalOutcome, Verdict
from gatekeeper.spec.signals import LatencySignal
from gatekeeper.stats import histogram


def measure(signal: LatencySignal, ctx: EvalContext) -> SignalOutcome:
    queries: dict[str, str] = {}
    buckets: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    histogram = Counter(signal.histogram, by="le", suffix="_bucket")
    fetched = counters(ctx, {"buckets": histogram})["buckets"]
    for arm, data in fetched.items():
        queries[f"{arm}_buckets"] = data.query
        buckets[arm] = _per_le(ctx, data.series)
    if buckets["canary"] is None or buckets["baseline"] is None:
        missing = "canary" if buckets["canary"] is None else "baseline"
        return _plain(
            signal, queries, Verdict.NODATA, f"no {missing} histogram {signal.histogram}_bucket in the window"
        )
    le_c, m_c = buckets["canary"]
    le_b, m_b = buckets["baseline"]
    if not np.array_equal(le_c, le_b):
        return _plain(
            signal,
            queries,
            Verdict.ERROR,
            "canary and baseline histograms have different bucket bounds: the versions changed buckets",
        )
    le = le_c
    total_c, total_b = m_c[-1], m_b[-1]  # +Inf bucket per step
    quantiles = {
        arm: _quantile(le, m[:, :].sum(axis=1), signal.quantile or 0.99)
        for arm, m in (("canary", m_c), ("baseline", m_b))
    }
    if signal.slower_than is not None:
        idx = _bound_index(le, signal.slower_than)
        if idx is None:
            finite = ", ".join(f"{x:g}" for x in le if math.isfinite(x))
            return _plain(
                signal,
                queries,
                Verdict.ERROR,
                f"slowerThan {signal.slower_than:g}s is not a bucket bound; bounds are: {finite}",
            )
        label = f"slower than {signal.slower_than:g}s"
    else:
        # The largest bucket bound below the baseline's quantile: the baseline then has at least (1 - q) of its
        # requests above it, so there are events to compare (the bound above would leave far fewer).
        # The bound chosen in an earlier stage stays: the carried e-process counts requests slower than it.
        q_base = quantiles["baseline"]
        kept = _bound_index(le, float(carried_extra(ctx, signal.name).get("bound_seconds", math.nan)))
        if kept is not None:
            idx = kept
        else:
            idx = int(np.searchsorted(le, q_base, side="left")) - 1 if q_base is not None else len(le) - 2
            idx = min(max(idx, 0), len(le) - 2)  # never the +Inf bucket: nothing is slower than +Inf
        quantile = signal.quantile if signal.quantile is not None else 0.99  # the spec sets one of the two
        label = f"slower than {le[idx]:g}s, the bucket bound below the baseline's p{quantile * 100:g}"
    gap, _ = staleness_gap(ctx, signal.histogram, {a: (d.query, d.newest) for a, d in fetched.items()})
    if gap:
        return _plain(signal, queries, Verdict.NODATA, gap)
    t = grid(ctx)
    canary = ArmCounts(timestamps=t, events=np.maximum(total_c - m_c[idx], 0), exposure=total_c)
    baseline = ArmCounts(timestamps=t, events=np.maximum(total_b - m_b[idx], 0), exposure=total_b)
    objective = LatencyObjective(
        objective=label,
        bound_seconds=float(le[idx]),
        quantile=signal.quantile,
        canary_quantile=quantiles["canary"],
        baseline_quantile=quantiles["baseline"],
    )
    out = count_outcome(
        signal=signal,
        ctx=ctx,
        canary=canary,
        baseline=baseline,
        queries=queries,
        latency=objective,
        carry_extra={"bound_seconds": float(le[idx])} if signal.quantile is not None else None,
    )
    if signal.quantile is not None and quantiles["canary"] is not None and quantiles["baseline"] is not None:
        q = f"p{signal.quantile * 100:g} canary {quantiles['canary']:.3g}s vs baseline {quantiles['baseline']:.3g}s; "
        return _replace_reason(out, q + out.reason)
    return out


def _per_le(ctx: EvalContext, series: tuple[Series, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """Cumulative bucket counts per step (rows: ascending `le`), or None without a +Inf bucket or any count."""
    bounds: list[float] = []
    kept: list[Series] = []
    for s in series:
        try:
            bound = float(s.labels.get("le", "nan").replace("+Inf", "inf"))
        except ValueError:
            continue
        if not math.isnan(bound):
            bounds.append(bound)
            kept.append(s)
    if math.inf not in bounds:
        return None
    le = np.array(sorted(set(bounds)))
    row = np.searchsorted(le, bounds)
    matrix, _ = align_rows(kept, row, grid(ctx), rows=len(le), round_each=True)
    if not matrix.any():
        return None
    matrix = np.maximum.accumulate(matrix, axis=0)  # cumulative buckets must not decrease (scrape skew)
    return le, matrix


def _bound_index(le: np.ndarray, seconds: float) -> int | None:
    hits = np.where(np.isclose(le, seconds, rtol=1e-9, atol=1e-12))[0]
    return int(hits[0]) if len(hits) else None


def _quantile(le: np.ndarray, cumulative: np.ndarray, q: float) -> float | None:
    return histogram.quantile_from_buckets(le=le, cumulative=cumulative, q=q)


def _plain(signal: LatencySignal, queries: dict[str, str], verdict: Verdict, reason: str) -> SignalOutcome:
    return SignalOutcome.of(signal, verdict, reason, queries=queries)


def _replace_reason(out: SignalOutcome, reason: str) -> SignalOutcome:
    return replace(out, reason=reason)
