"""Ratio signals (bad / total counters), and the commerce count signals built the same way:
drift (placed but never recorded), duplicates (processed twice), retries (amplification)."""

from __future__ import annotations

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.counts import ArmCounts, count_outcome
from gatekeeper.signals.fetch import ARMS, Counter, align, counters, grid, staleness_gap
from gatekeeper.spec.outcome import SignalOutcome, Verdict
from gatekeeper.spec.signals import DriftSignal, DuplicateSignal, RatioSignal, RetrySignal

# kind -> (events selector attribute, exposure selector attribute, exposure unit, events = exposure - other?)
_FIELDS = {
    "ratio": ("bad", "total", "requests"),
    "duplicates": ("duplicates", "processed", "processings"),
    "retries": ("retries", "requests", "requests"),
    "drift": ("recorded", "placed", "orders"),
}


def measure(
    signal: RatioSignal | DriftSignal | DuplicateSignal | RetrySignal, ctx: EvalContext
) -> SignalOutcome:
    events_attr, exposure_attr, unit = _FIELDS[signal.kind]
    events_sel, exposure_sel = getattr(signal, events_attr), getattr(signal, exposure_attr)
    queries: dict[str, str] = {}
    arms: dict[str, ArmCounts | None] = {}
    notes: list[str] = []
    fetched = counters(ctx, {"events": Counter(events_sel), "exposure": Counter(exposure_sel)})
    events, exposure = fetched["events"], fetched["exposure"]
    points = grid(ctx)
    for arm in ARMS:
        ev, ev_seen = align(events[arm].series, points)
        ex, ex_seen = align(exposure[arm].series, points)
        queries[f"{arm}_{events_attr}"] = events[arm].query
        queries[f"{arm}_{exposure_attr}"] = exposure[arm].query
        notes += [f"{arm} {events_attr}: {n}" for n in events[arm].notes]
        notes += [f"{arm} {exposure_attr}: {n}" for n in exposure[arm].notes]
        if not ex_seen:
            arms[arm] = None
            continue
        if signal.kind == "drift":
            if not ev_seen:
                return _nodata(
                    signal,
                    queries,
                    f"{arm} has {exposure_sel} but no {events_sel}: the system of "
                    "record is not reporting, so drift cannot be measured",
                )
            ev = _leaks(placed=ex, recorded=ev)
        elif not ev_seen:
            notes.append(f"{arm}: no {events_sel} series, counted as zero events")
        arms[arm] = ArmCounts(timestamps=points, events=ev, exposure=ex)
    gap, _ = staleness_gap(ctx, exposure_sel, {a: (exposure[a].query, exposure[a].newest) for a in ARMS})
    if gap and arms["canary"] is not None and arms["baseline"] is not None:
        return _nodata(signal, queries, gap)
    cutoff = _complete_until([c[a].newest for c in (events, exposure) for a in ARMS])
    arms = {arm: _until(a, cutoff) for arm, a in arms.items()}
    return count_outcome(
        signal=signal,
        ctx=ctx,
        canary=arms["canary"],
        baseline=arms["baseline"],
        queries=queries,
        exposure_unit=unit,
        notes=notes,
    )


def _nodata(
    signal: RatioSignal | DriftSignal | DuplicateSignal | RetrySignal, queries: dict[str, str], reason: str
) -> SignalOutcome:
    return SignalOutcome.of(signal, Verdict.NODATA, reason, queries=queries)


def _leaks(*, placed: np.ndarray, recorded: np.ndarray) -> np.ndarray:
    """New leaks per step: growth of the running maximum of the backlog (placed minus recorded, cumulative).

    A system of record that lags and then catches up (recorded > placed in a later step) is not a leak; a
    backlog that never clears counts once, when it first appears; clamping each step to >= 0 instead would
    count every lag as a leak.
    """
    backlog = np.maximum(np.cumsum(placed - recorded), 0.0)
    return np.diff(np.maximum.accumulate(backlog), prepend=0.0)


def _complete_until(newest: list[float | None]) -> float | None:
    """The newest instant every input series has reached (from each input's newest sample per arm): steps after
    it are still being ingested, and two counters read mid-ingestion disagree (a storefront counter ahead of
    its system of record is not a leak)."""
    known = [t for t in newest if t is not None]
    return min(known) if known else None


def _until(arm: ArmCounts | None, cutoff: float | None) -> ArmCounts | None:
    if arm is None or cutoff is None:
        return arm
    keep = arm.timestamps <= cutoff + 1e-6
    return ArmCounts(timestamps=arm.timestamps[keep], events=arm.events[keep], exposure=arm.exposure[keep])
