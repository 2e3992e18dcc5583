"""Observability health: a canary that stops emitting is blind, not healthy. Gaps give NODATA with the reason."""

from __future__ import annotations

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.fetch import by_arm, newest_samples
from gatekeeper.signals.render import aggregate, scoped
from gatekeeper.spec.evidence import HealthEvidence
from gatekeeper.spec.outcome import SignalOutcome, Verdict
from gatekeeper.spec.signals import HealthSignal


def measure(signal: HealthSignal, ctx: EvalContext) -> SignalOutcome:
    at = ctx.window.end
    queries: dict[str, str] = {}
    gaps: list[str] = []
    facts: dict[str, dict[str, object]] = {"canary": {}, "baseline": {}}
    for selector in signal.series:
        newest: dict[str, float | None] = {}
        for arm, (q, t) in newest_samples(ctx, selector).items():
            queries[f"{arm}:{selector}"] = q
            newest[arm] = t
            facts[arm][selector] = None if t is None else round(at - t, 1)
        c, b = newest["canary"], newest["baseline"]
        if c is None and b is not None:
            gaps.append(f"the baseline has {selector} and the canary does not")
        elif c is None:
            gaps.append(f"neither arm has {selector}")
        elif at - c > signal.max_staleness:
            gaps.append(f"canary's {selector} is stale ({at - c:.0f}s > {signal.max_staleness:g}s)")
        elif b is None or at - b > signal.max_staleness:
            gaps.append(f"baseline's {selector} is missing or stale")
    if signal.up:
        up_selector = signal.up
        results = by_arm(
            ctx,
            lambda scope, grouping: aggregate("min", scoped(up_selector, scope), grouping),
            lambda q: ctx.metrics.instant(q, at=at),
        )
        for arm, result in results.items():
            queries[f"{arm}:up"] = result.query
            up = result.scalar()
            facts[arm]["up"] = up
            if up is None:
                gaps.append(f"no {arm} scrape targets ({signal.up})")
            elif up < 1:
                gaps.append(f"a {arm} scrape target is down (up == 0)")
    verdict = Verdict.NODATA if gaps else Verdict.PASS
    reason = "; ".join(gaps) if gaps else f"all {len(signal.series)} required series fresh in both arms"
    return SignalOutcome.of(
        signal,
        verdict,
        reason,
        canary={"age_seconds": facts["canary"]},
        baseline={"age_seconds": facts["baseline"]},
        queries=queries,
        evidence=HealthEvidence(),
    )
