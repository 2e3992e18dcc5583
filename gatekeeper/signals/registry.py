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
    """The queries a signal would run (for lint and dry display) without running them."""
    from gatekeeper.signals.render import fill, increase

    step = ctx.window.step
    out: dict[str, str] = {}
    for arm in ("canary", "baseline"):
        scope = getattr(ctx.gate.scopes, arm)
        if signal.kind == "threshold":
            out[arm] = fill(signal.query, scope=scope, arm=arm, window=ctx.window.length, step=step)
        elif signal.kind == "latency":
            out[arm] = increase(signal.histogram, scope, step, by="le", suffix="_bucket")
        elif signal.kind in ("ratio", "drift", "duplicates", "retries"):
            for attr in (
                "bad",
                "total",
                "placed",
                "recorded",
                "duplicates",
                "processed",
                "retries",
                "requests",
            ):
                if hasattr(signal, attr):
                    out[f"{arm}_{attr}"] = increase(getattr(signal, attr), scope, step)
    return out
