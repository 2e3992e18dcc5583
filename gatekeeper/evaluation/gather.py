"""Fetch the evidence of every signal of a gate, in the shape its scoring mode's judge takes.

- sequential and fixed (the default modes): each signal measures itself (`gatekeeper.signals.measure_signal`:
  its queries, its count test) into a `SignalOutcome`; signals run concurrently, sharing answers to the same
  query; the gate's side effects are counted beside them;
- `kayenta`: per-step canary and baseline values of every signal (`ArmSeries`, one range query per arm);
- `keptn`: one value per arm over the window for every signal (`KeptnValues`, one instant query per arm).

A source failure of one signal is that signal's problem (ERROR or NODATA with the reason), never the gate's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gatekeeper.judge.keptn import KeptnValues
from gatekeeper.signals import EvalContext, measure_signal
from gatekeeper.signals.series import UnsupportedSignal, step_series, window_values
from gatekeeper.signals.side_effects import count_side_effects
from gatekeeper.sources.base import SourceError
from gatekeeper.spec.measurements import ArmSeries
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.outcome import SignalOutcome

__all__ = ["kayenta_series", "keptn_values", "side_effects", "signal_outcomes"]

_POOL_SIZE = 32
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _signal_pool() -> ThreadPoolExecutor:
    """One process-wide pool for signal measurements: starting threads for every look cost ~10% of a look's
    CPU. Its tasks never wait for one another (a memoised query is run by the thread that asked first, which
    is running), so a saturated pool only queues, never deadlocks."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="signal")
        return _pool


def signal_outcomes(
    gate: GateSpec, *, context: Callable[[str], EvalContext], max_workers: int
) -> list[SignalOutcome]:
    """Every signal of `gate` measured in its context (`context(signal name)`), in the gate's order.

    Queries dominate: their round-trips overlap, at most `max_workers` signals at a time. The first group runs
    in the calling thread, the others in the shared pool."""
    n = len(gate.signals)

    def run(group: range) -> list[SignalOutcome]:
        return [measure_signal(gate.signals[i], context(gate.signals[i].name)) for i in group]

    workers = max(1, min(max_workers, n))
    groups = [range(k, n, workers) for k in range(workers)]
    futures = [_signal_pool().submit(run, g) for g in groups[1:]]
    found = [run(groups[0]), *(f.result() for f in futures)]
    by_index: dict[int, SignalOutcome] = {}
    for group, group_outcomes in zip(groups, found, strict=True):
        by_index.update(zip(group, group_outcomes, strict=True))
    return [by_index[i] for i in range(n)]


def side_effects(ctx: EvalContext) -> dict[str, Any]:
    """The gate's side effects under the canary (`count_side_effects`), or {"error": why} when unreadable."""
    if not ctx.gate.side_effects:
        return {}
    try:
        return count_side_effects(ctx)
    except SourceError as e:
        return {"error": str(e)}


def _waiting(signal: Any, ctx: EvalContext, text: str) -> str | None:
    return text.format(delay=signal.initial_delay) if ctx.stage_elapsed < signal.initial_delay else None


def kayenta_series(ctx: EvalContext) -> tuple[dict[str, ArmSeries | str], dict[str, str]]:
    """Per-step series of every signal (or the problem fetching them), and the signals still in their initial
    delay (signal name -> reason)."""
    series: dict[str, ArmSeries | str] = {}
    waiting: dict[str, str] = {}
    for s in ctx.gate.signals:
        why = _waiting(s, ctx, "in initial delay ({delay:g}s) of the stage")
        if why:
            waiting[s.name] = why
        try:
            series[s.name] = step_series(s, ctx)
        except (SourceError, UnsupportedSignal, ValueError) as e:
            series[s.name] = f"{type(e).__name__}: {e}"
    return series, waiting


def keptn_values(ctx: EvalContext) -> dict[str, KeptnValues]:
    """One value per arm of every signal over the window (or the problem fetching them)."""
    values: dict[str, KeptnValues] = {}
    for s in ctx.gate.signals:
        waiting = _waiting(s, ctx, "in initial delay ({delay:g}s)")
        try:
            v = window_values(s, ctx)
        except (SourceError, UnsupportedSignal, ValueError) as e:
            values[s.name] = KeptnValues(problem=f"{type(e).__name__}: {e}", queries={})
            continue
        values[s.name] = KeptnValues(
            canary=v.canary,
            baseline=v.baseline,
            queries=v.queries,
            problem=v.problem,
            waiting=waiting,
            same_query=v.same_query,
        )
    return values
