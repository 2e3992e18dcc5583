"""The count-test core shared by every count signal: ratio, drift, duplicates, retries, latency, trace invariants.

Per step k the canary has `events` c_k out of `exposure` n^c_k and the baseline b_k of n^b_k. The test is on
the rate ratio r = canary rate / baseline rate, with one tolerated ratio r0 = 1 + tolerance:

- FAIL when the harm e-process against r <= r0 has reached 1/alpha at any interval of the rollout so far;
- PASS when the safety e-process against r >= r0 is at 1/alpha (the confidence sequence's upper bound is below
  r0) and the stage has its minimum samples and duration;
- with no bad event in either arm over the whole rollout, the ratio is not identified at all: PASS only once
  the canary's requests would have shown a bad event had its rate been the signal's `detectableRate` or more,
  else INCONCLUSIVE (silence is not evidence of health);
- INCONCLUSIVE otherwise, with how many more canary requests the bound needs at current traffic;
- NODATA without exposure in an arm, ERROR when the counts cannot be right (more bad events than exposure).

Sequential evidence continues across the stages of a rollout: a look starts from the signal's `carry` of the
previous stage (`EvalContext.carried`), so the whole rollout spends alpha once. `test: fixed` (or `mode: fixed`)
runs the exact conditional binomial test once, at the stage's planned end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.steps import step_series
from gatekeeper.spec.evidence import (
    ArmPair,
    CountEvidence,
    FixedTest,
    LatencyObjective,
    RolloutEvidence,
    SequentialTest,
    TraceEvidence,
)
from gatekeeper.spec.outcome import Effect, SignalOutcome, Verdict
from gatekeeper.spec.signals import Direction, TestMethod
from gatekeeper.stats import planning, proportions, sequential
from gatekeeper.stats.errors import StatsInputError

CARRY_VERSION = 1
_PATH_POINTS = 200  # e-value path points kept in the evidence (the newest)
# kinds whose events are a subset of their exposure (a retry count per request may exceed 1)
_SUBSET_KINDS = frozenset({"ratio", "latency", "duplicates", "drift", "invariant"})


@dataclass(frozen=True)
class ArmCounts:
    """Aligned per-step arrays for one arm."""

    timestamps: np.ndarray
    events: np.ndarray
    exposure: np.ndarray

    @property
    def total_events(self) -> int:
        return int(self.events.sum())

    @property
    def total_exposure(self) -> int:
        return int(self.exposure.sum())

    def summary(self, *, unit: str) -> dict[str, Any]:
        rate = self.total_events / self.total_exposure if self.total_exposure else None
        return {"events": self.total_events, unit: self.total_exposure, "rate": rate}

    def until(self, t: float) -> ArmCounts:
        keep = self.timestamps <= t + 1e-6
        return ArmCounts(self.timestamps[keep], self.events[keep], self.exposure[keep])


@dataclass(frozen=True)
class Carried:
    """A signal's evidence from the rollout's earlier stages: one e-process state per tested direction and the
    exposure and events behind them."""

    states: dict[str, sequential.RatioState]
    canary_exposure: int = 0
    baseline_exposure: int = 0
    stages: int = 0
    extra: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CARRY_VERSION,
            "states": {d: s.to_dict() for d, s in self.states.items()},
            "canaryExposure": self.canary_exposure,
            "baselineExposure": self.baseline_exposure,
            "stages": self.stages,
            **({"extra": dict(self.extra)} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Carried:
        if data.get("version") != CARRY_VERSION:
            raise ValueError(f"carried evidence version {data.get('version')!r} is not {CARRY_VERSION}")
        return cls(
            states={d: sequential.RatioState.from_dict(s) for d, s in data["states"].items()},
            canary_exposure=int(data.get("canaryExposure", 0)),
            baseline_exposure=int(data.get("baselineExposure", 0)),
            stages=int(data.get("stages", 0)),
            extra=data.get("extra"),
        )


def carried_extra(ctx: EvalContext, name: str) -> Mapping[str, Any]:
    """What a signal stored beside its carried evidence (e.g. the latency bound it chose), or {}."""
    data = ctx.carried.get(name) or {}
    extra = data.get("extra") if isinstance(data, Mapping) else None
    return extra if isinstance(extra, Mapping) else {}


class _Out:
    """Builds the signal's outcome and its `CountEvidence`; every verdict goes through here."""

    def __init__(
        self,
        signal: Any,
        ctx: EvalContext,
        canary: ArmCounts | None,
        baseline: ArmCounts | None,
        queries: dict[str, str],
        unit: str,
        facts: CountEvidence,
    ) -> None:
        self.signal, self.ctx, self.canary, self.baseline = signal, ctx, canary, baseline
        self.queries, self.unit, self.facts = queries, unit, facts
        self.carry: dict[str, Any] | None = None

    def note(self, text: str) -> None:
        self.facts = replace(self.facts, notes=(*self.facts.notes, text))

    def __call__(
        self,
        verdict: Verdict,
        reason: str,
        effect: Effect | None = None,
        *,
        test: SequentialTest | FixedTest | None = None,
        samples: ArmPair | None = None,
        events: ArmPair | None = None,
    ) -> SignalOutcome:
        c, b, st = self.canary, self.baseline, self.ctx.stage
        minimums = None  # smoke stages may advance on an inconclusive look once these are met
        if c is not None:
            minimums = bool(c.total_exposure >= st.min_samples and self.ctx.stage_elapsed >= st.min_duration)
        series = None
        if c is not None and b is not None and np.array_equal(c.timestamps, b.timestamps):
            series = step_series(
                timestamps=c.timestamps,
                canary=(c.events, c.exposure),
                baseline=(b.events, b.exposure),
                unit=self.unit,
            )
        evidence = replace(
            self.facts, test=test, samples=samples, events=events, minimums=minimums, series=series
        )
        return SignalOutcome.of(
            self.signal,
            verdict,
            reason,
            canary=c.summary(unit=self.unit) if c else {},
            baseline=b.summary(unit=self.unit) if b else {},
            effect=effect,
            queries=self.queries,
            evidence=evidence,
            carry=self.carry,
        )


def count_outcome(
    *,
    signal: Any,
    ctx: EvalContext,
    canary: ArmCounts | None,
    baseline: ArmCounts | None,
    queries: dict[str, str],
    exposure_unit: str = "requests",
    notes: Sequence[str] = (),
    latency: LatencyObjective | None = None,
    traces: TraceEvidence | None = None,
    carry_extra: Mapping[str, Any] | None = None,
) -> SignalOutcome:
    """Judge one count signal. `signal` is any spec count signal (name, direction, tolerance, test, ...).
    `notes`, `latency` and `traces` are the kind's own facts for the evidence; `carry_extra` is stored beside
    the carried evidence for the next stage (see `carried_extra`)."""
    facts = CountEvidence(notes=tuple(notes), latency=latency, traces=traces)
    out = _Out(signal, ctx, canary, baseline, queries, exposure_unit, facts)
    if canary is None or canary.total_exposure == 0:
        return out(
            Verdict.NODATA, f"no canary {exposure_unit} in the window: the canary is not seen, not healthy"
        )
    if baseline is None or baseline.total_exposure == 0:
        return out(
            Verdict.NODATA, f"no baseline {exposure_unit} in the window: nothing to compare the canary with"
        )
    impossible = _impossible(signal, canary, baseline, exposure_unit, queries)
    if impossible:
        return out(Verdict.ERROR, impossible)
    canary, baseline, merged = merge_orphans(canary, baseline)
    if merged:
        out.note(
            f"{merged} steps had bad events before their {exposure_unit} were scraped: counted with the next step"
        )
    out.canary, out.baseline = canary, baseline
    if ctx.stage_elapsed <= 0:
        return out(
            Verdict.INCONCLUSIVE,
            "waiting for the stage's first evidence (looks trail now by the settle delay)",
        )
    if ctx.stage_elapsed < signal.initial_delay:
        return out(Verdict.INCONCLUSIVE, f"in initial delay ({signal.initial_delay:g}s) of the stage")
    method = TestMethod.FIXED if ctx.gate.mode == "fixed" else getattr(signal, "test", TestMethod.SEQUENTIAL)
    try:
        if method == TestMethod.FIXED:
            return _fixed(out, canary, baseline)
        return _sequential(out, canary, baseline, carry_extra)
    except StatsInputError as e:
        return out(Verdict.ERROR, f"the counts cannot be tested: {e}")


# -- sequential -------------------------------------------------------------------------------------------------
def _directions(signal: Any) -> list[Direction]:
    if signal.direction == Direction.EITHER:
        return [Direction.INCREASE, Direction.DECREASE]
    return [signal.direction]


def _carried(out: _Out, directions: list[Direction]) -> Carried | None:
    data = out.ctx.carried.get(out.signal.name)
    if not data:
        return None
    try:
        found = Carried.from_dict(data)
    except (ValueError, KeyError, TypeError) as e:
        out.note(f"the carried evidence of earlier stages could not be read ({e}): this stage starts afresh")
        return None
    alpha = out.ctx.alpha / len(directions)
    wanted = {d.value for d in directions}
    same = set(found.states) == wanted and all(
        (s.alpha, s.margin) == (alpha, out.signal.tolerance) for s in found.states.values()
    )
    if not same:
        out.note(
            "the signal's test changed since the earlier stages (alpha, tolerance or direction): this stage starts afresh"
        )
        return None
    return found


def _sequential(
    out: _Out, canary: ArmCounts, baseline: ArmCounts, carry_extra: Mapping[str, Any] | None
) -> SignalOutcome:
    signal, ctx = out.signal, out.ctx
    directions = _directions(signal)
    alpha = ctx.alpha / len(directions)
    before = _carried(out, directions)
    results: dict[str, sequential.RatioSequentialResult] = {}
    for d in directions:
        a, b = (canary, baseline) if d != Direction.DECREASE else (baseline, canary)
        both = (a.exposure > 0) & (b.exposure > 0)
        results[d.value] = sequential.ratio_eprocess(
            canary_bad=a.events[both],
            baseline_bad=b.events[both],
            canary_share=a.exposure[both] / (a.exposure[both] + b.exposure[both]),
            alpha=alpha,
            margin=signal.tolerance,
            start=before.states.get(d.value) if before else None,
        )
    c_exposure = canary.total_exposure + (before.canary_exposure if before else 0)
    b_exposure = baseline.total_exposure + (before.baseline_exposure if before else 0)
    out.carry = Carried(
        states={d: r.state for d, r in results.items()},
        canary_exposure=c_exposure,
        baseline_exposure=b_exposure,
        stages=(before.stages if before else 0) + 1,
        extra=carry_extra,
    ).to_dict()
    limit = 1.0 + signal.tolerance
    failing = [d for d, r in results.items() if r.crossed]
    shown_dir = failing[0] if failing else max(results, key=lambda d: results[d].log_e)
    shown = results[shown_dir]
    lower, upper = _canary_over_baseline(shown, Direction(shown_dir))
    estimate = _estimate(canary, baseline)
    effect = Effect(measure="rate ratio", estimate=estimate, lower=lower, upper=upper, limit=limit)
    rollout = None
    if before is not None:
        rollout = RolloutEvidence(
            stages=before.stages + 1,
            samples=ArmPair(c_exposure, b_exposure),
            events=ArmPair(shown.canary_bad, shown.baseline_bad)
            if shown_dir != "decrease"
            else ArmPair(shown.baseline_bad, shown.canary_bad),
        )
    test = SequentialTest(
        e_value=float(shown.e_value),
        max_e_value=float(shown.max_e_value),
        safety_e_value=float(shown.safety_e_value),
        threshold=shown.threshold,
        path=tuple(float(x) for x in np.asarray(shown.path)[-_PATH_POINTS:]),
        path_t=tuple(_path_times(canary, baseline, len(shown.path))),
        rollout=rollout,
    )
    samples = ArmPair(canary.total_exposure, baseline.total_exposure)
    events = ArmPair(canary.total_events, baseline.total_events)

    def say(verdict: Verdict, reason: str, test: SequentialTest = test) -> SignalOutcome:
        return out(verdict, reason, effect, test=test, samples=samples, events=events)

    ratio = f"{estimate:.2f}x" if estimate is not None and math.isfinite(estimate) else "n/a"
    if failing:
        reason = (
            f"canary {_rate(canary)} vs baseline {_rate(baseline)}: rate ratio {ratio} "
            f"[{_fmt(lower)}, {_fmt(upper)}] exceeds the tolerated {limit:.2f}x "
            f"(e-value reached {shown.max_e_value:.3g} >= {shown.threshold:.3g})"
        )
        return say(Verdict.FAIL, reason)
    need_samples = ctx.stage.min_samples - canary.total_exposure
    need_time = ctx.stage.min_duration - ctx.stage_elapsed
    minimums = need_samples <= 0 and need_time <= 0
    pace = _pace(canary, ctx)
    if shown.events == 0:
        return _silence(out, c_exposure, b_exposure, alpha, minimums, pace, test, say)
    bounded = all(r.bounded for r in results.values())
    if bounded and minimums:
        return say(Verdict.PASS, f"rate ratio {ratio}, upper bound {_fmt(upper)} below {limit:.2f}x")
    waits = _stage_waits(need_samples, need_time, out.unit)
    if not bounded:
        more = _more_needed(canary, baseline, c_exposure, limit=limit, alpha=alpha)
        test = replace(test, more_needed=more)
        waits.append(
            f"the upper bound {_fmt(upper)} is not yet below {limit:.2f}x" + _needs(more, pace, out.unit)
        )
    return say(Verdict.INCONCLUSIVE, "not decided yet: " + "; ".join(waits), test)


def _silence(
    out: _Out,
    c_exposure: int,
    b_exposure: int,
    alpha: float,
    minimums: bool,
    pace: float | None,
    test: SequentialTest,
    say: Callable[[Verdict, str, SequentialTest], SignalOutcome],
) -> SignalOutcome:
    """No bad event in either arm over the rollout: only the canary's absolute rate can be bounded."""
    kind, unit = out.signal.kind, out.unit
    seen = f"no {kind} events in {c_exposure} canary and {b_exposure} baseline {unit}"
    rate = getattr(out.signal, "detectable_rate", None)
    if rate is None:
        return say(
            Verdict.INCONCLUSIVE,
            f"{seen}: zero events bound no ratio, so silence is not evidence of health; set detectableRate "
            "(the smallest bad-event rate that must not pass unseen) to pass on silence",
            test,
        )
    need = planning.silence_requests(detectable_rate=rate, alpha=alpha)
    more = max(need - c_exposure, 0)
    test = replace(test, more_needed=more, silence_requests=need)
    if more == 0 and minimums:
        return say(
            Verdict.PASS,
            f"{seen}: a bad-event rate of {rate:g} or more would have shown one (P <= {alpha:.3g})",
            test,
        )
    waits = _stage_waits(
        out.ctx.stage.min_samples - (out.canary.total_exposure if out.canary else 0),
        out.ctx.stage.min_duration - out.ctx.stage_elapsed,
        unit,
    )
    if more:
        waits.append(f"to rule out a rate of {rate:g} or more" + _needs(more, pace, unit))
    return say(Verdict.INCONCLUSIVE, f"{seen} yet; " + "; ".join(waits), test)


# -- fixed horizon ------------------------------------------------------------------------------------------
def _fixed(out: _Out, canary: ArmCounts, baseline: ArmCounts) -> SignalOutcome:
    """The exact conditional binomial test, once: on the evidence up to the stage's planned end."""
    ctx, signal = out.ctx, out.signal
    started = ctx.stage_started if ctx.stage_started is not None else ctx.window.start
    planned_end = started + ctx.stage.min_duration
    if ctx.window.end < planned_end:
        return out(
            Verdict.INCONCLUSIVE,
            f"the fixed-horizon test runs once, at the stage's planned end (in {planned_end - ctx.window.end:.0f}s)",
            test=FixedTest(),
        )
    c, b = canary.until(planned_end), baseline.until(planned_end)
    directions = _directions(signal)
    alpha = ctx.alpha / len(directions)
    limit = 1.0 + signal.tolerance
    samples = ArmPair(c.total_exposure, b.total_exposure)
    events = ArmPair(c.total_events, b.total_events)
    test = FixedTest(threshold=alpha, planned_end=planned_end)
    if c.total_exposure == 0 or b.total_exposure == 0:
        return out(
            Verdict.NODATA,
            "no traffic in an arm before the stage's planned end",
            test=test,
            samples=samples,
            events=events,
        )
    tests = {}
    for d in directions:
        x, y = (c, b) if d != Direction.DECREASE else (b, c)
        tests[d] = proportions.conditional_binomial_test(
            canary_bad=x.total_events,
            canary_total=x.total_exposure,
            baseline_bad=y.total_events,
            baseline_total=y.total_exposure,
            margin=signal.tolerance,
            confidence=1.0 - 2.0 * alpha,
        )
    worst_dir = min(tests, key=lambda d: tests[d].p_value)
    t = tests[worst_dir]
    lower: float | None = t.ratio_lower
    upper: float | None = t.ratio_upper
    if worst_dir == Direction.DECREASE:
        lower, upper = _inv(upper), _inv(lower)
    effect = Effect(measure="rate ratio", estimate=_estimate(c, b), lower=lower, upper=upper, limit=limit)
    test = replace(test, p_value=float(t.p_value))

    def say(verdict: Verdict, reason: str) -> SignalOutcome:
        return out(verdict, reason, effect, test=test, samples=samples, events=events)

    if t.p_value < alpha:
        return say(
            Verdict.FAIL,
            f"at the stage's planned end: canary {_rate(c)} vs baseline {_rate(b)} exceeds the tolerated "
            f"{limit:.2f}x (p = {t.p_value:.3g} < {alpha:.3g})",
        )
    enough = c.total_exposure >= ctx.stage.min_samples
    if c.total_events + b.total_events == 0:
        rate = getattr(signal, "detectable_rate", None)
        if rate is not None and enough and (1 - min(rate, 1.0)) ** c.total_exposure <= alpha:
            return say(
                Verdict.PASS,
                f"no {signal.kind} events by the planned end; a rate of {rate:g} would have shown",
            )
        return say(
            Verdict.INCONCLUSIVE,
            f"no {signal.kind} events in either arm by the planned end: zero events bound no ratio",
        )
    bounded = all(tests[d].ratio_upper < limit for d in directions)
    if bounded and enough:
        return say(
            Verdict.PASS,
            f"at the stage's planned end the rate ratio is below {limit:.2f}x (upper {_fmt(upper)})",
        )
    return say(
        Verdict.INCONCLUSIVE,
        f"the fixed-horizon test at the stage's planned end did not bound the ratio below {limit:.2f}x "
        f"(upper {_fmt(upper)}); the stage's deadline decides",
    )


# -- helpers ----------------------------------------------------------------------------------------------
def _impossible(
    signal: Any, canary: ArmCounts, baseline: ArmCounts, unit: str, queries: dict[str, str]
) -> str | None:
    """More bad events than exposure in an arm: the two counters do not count the same things."""
    if signal.kind not in _SUBSET_KINDS:
        return None
    for arm, counts in (("canary", canary), ("baseline", baseline)):
        if counts.total_events > counts.total_exposure:
            shown = "; ".join(f"{k}: {q}" for k, q in queries.items() if k.startswith(arm))
            return (
                f"the {arm} has {counts.total_events} bad events but only {counts.total_exposure} {unit}: the "
                f"events must be a subset of the exposure (check the selectors: {shown})"
            )
    return None


def merge_orphans(canary: ArmCounts, baseline: ArmCounts) -> tuple[ArmCounts, ArmCounts, int]:
    """Steps where an arm has bad events but no exposure (its counters were scraped at different times) are
    merged into the next step that has exposure for both arms' events (the last such step when none follows),
    so no event is dropped. Returns the arms and the number of steps merged away."""
    orphan = ((canary.events > 0) & (canary.exposure == 0)) | (
        (baseline.events > 0) & (baseline.exposure == 0)
    )
    if not orphan.any():
        return canary, baseline, 0
    rows = np.vstack([canary.events, canary.exposure, baseline.events, baseline.exposure])
    groups: list[np.ndarray] = []
    stamps: list[float] = []
    pending = np.zeros(4)
    for k in range(rows.shape[1]):
        pending = pending + rows[:, k]
        ok = (pending[0] == 0 or pending[1] > 0) and (pending[2] == 0 or pending[3] > 0)
        if ok:
            groups.append(pending)
            stamps.append(float(canary.timestamps[k]))
            pending = np.zeros(4)
    if pending.any():
        if groups:
            groups[-1] = groups[-1] + pending
        else:
            groups.append(pending)
            stamps.append(float(canary.timestamps[-1]))
    m = np.array(groups).T
    t = np.array(stamps)
    merged = rows.shape[1] - m.shape[1]
    return ArmCounts(t, m[0], m[1]), ArmCounts(t, m[2], m[3]), merged


def _path_times(canary: ArmCounts, baseline: ArmCounts, n: int) -> list[float]:
    """The step time of each e-value on the path: one per step where both arms had exposure (the newest)."""
    both = (canary.exposure > 0) & (baseline.exposure > 0)
    t = canary.timestamps[both] if len(both) == len(canary.timestamps) else canary.timestamps
    if len(t) != n:
        return []
    return [float(x) for x in t[-_PATH_POINTS:]]


def _canary_over_baseline(
    r: sequential.RatioSequentialResult, direction: Direction
) -> tuple[float | None, float | None]:
    """Bounds as canary / baseline, also when the test ran the other way round."""
    if direction == Direction.DECREASE:
        return _inv(r.ratio_upper), _inv(r.ratio_lower)
    return r.ratio_lower, r.ratio_upper


def _stage_waits(need_samples: float, need_time: float, unit: str) -> list[str]:
    waits = []
    if need_samples > 0:
        waits.append(f"{need_samples:.0f} more canary {unit} for the stage minimum")
    if need_time > 0:
        waits.append(f"{need_time:.0f}s more for the stage's minimum duration")
    return waits


def _pace(canary: ArmCounts, ctx: EvalContext) -> float | None:
    """Canary exposure per second over the window (None without time or traffic)."""
    span = ctx.window.length
    return canary.total_exposure / span if span > 0 and canary.total_exposure > 0 else None


def _needs(more: int | None, pace: float | None, unit: str) -> str:
    """' (needs ~N more canary requests, ~T at current traffic)', the one phrase every count signal uses."""
    if more is None:
        return ""
    when = f", ~{_duration(more / pace)} at current traffic" if pace else ""
    return f" (needs ~{more:,} more canary {unit}{when})"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def _estimate(canary: ArmCounts, baseline: ArmCounts) -> float | None:
    cr = canary.total_events / canary.total_exposure
    br = baseline.total_events / baseline.total_exposure
    if br == 0:
        return None if cr == 0 else float("inf")
    return cr / br


def _more_needed(
    canary: ArmCounts, baseline: ArmCounts, c_exposure: int, *, limit: float, alpha: float
) -> int | None:
    """Approximate canary requests still needed for the upper bound to fall below the limit if the arms are
    equal (the same mixture as the test; `planning.requests_needed`), counted over the whole rollout."""
    base = baseline.total_events / baseline.total_exposure
    share = canary.total_exposure / (canary.total_exposure + baseline.total_exposure)
    if base <= 0 or not 0 < share < 1:
        return None
    n = planning.requests_needed(baseline_rate=base, canary_share=share, limit=limit, alpha=alpha)
    return None if n is None else max(int(n) - c_exposure, 0)


def _inv(x: float | None) -> float | None:
    if x is None:
        return None
    return float("inf") if x == 0 else 1.0 / x


def _rate(arm: ArmCounts) -> str:
    return f"{arm.total_events}/{arm.total_exposure} ({100 * arm.total_events / arm.total_exposure:.2f}%)"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else ("inf" if x == float("inf") else f"{x:.2f}")


__all__ = ["ArmCounts", "Carried", "carried_extra", "count_outcome", "merge_orphans"]
