"""State created under the canary (orders, inventory writes, external callbacks): what a revert cannot undo."""

from __future__ import annotations

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.render import scoped
from gatekeeper.spec.durations import format_duration


def count_side_effects(ctx: EvalContext, *, since: float | None = None) -> dict[str, dict[str, object]]:
    """Canary side effects per selector since `since` (default: the stage start or window start).

    Returns {selector: {"count": int | None, "query": str}}; None means the series was absent (unknown, not zero).
    """
    start = since if since is not None else (ctx.stage_started or ctx.window.start)
    span = max(ctx.window.end - start, ctx.window.step)
    out: dict[str, dict[str, object]] = {}
    for selector in ctx.gate.side_effects:
        q = f"sum(increase({scoped(selector, ctx.gate.scopes.canary)}[{format_duration(span)}]))"
        value = ctx.metrics.instant(q, at=ctx.window.end).scalar()
        out[selector] = {"count": None if value is None else round(value), "query": q}
    return out
