"""Kind -> evaluator. An unknown kind is rejected by the spec; a source failure becomes an ERROR outcome."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.render import RenderError
from gatekeeper.sources.base import QueryRejected, SourceError
from gatekeeper.spec.outcome import SignalOutcome, Verdict

_EVALUATORS = {
    "ratio": "gatekeeper.signals.ratio",
    "drift": "gatekeeper.signals.ratio",
    "duplicates": "gatekeeper.signals.ratio",
    "retries": "gatekeeper.signals.ratio",
    "latency": "gatekeeper.signals.latency",
    "threshold": "gatekeeper.signals.threshold",
    "health": "gatekeeper.signals.health",
    "invariant": "gatekeeper.signals.invariant",
}


def _evaluator(kind: str) -> Callable[[Any, EvalContext], SignalOutcome]:
    return importlib.import_module(_EVALUATORS[kind]).evaluate


def evaluate_signal(signal: Any, ctx: EvalContext) -> SignalOutcome:
    """Evaluate one signal; source errors and render errors become ERROR outcomes with the failing query."""
    try:
        return _evaluator(signal.kind)(signal, ctx)
    except SourceError as e:
        kind = "query rejected" if isinstance(e, QueryRejected) else "source unavailable"
        return SignalOutcome(
            name=signal.name,
            kind=signal.kind,
            verdict=Verdict.ERROR,
            reason=f"{kind}: {e}",
            queries={"failed": e.query} if e.query else {},
            critical=signal.critical,
            dry_run=signal.dry_run,
        )
    except RenderError as e:
        return SignalOutcome(
            name=signal.name,
            kind=signal.kind,
            verdict=Verdict.ERROR,
            reason=str(e),
            critical=signal.critical,
            dry_run=signal.dry_run,
        )


def render_queries(signal: Any, ctx: EvalContext) -> dict[str, str]:
    """The queries a signal would run (for lint and dry display) without running them: for count signals the
    same text `fetch.counters` sends, folded over both arms when the scopes allow it."""
    from gatekeeper.signals.fetch import ARMS, Counter, counters_query
    from gatekeeper.signals.render import fill, split_arms
    from gatekeeper.signals.series import _RATIO_FIELDS as _COUNT_FIELDS  # (events, exposure) per kind

    step = ctx.window.step
    scopes = ctx.gate.scopes
    split = split_arms(scopes.canary, scopes.baseline)

    def counted(arm: str, wanted: dict[str, Counter]) -> str:
        if split is not None:
            return counters_query(wanted, split.scope, step, split.labels)
        return counters_query(wanted, getattr(scopes, arm), step)

    out: dict[str, str] = {}
    for arm in ARMS:
        if signal.kind == "threshold":
            scope = getattr(scopes, arm)
            out[arm] = fill(signal.query, scope=scope, arm=arm, window=ctx.window.length, step=step)
        elif signal.kind == "latency":
            histogram = Counter(signal.histogram, by="le", suffix="_bucket", fresh_suffix="_count")
            out[arm] = counted(arm, {"buckets": histogram})
        elif signal.kind in _COUNT_FIELDS:
            events, exposure = (getattr(signal, f) for f in _COUNT_FIELDS[signal.kind])
            query = counted(arm, {"events": Counter(events), "exposure": Counter(exposure)})
            for attr in _COUNT_FIELDS[signal.kind]:
                out[f"{arm}_{attr}"] = query
    return out
