"""Ratio signals (bad / total counters), and the commerce count signals built the same way:
drift (placed but never recorded), duplicates (processed twice), retries (amplification)."""

from __future__ import annotations

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.counts import ArmCounts, count_outcome
from gatekeeper.signals.fetch import grid, increments, staleness_gap
from gatekeeper.spec.outcome import SignalOutcome, Verdict
from gatekeeper.spec.signals import DriftSignal, DuplicateSignal, RatioSignal, RetrySignal

# kind -> (events selector attribute, exposure selector attribute, exposure unit, events = exposure - other?)
_FIELDS = {
    "ratio": ("bad", "total", "requests"),
    "duplicates": ("duplicates", "processed", "processings"),
    "retries": ("retries", "requests", "requests"),
    "drift": ("recorded", "placed", "orders"),
}


def evaluate(
    signal: RatioSignal | DriftSignal | DuplicateSignal | RetrySignal, ctx: EvalContext
) -> SignalOutcome:
    events_attr, exposure_attr, unit = _FIELDS[signal.kind]
    events_sel, exposure_sel = getattr(signal, events_attr), getattr(signal, exposure_attr)
    queries: dict[str, str] = {}
    arms: dict[str, ArmCounts | None] = {}
    notes: list[str] = []
    for arm in ("canary", "baseline"):
        q_ev, ev, ev_seen = increments(ctx, events_sel, arm)
        q_ex, ex, ex_seen = increments(ctx, exposure_sel, arm)
        queries[f"{arm}_{events_attr}"], queries[f"{arm}_{exposure_attr}"] = q_ev, q_ex
        if not ex_seen:
            arms[arm] = None
            continue
        if signal.kind == "drift":
            ev = _leaks(placed=ex, recorded=ev) if ev_seen else np.full_like(ex, np.nan)
            if not ev_seen:
                return _nodata(
                    signal,
                    queries,
                    f"{arm} has {exposure_sel} but no {events_sel}: the system of "
                    "record is not reporting, so drift cannot be measured",
                )
        elif not ev_seen:
            notes.append(f"{arm}: no {events_sel} series, counted as zero events")
        arms[arm] = ArmCounts(timestamps=grid(ctx), events=ev, exposure=ex)
    gap, fresh_q = staleness_gap(ctx, exposure_sel)
    queries.update(fresh_q)
    if gap and arms["canary"] is not None and arms["baseline"] is not None:
        return _nodata(signal, queries, gap)
    extra = {"notes": notes} if notes else None
    return count_outcome(
        signal=signal,
        ctx=ctx,
        canary=arms["canary"],
        baseline=arms["baseline"],
        queries=queries,
        exposure_unit=unit,
        extra=extra,
    )


def _nodata(signal, queries: dict[str, str], reason: str) -> SignalOutcome:  # type: ignore[no-untyped-def]
    return SignalOutcome(
        name=signal.name,
        kind=signal.kind,
        verdict=Verdict.NODATA,
        reason=reason,
        queries=queries,
        critical=signal.critical,
        dry_run=signal.dry_run,
    )


def _leaks(*, placed: np.ndarray, recorded: np.ndarray) -> np.ndarray:
    """New leaks per step: growth of the running maximum of the backlog (placed minus recorded, cumulative).

    A system of record that lags and then catches up (recorded > placed in a later step) is not a leak; a
    backlog that never clears counts once, when it first appears; clamping each step to >= 0 instead would
    count every lag as a leak.
    """
    backlog = np.maximum(np.cumsum(placed - recorded), 0.0)
    return np.diff(np.maximum.accumulate(backlog), prepend=0.0)
