"""Trace invariants: traces violating a rule (payment captured, order never created) per version, as a count
signal (events = violating traces, exposure = traces the rule applied to) fed to the shared count test.

Gaps are NODATA with the gap named, never a pass: no trace source, an arm without checked traces, spans
dropped in the window (the counts would be biased), or a canary whose spans stopped while the baseline's go on.
A FAIL names example trace IDs so the on-call can open the traces.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.counts import ArmCounts, count_outcome
from gatekeeper.sources.base import InvariantCounts
from gatekeeper.spec.evidence import TraceEvidence
from gatekeeper.spec.models import TraceSettings
from gatekeeper.spec.outcome import SignalOutcome, Verdict
from gatekeeper.spec.signals import InvariantSignal

_SHOWN_EXAMPLES = 3


def measure(signal: InvariantSignal, ctx: EvalContext) -> SignalOutcome:
    settings = ctx.gate.source.traces or TraceSettings()
    values = {"canary": settings.canary_value, "baseline": settings.baseline_value}
    queries = {arm: _describe(signal, settings.version_attribute, v) for arm, v in values.items()}
    if ctx.traces is None:
        return _nodata(
            signal, queries, "no trace source is configured: the OTLP intake is not connected to the gate"
        )
    w = ctx.window
    got: dict[str, InvariantCounts] = {
        arm: ctx.traces.invariant_counts(signal, arm=value, start=w.start, end=w.end, step=w.step)
        for arm, value in values.items()
    }
    facts = {arm: _facts(c) for arm, c in got.items()}
    gap = _gap(got, settings=settings, ctx=ctx)
    if gap:
        return _nodata(signal, queries, gap, facts=facts)
    arms = {
        arm: ArmCounts(
            timestamps=c.timestamps, events=c.violations.astype(float), exposure=c.checked.astype(float)
        )
        for arm, c in got.items()
    }
    examples = list(got["canary"].examples)
    outcome = count_outcome(
        signal=signal,
        ctx=ctx,
        canary=arms["canary"],
        baseline=arms["baseline"],
        queries=queries,
        exposure_unit="traces",
        traces=TraceEvidence(
            examples=tuple(examples),
            baseline_examples=tuple(got["baseline"].examples),
            dropped_spans={arm: c.dropped_spans for arm, c in got.items()},
            newest_span={arm: c.newest_span for arm, c in got.items()},
        ),
    )
    if outcome.verdict == Verdict.FAIL and examples:
        shown = ", ".join(examples[:_SHOWN_EXAMPLES])
        more = f" and {len(examples) - _SHOWN_EXAMPLES} more" if len(examples) > _SHOWN_EXAMPLES else ""
        outcome = dataclasses.replace(
            outcome, reason=f"{outcome.reason}; example canary traces: {shown}{more}"
        )
    return outcome


def _gap(got: dict[str, InvariantCounts], *, settings: TraceSettings, ctx: EvalContext) -> str | None:
    canary, baseline = got["canary"], got["baseline"]
    dropped = {arm: c.dropped_spans for arm, c in got.items() if c.dropped_spans}
    if dropped:
        lost = " and ".join(f"{n} {arm}" for arm, n in dropped.items())
        return (
            f"{lost} spans were dropped or lost in the window (intake caps, late spans, traces whose root never "
            "arrived): trace counts would be "
            "biased, so the rule is not judged"
        )
    lag = max(2 * ctx.window.step, settings.completion_timeout)
    if baseline.newest_span is not None and (
        canary.newest_span is None or baseline.newest_span - canary.newest_span > lag
    ):
        since = (
            "never sent a span"
            if canary.newest_span is None
            else (
                f"stopped sending spans {baseline.newest_span - canary.newest_span:.0f}s before the baseline's newest"
            )
        )
        who = f"{settings.version_attribute}={settings.canary_value}"
        return f"the canary ({who}) {since} while the baseline continues: its traces are dark, not healthy"
    for arm, c in got.items():
        if int(np.sum(c.checked)) == 0:
            value = getattr(settings, f"{arm}_value")
            return (
                f"no {arm} traces ({settings.version_attribute}={value}) the rule applied to in the window "
                "(none rooted at the root span with the 'when' span, or none complete yet)"
            )
    return None


def _facts(c: InvariantCounts) -> dict[str, object]:
    return {
        "traces": int(np.sum(c.checked)),
        "violations": int(np.sum(c.violations)),
        "dropped_spans": c.dropped_spans,
        "newest_span": c.newest_span,
    }


def _describe(signal: InvariantSignal, attribute: str, value: str) -> str:
    return (
        f"traces {attribute}={value} rooted at {signal.root}: {signal.when.span}[{signal.when.status}] "
        f"requires {signal.require.span}[{signal.require.status}] within {signal.within:g}s"
    )


def _nodata(
    signal: InvariantSignal,
    queries: dict[str, str],
    reason: str,
    facts: dict[str, dict[str, object]] | None = None,
) -> SignalOutcome:
    return SignalOutcome.of(
        signal,
        Verdict.NODATA,
        reason,
        canary=(facts or {}).get("canary", {}),
        baseline=(facts or {}).get("baseline", {}),
        queries=queries,
    )
