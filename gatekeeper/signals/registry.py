"""Signal kind -> the module that measures it. An unknown kind is rejected by the spec; a source failure
becomes an ERROR outcome."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.render import RenderError
from gatekeeper.sources.base import IncompleteAnswer, QueryRejected, SourceError
from gatekeeper.spec.outcome import SignalOutcome, Verdict

#: signal kind -> the module that measures it (its `measure(signal, ctx)`); a new kind adds a line here
KIND_MODULES = {
    "ratio": "gatekeeper.signals.ratio",
    "drift": "gatekeeper.signals.ratio",
    "duplicates": "gatekeeper.signals.ratio",
    "retries": "gatekeeper.signals.ratio",
    "latency": "gatekeeper.signals.latency",
    "threshold": "gatekeeper.signals.threshold",
    "health": "gatekeeper.signals.health",
    "invariant": "gatekeeper.signals.invariant",
}


def _measurer(kind: str) -> Callable[[Any, EvalContext], SignalOutcome]:
    measure: Callable[[Any, EvalContext], SignalOutcome] = importlib.import_module(KIND_MODULES[kind]).measure
    return measure


def load_kinds() -> None:
    """Import every signal kind's module now (scipy.stats takes seconds), not during a gate's first look."""
    for module in sorted(set(KIND_MODULES.values())):
        importlib.import_module(module)


def measure_signal(signal: Any, ctx: EvalContext) -> SignalOutcome:
    """Measure one signal (its queries, its test) into an outcome; source errors and render errors become ERROR
    outcomes with the failing query, an answer the backend calls partial NODATA."""
    try:
        return _measurer(signal.kind)(signal, ctx)
    except IncompleteAnswer as e:  # the backend says data may be missing: missing evidence, never judged
        incomplete = {"incomplete": e.query} if e.query else {}
        return SignalOutcome.of(signal, Verdict.NODATA, f"incomplete answer: {e}", queries=incomplete)
    except SourceError as e:
        kind = "query rejected" if isinstance(e, QueryRejected) else "source unavailable"
        failed = {"failed": e.query} if e.query else {}
        return SignalOutcome.of(signal, Verdict.ERROR, f"{kind}: {e}", queries=failed)
    except RenderError as e:
        return SignalOutcome.of(signal, Verdict.ERROR, str(e))


def render_queries(signal: Any, ctx: EvalContext) -> dict[str, str]:
    """The queries a signal would run (for lint and dry display) without running them: for count signals the
    same text `fetch.counters` records, folded over both arms when the scopes allow it."""
    from gatekeeper.signals.fetch import ARMS, Counter, counter_queries
    from gatekeeper.signals.render import fill
    from gatekeeper.signals.series import COUNT_FIELDS

    out: dict[str, str] = {}
    if signal.kind == "threshold":
        for arm in ARMS:
            scope = getattr(ctx.gate.scopes, arm)
            out[arm] = fill(
                signal.query, scope=scope, arm=arm, window=ctx.window.length, step=ctx.window.step
            )
    elif signal.kind == "latency":
        texts = counter_queries(ctx, {"buckets": Counter(signal.histogram, by="le", suffix="_bucket")})
        out = {arm: texts["buckets"][arm] for arm in ARMS}
    elif signal.kind in COUNT_FIELDS:
        attrs = COUNT_FIELDS[signal.kind]
        texts = counter_queries(ctx, {attr: Counter(getattr(signal, attr)) for attr in attrs})
        out = {f"{arm}_{attr}": texts[attr][arm] for arm in ARMS for attr in attrs}
    return out
