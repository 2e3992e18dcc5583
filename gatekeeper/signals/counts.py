"""The count-test core shared by every count signal: ratio, drift, duplicates, retries, trace invariants.

Per step k the canary has `events` c_k out of `exposure` n^c_k and the baseline b_k of n^b_k. The test is on
the rate ratio r = canary rate / baseline rate (STATISTICS.md §2): FAIL when the one-sided harm e-value
against r <= 1 + tolerance reaches 1/alpha; PASS when the confidence bound on r lies below 1 + tolerance and
the stage has its minimum samples and duration; INCONCLUSIVE otherwise. No exposure in an arm is NODATA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gatekeeper.signals.context import EvalContext
from gatekeeper.spec.outcome import Effect, SignalOutcome, Verdict
from gatekeeper.spec.signals import Direction, TestMethod
from gatekeeper.stats import planning, proportions, sequential


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


def count_outcome(
    *,
    signal: Any,
    ctx: EvalContext,
    canary: ArmCounts | None,
    baseline: ArmCounts | None,
    queries: dict[str, str],
    exposure_unit: str = "requests",
    extra: dict[str, Any] | None = None,
) -> SignalOutcome:
    """Judge one count signal. `signal` is any spec signal (name, direction, tolerance, critical, test…)."""

    def out(verdict: Verdict, reason: str, effect: Effect | None = None, **evidence: Any) -> SignalOutcome:
        if canary is not None:  # smoke stages may advance on an inconclusive look once these are met
            evidence["minimums_met"] = bool(
                canary.total_exposure >= ctx.stage.min_samples and ctx.stage_elapsed >= ctx.stage.min_duration
            )
        return SignalOutcome(
            name=signal.name,
            kind=signal.kind,
            verdict=verdict,
            reason=reason,
            canary=canary.summary(unit=exposure_unit) if canary else {},
            baseline=baseline.summary(unit=exposure_unit) if baseline else {},
            effect=effect,
            queries=queries,
            evidence={**(extra or {}), **evidence},
            critical=signal.critical,
            dry_run=signal.dry_run,
        )

    if canary is None or canary.total_exposure == 0:
        return out(
            Verdict.NODATA, f"no canary {exposure_unit} in the window: the canary is not seen, not healthy"
        )
    if baseline is None or baseline.total_exposure == 0:
        return out(
            Verdict.NODATA, f"no baseline {exposure_unit} in the window: nothing to compare the canary with"
        )
    if ctx.stage_elapsed <= 0:
        return out(
            Verdict.INCONCLUSIVE,
            "waiting for the stage's first evidence (looks trail now by the settle delay)",
        )
    if ctx.stage_elapsed < signal.initial_delay:
        return out(Verdict.INCONCLUSIVE, f"in initial delay ({signal.initial_delay:g}s) of the stage")

    need_samples = ctx.stage.min_samples - canary.total_exposure
    need_time = ctx.stage.min_duration - ctx.stage_elapsed
    if canary.total_events == 0 and baseline.total_events == 0:
        # Traffic flowed in both arms and nothing bad happened in either: evidence of health, not its absence.
        if need_samples <= 0 and need_time <= 0:
            return out(
                Verdict.PASS,
                f"no {signal.kind} events in {canary.total_exposure} canary and "
                f"{baseline.total_exposure} baseline {exposure_unit}",
            )
        return out(
            Verdict.INCONCLUSIVE,
            f"no events yet; the stage needs {max(need_samples, 0)} more canary "
            f"{exposure_unit} and {max(need_time, 0):.0f}s more",
        )
    method = getattr(signal, "test", TestMethod.SEQUENTIAL)
    limit = 1.0 + signal.tolerance
    directions = (
        [Direction.INCREASE, Direction.DECREASE]
        if signal.direction == Direction.EITHER
        else [signal.direction]
    )
    alpha = ctx.alpha / len(directions)
    results = [_test(canary, baseline, d, alpha=alpha, limit=limit, method=method) for d in directions]
    worst = max(results, key=lambda r: r["harm"])
    effect = Effect(
        measure="rate ratio",
        estimate=worst["estimate"],
        lower=worst["lower"],
        upper=worst["upper"],
        limit=limit,
    )
    keys = ("e_value", "max_e_value", "threshold", "p_value", "method", "path")
    evidence = {k: worst[k] for k in keys if k in worst}
    evidence["samples"] = {"canary": canary.total_exposure, "baseline": baseline.total_exposure}
    evidence["events"] = {"canary": canary.total_events, "baseline": baseline.total_events}
    pct = f"{(worst['estimate'] or 0):.2f}x" if worst["estimate"] is not None else "n/a"
    if worst["fail"]:
        reason = (
            f"canary {_rate(canary)} vs baseline {_rate(baseline)}: rate ratio {pct} "
            f"[{_fmt(worst['lower'])}, {_fmt(worst['upper'])}] exceeds the tolerated {limit:.2f}x"
        )
        return out(Verdict.FAIL, reason + _how(worst), effect, **evidence)
    bounded = all(r["pass"] for r in results)
    if bounded and need_samples <= 0 and need_time <= 0:
        return out(
            Verdict.PASS,
            f"rate ratio {pct}, upper bound {_fmt(worst['upper'])} below {limit:.2f}x",
            effect,
            **evidence,
        )
    waits = []
    if need_samples > 0:
        waits.append(f"{need_samples} more canary {exposure_unit} for the stage minimum")
    if need_time > 0:
        waits.append(f"{need_time:.0f}s more for the stage's minimum duration")
    if not bounded:
        more = worst.get("more_needed")
        waits.append(
            f"the upper bound {_fmt(worst['upper'])} is not yet below {limit:.2f}x"
            + (f" (~{more} more canary {exposure_unit} at current rates)" if more else "")
        )
    return out(Verdict.INCONCLUSIVE, "not decided yet: " + "; ".join(waits), effect, **evidence)


def _test(
    canary: ArmCounts,
    baseline: ArmCounts,
    direction: Direction,
    *,
    alpha: float,
    limit: float,
    method: TestMethod,
) -> dict[str, Any]:
    a, b = (canary, baseline) if direction != Direction.DECREASE else (baseline, canary)
    both = (a.exposure > 0) & (b.exposure > 0)
    c, bb = a.events[both], b.events[both]
    share = a.exposure[both] / (a.exposure[both] + b.exposure[both])
    if method == TestMethod.SEQUENTIAL:
        res = sequential.ratio_eprocess(
            canary_bad=c, baseline_bad=bb, canary_share=share, alpha=alpha, margin=limit - 1.0
        )
        lower, upper = res.ratio_lower, res.ratio_upper
        if direction == Direction.DECREASE:  # report canary/baseline even when testing the other way round
            lower, upper = _inv(upper), _inv(lower)
        return {
            "method": "sequential",
            "e_value": float(res.e_value),
            "max_e_value": float(res.max_e_value),
            "threshold": 1.0 / alpha,
            "fail": bool(res.max_e_value >= 1.0 / alpha),
            "pass": bool(res.ratio_upper < limit),
            "harm": float(res.log_e),
            "estimate": _est(canary, baseline),
            "lower": lower,
            "upper": upper,
            "path": [float(x) for x in np.asarray(res.path)[-200:]],
            "more_needed": _more_needed(canary, baseline, limit, alpha),
        }
    t = proportions.conditional_binomial_test(
        canary_bad=int(c.sum()),
        canary_total=int(a.exposure[both].sum()),
        baseline_bad=int(bb.sum()),
        baseline_total=int(b.exposure[both].sum()),
        margin=limit - 1.0,
    )
    lower, upper = t.ratio_lower, t.ratio_upper
    if direction == Direction.DECREASE:
        lower, upper = _inv(upper), _inv(lower)
    return {
        "method": "fixed",
        "p_value": float(t.p_value),
        "threshold": alpha,
        "fail": bool(t.p_value < alpha),
        "pass": bool(t.ratio_upper < limit),
        "harm": -float(t.p_value),
        "estimate": _est(canary, baseline),
        "lower": lower,
        "upper": upper,
    }


def _est(canary: ArmCounts, baseline: ArmCounts) -> float | None:
    cr = canary.total_events / canary.total_exposure
    br = baseline.total_events / baseline.total_exposure
    if br == 0:
        return None if cr == 0 else float("inf")
    return cr / br


def _more_needed(canary: ArmCounts, baseline: ArmCounts, limit: float, alpha: float) -> int | None:
    """Approximate canary requests still needed for the bound to fall below the limit if the arms are equal."""
    base = baseline.total_events / baseline.total_exposure
    share = canary.total_exposure / (canary.total_exposure + baseline.total_exposure)
    if base <= 0 or not 0 < share < 1:
        return None
    n = planning.requests_needed(baseline_rate=base, canary_share=share, limit=limit, alpha=alpha)
    return None if n is None else max(int(n) - canary.total_exposure, 0)


def _inv(x: float | None) -> float | None:
    if x is None:
        return None
    return float("inf") if x == 0 else 1.0 / x


def _rate(arm: ArmCounts) -> str:
    return f"{arm.total_events}/{arm.total_exposure} ({100 * arm.total_events / arm.total_exposure:.2f}%)"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else ("inf" if x == float("inf") else f"{x:.2f}")


def _how(r: dict[str, Any]) -> str:
    if r["method"] == "sequential":
        return f" (e-value reached {r['max_e_value']:.3g} >= {r['threshold']:.3g})"
    return f" (p = {r['p_value']:.3g} < {r['threshold']:.3g})"
