"""Evaluate a gate over a window: every signal concurrently, then aggregate. Same code for every caller."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gatekeeper.judge.aggregate import Judgement, aggregate
from gatekeeper.signals import EvalContext, Window, evaluate_signal
from gatekeeper.signals.side_effects import count_side_effects
from gatekeeper.sources.base import MetricsSource, SourceError, TraceSource
from gatekeeper.sources.cache import MemoSource
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.outcome import SignalOutcome

_POOL_SIZE = 32
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _signal_pool() -> ThreadPoolExecutor:
    """One process-wide pool for signal evaluations: starting threads for every look cost ~10% of a look's
    CPU. Its tasks never wait for one another (a memoised query is run by the thread that asked first, which
    is running), so a saturated pool only queues, never deadlocks."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="signal")
        return _pool


def signal_alphas(gate: GateSpec) -> dict[str, float]:
    """Bonferroni split of the gate's alpha by signal weight over voting signals (dry-run ones get a share too,
    computed as if they voted, so promoting one later does not change its numbers)."""
    voting = sum(s.weight for s in gate.signals if not s.dry_run)
    return {s.name: gate.alpha * s.weight / voting for s in gate.signals}


def evaluate_gate(
    gate: GateSpec,
    *,
    metrics: MetricsSource,
    window: Window,
    stage: int = 0,
    stage_started: float | None = None,
    traces: TraceSource | None = None,
    max_workers: int = 8,
    carried: Mapping[str, Mapping[str, Any]] | None = None,
) -> Judgement:
    """Every signal of `gate` over `window` at stage index `stage`. `carried`: per signal, the sequential
    evidence of the rollout's earlier stages (`GateStatus.carried_signals()`), which the tests continue."""
    if not 0 <= stage < len(gate.stages):
        raise ValueError(f"stage {stage} does not exist: the gate has stages 0..{len(gate.stages) - 1}")
    if gate.mode in ("kayenta", "keptn"):  # score-based modes for teams migrating from those tools
        mode = importlib.import_module(f"gatekeeper.judge.{gate.mode}")
        return mode.evaluate_mode(
            gate, metrics=metrics, window=window, stage=stage, stage_started=stage_started
        )
    alphas = signal_alphas(gate)
    st = gate.stages[stage]
    metrics = MemoSource(metrics)  # signals share queries; each distinct one runs once per evaluation

    def ctx_for(name: str) -> EvalContext:
        return EvalContext(
            gate=gate,
            metrics=metrics,
            window=window,
            stage=st,
            alpha=alphas[name],
            traces=traces,
            stage_started=stage_started,
            carried=carried or {},
        )

    def run(group: range) -> list[SignalOutcome]:
        return [evaluate_signal(gate.signals[i], ctx_for(gate.signals[i].name)) for i in group]

    # Queries dominate: overlap their round-trips, at most `max_workers` signals at a time. The first group runs
    # in the calling thread, the others in the shared pool.
    n = len(gate.signals)
    workers = max(1, min(max_workers, n))
    groups = [range(k, n, workers) for k in range(workers)]
    futures = [_signal_pool().submit(run, g) for g in groups[1:]]
    found = [run(groups[0]), *(f.result() for f in futures)]
    outcomes: list[SignalOutcome] = [None] * n  # type: ignore[list-item]
    for group, group_outcomes in zip(groups, found, strict=True):
        for i, outcome in zip(group, group_outcomes, strict=True):
            outcomes[i] = outcome
    side_effects: dict = {}
    if gate.side_effects:
        try:
            side_effects = count_side_effects(ctx_for(gate.signals[0].name))
        except SourceError as e:
            side_effects = {"error": str(e)}
    return aggregate(
        outcomes,
        gate=gate.name,
        window={"start": window.start, "end": window.end, "step": window.step},
        stage=stage,
        weight=st.weight,
        mode=gate.mode,
        side_effects=side_effects,
        owners=tuple(gate.owners),
    )
