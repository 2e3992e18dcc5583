"""Kayenta-style scoring (`mode: kayenta`): NetflixACAJudge over per-step series, groups, weights, critical.

Each voting signal's per-step canary and baseline values (fetched by `gatekeeper.evaluation` from the range
queries its definition renders, see `gatekeeper.signals.series`; the judge never fetches) are classified by `gatekeeper.stats.kayenta.classify_metric` (Mann–Whitney,
98% interval, bound 0.25·|estimate|; effect size = mean ratio) into Pass / High / Low / Nodata /
NodataFailMetric / Error, then scored by `gatekeeper.stats.kayenta_score.score_metrics`: group score =
100·Pass / (Pass + High + Low + NodataFailMetric), groups weighted, a critical metric that is not Pass scores 0.
Summary >= `scoring.passScore` -> PASS, >= `scoring.marginalScore` -> INCONCLUSIVE (Kayenta "Marginal"),
else FAIL.

How the gate's fields map (the spec has no Kayenta-only fields yet, see docs/migrating.md):
- `group` is the metric's group (ungrouped signals form group "default"); a group's weight is the sum of its
  signals' `weight`, as a share of all groups (`gatekeeper import` writes Kayenta's group weights this way);
- `direction` as Kayenta's; `tolerance` t gives allowedIncrease 1 + t and allowedDecrease 1 - t (with
  `effectMeasure: cles`, 0.5 + t and 0.5 - t); `outliers: remove` + `outlierFactor` as Kayenta's outliers;
- `critical`: a critical metric that is not Pass zeroes the score (FAIL on High/Low; NODATA/ERROR on no data).
- NaN handling is always Kayenta's `remove` and every metric must have data (`mustHaveData`): Kayenta's
  `replace` and optional data would pass a canary that sent nothing.

Stricter than Kayenta, on purpose (`strict=True` in the scorer): a group without data scores 0, not 100; an
Error counts against its group; and any voting metric without data or in error makes the verdict NODATA or
ERROR unless the evidence alone already fails the canary (the score would fail even if every such metric
passed). Mann–Whitney on per-step rates of a small canary share also tests dispersion, so the reason warns
when the stage weight is below 10%.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gatekeeper.judge.aggregate import Judgement
from gatekeeper.spec.evidence import KayentaEvidence
from gatekeeper.spec.measurements import ArmSeries
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.outcome import Effect, SignalOutcome, Verdict
from gatekeeper.spec.signals import Signal
from gatekeeper.spec.window import Window
from gatekeeper.stats.kayenta import KayentaClassification, Label, classify_metric
from gatekeeper.stats.kayenta_score import KayentaScore, MetricResult, ScoreClass, score_metrics

__all__ = ["group_weights", "score_gate"]

_VERDICT = {
    Label.PASS: Verdict.PASS,
    Label.HIGH: Verdict.FAIL,
    Label.LOW: Verdict.FAIL,
    Label.NODATA: Verdict.NODATA,
    Label.NODATA_FAIL_METRIC: Verdict.NODATA,
    Label.ERROR: Verdict.ERROR,
}
SMALL_CANARY_SHARE = 10.0
_COUNTED = ("Pass", "High", "Low", "NodataFailMetric", "Error")  # labels a strict group score counts


def group_weights(gate: GateSpec) -> dict[str, float]:
    """Group -> percent: each group's share of the summed weights of the voting signals."""
    sums: dict[str, float] = {}
    for s in gate.signals:
        if not s.dry_run:
            sums[s.group or "default"] = sums.get(s.group or "default", 0.0) + s.weight
    total = sum(sums.values())
    return {g: 100.0 * w / total for g, w in sums.items()} if total else {}


@dataclass(frozen=True)
class _Classified:
    signal: Signal
    result: KayentaClassification
    series: ArmSeries | None


def _plain(label: Label, reason: str, critical: bool) -> KayentaClassification:
    return KayentaClassification(label, reason, critical, math.nan, math.nan, None, None)


def _classify(
    signal: Signal, series: ArmSeries | None, problem: str | None, waiting: str | None
) -> KayentaClassification:
    if waiting:
        return _plain(Label.NODATA, waiting, signal.critical)
    if problem or series is None:
        return _plain(Label.ERROR, problem or "no series", signal.critical)
    if series.problem:
        return _plain(Label.ERROR, series.problem, signal.critical)
    return classify_metric(
        series.canary,
        series.baseline,
        name=signal.name,
        direction=str(signal.direction),
        nan_strategy="remove",
        critical=signal.critical,
        must_have_data=True,
        effect_size_measure=signal.effect_measure,
        allowed_increase=_neutral(signal) + signal.tolerance,
        allowed_decrease=max(_neutral(signal) - signal.tolerance, 0.0),
        remove_outliers=signal.outliers == "remove",
        outlier_factor=signal.outlier_factor,
        strict=True,
    )


def _neutral(signal: Signal) -> float:
    """The effect size of no change: a mean ratio of 1, a common-language effect size of 0.5."""
    return 0.5 if signal.effect_measure == "cles" else 1.0


def score_gate(
    gate: GateSpec,
    series: Mapping[str, ArmSeries | str],
    *,
    window: Window,
    stage: int = 0,
    stage_elapsed: float | None = None,
    waiting: Mapping[str, str] | None = None,
) -> Judgement:
    """Classify and score per-step `series` (signal name -> ArmSeries, or a problem string) as Kayenta does.

    Pure: the numbers arrive as arguments. `waiting` (signal -> reason, e.g. its initial delay) counts as
    no data yet; `stage_elapsed` below the stage's `minDuration` holds a pass.
    """
    classified = []
    for s in gate.signals:
        item = series.get(s.name, "no series fetched")
        arm = item if isinstance(item, ArmSeries) else None
        result = _classify(s, arm, None if arm else str(item), (waiting or {}).get(s.name))
        classified.append(_Classified(s, result, arm))
    weights = group_weights(gate)
    sc = gate.scoring
    results = [_metric(c) for c in classified]
    score = score_metrics(
        results,
        pass_threshold=sc.pass_score,
        marginal_threshold=sc.marginal_score,
        group_weights=weights,
        strict=True,
    )
    unknown = [
        c
        for c in classified
        if not c.signal.dry_run and _VERDICT[c.result.label] in (Verdict.NODATA, Verdict.ERROR)
    ]
    optimistic = score_metrics(
        [_metric(c, assume_pass=c in unknown) for c in classified],
        pass_threshold=sc.pass_score,
        marginal_threshold=sc.marginal_score,
        group_weights=weights,
        strict=True,
    )
    critical_harm = [
        c
        for c in classified
        if not c.signal.dry_run and c.signal.critical and c.result.label in (Label.HIGH, Label.LOW)
    ]
    head = f"kayenta: score {score.score:.2f} (pass >= {sc.pass_score:g}, marginal >= {sc.marginal_score:g})"
    if critical_harm:
        verdict, why = (
            Verdict.FAIL,
            f"critical signal {critical_harm[0].signal.name} is {critical_harm[0].result.label}",
        )
    elif optimistic.classification == ScoreClass.FAIL:
        verdict = Verdict.FAIL
        why = score.reason or ("Fail even if every signal without data passed" if unknown else "Fail")
    elif unknown:
        worst = Verdict.worst([_VERDICT[c.result.label] for c in unknown])
        names = ", ".join(c.signal.name for c in unknown if _VERDICT[c.result.label] == worst)
        verdict, why = worst, f"not classified: {names}"
    elif score.classification == ScoreClass.PASS:
        verdict, why = Verdict.PASS, "Pass"
    elif score.classification == ScoreClass.MARGINAL:
        verdict, why = Verdict.INCONCLUSIVE, "Marginal: a human decides"
    else:
        verdict, why = Verdict.FAIL, score.reason or "Fail"
    st = gate.stages[stage]
    if verdict == Verdict.PASS and stage_elapsed is not None and stage_elapsed < st.min_duration:
        verdict, why = (
            Verdict.INCONCLUSIVE,
            f"Pass, but the stage needs {st.min_duration - stage_elapsed:.0f}s more",
        )
    if st.weight < SMALL_CANARY_SHARE:
        why += (
            f"; note: at a {st.weight:g}% canary share Mann–Whitney on per-step values also reacts to the "
            "canary's larger spread"
        )
    outcomes = tuple(_outcome(c, score, weights) for c in classified)
    return Judgement(
        gate=gate.name,
        verdict=verdict,
        reason=f"{head}: {why}",
        signals=outcomes,
        window={"start": window.start, "end": window.end, "step": window.step},
        stage=stage,
        weight=st.weight,
        mode="kayenta",
        critical_failure=bool(critical_harm),
        owners=tuple(gate.owners),
    )


def _metric(c: _Classified, *, assume_pass: bool = False) -> MetricResult:
    s = c.signal
    label = Label.PASS if assume_pass else c.result.label
    return MetricResult(
        name=s.name,
        label=label,
        groups=(s.group or "default",),
        critical=bool(s.critical and label != Label.PASS),
        muted=s.dry_run,
        reason=c.result.reason,
    )


def _outcome(c: _Classified, score: KayentaScore, weights: dict[str, float]) -> SignalOutcome:
    s, r = c.signal, c.result
    group = s.group or "default"
    g = next((x for x in score.groups if x.name == group), None)
    contribution = None
    if g is not None and not s.dry_run:  # points of the summary score this signal earned
        counted = sum(v for k, v in g.label_counts.items() if k in _COUNTED)
        per_metric = weights.get(group, 0.0) / counted if counted else 0.0
        contribution = round(per_metric if r.label == Label.PASS else 0.0, 4)
    test = r.test
    effect = Effect(
        measure="mean ratio",
        estimate=None if math.isnan(r.deviation) else r.deviation,
        lower=None if test is None else test.lower,
        upper=None if test is None else test.upper,
        limit=1.0 + s.tolerance,
    )
    arms = c.series
    evidence = KayentaEvidence(
        label=r.label.value,
        group=group,
        group_score=None if g is None else g.score,
        group_weight=weights.get(group),
        contribution=contribution,
        critical=r.critical,
        effect_size=None if math.isnan(r.effect_size) else r.effect_size,
        bound=r.bound,
        p_value=None if test is None else test.p_value,
        warning=r.warning,
    )
    return SignalOutcome.of(
        s,
        _VERDICT[r.label],
        r.reason or f"classified {r.label.value}",
        canary=_summary(None if arms is None else arms.canary),
        baseline=_summary(None if arms is None else arms.baseline),
        effect=effect,
        queries={} if arms is None else dict(arms.queries),
        evidence=evidence,
    )


def _summary(values: np.ndarray | None) -> dict[str, Any]:
    if values is None:
        return {}
    finite = values[np.isfinite(values)]
    return {
        "steps": int(values.size),
        "values": int(finite.size),
        "mean": float(finite.mean()) if finite.size else None,
        "series": [None if not math.isfinite(v) else float(v) for v in values[-60:]],
    }
