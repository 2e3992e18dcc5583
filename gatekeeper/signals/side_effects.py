"""State created under the canary (orders, inventory writes, external callbacks): what a revert cannot undo.

Counted exactly, like every count signal: the raw samples of each counter, differenced with resets handled
(`fetch.exact_steps`), never Prometheus' extrapolated `increase()`, so "300 orders" means 300 orders.
"""

from __future__ import annotations

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.fetch import LOOKBACK, Counter, exact_steps, raw_query


def count_side_effects(ctx: EvalContext, *, since: float | None = None) -> dict[str, dict[str, object]]:
    """Canary side effects per selector since `since` (default: the stage start or window start).

    Returns {selector: {"count": int | None, "query": str}}; None means the series was absent (unknown, not zero).
    """
    start = since if since is not None else (ctx.stage_started or ctx.window.start)
    end = ctx.window.end
    span = max(end - start, ctx.window.step)
    out: dict[str, dict[str, object]] = {}
    for selector in ctx.gate.side_effects:
        q = raw_query(Counter(selector), ctx.gate.scopes.canary, span + LOOKBACK)
        raw = ctx.metrics.instant(q, at=end).series
        if not raw:
            out[selector] = {"count": None, "query": q}
            continue
        steps, _, _, _ = exact_steps(raw, points=np.array([end]), step=span)
        out[selector] = {"count": int(sum(float(s[0]) for s in steps)), "query": q}
    return out
