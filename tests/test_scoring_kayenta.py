"""`mode: kayenta` scoring: per-step series through NetflixACAJudge's classifier and WeightedSumScorer
(spinnaker/kayenta kayenta-judge: group score = 100 * Pass / (Pass + High + Low + NodataFailMetric), groups
weighted in percent, a critical metric that is not Pass scores 0, summary >= pass -> Pass, >= marginal ->
Marginal). The gate's groups and weights map onto Kayenta's; missing data is stricter than Kayenta."""

from __future__ import annotations

import numpy as np

from gatekeeper.judge.kayenta import group_weights, score_gate
from gatekeeper.spec import load_gate_text
from gatekeeper.spec.measurements import ArmSeries
from gatekeeper.spec.outcome import Verdict
from gatekeeper.spec.window import Window

WINDOW = Window(start=0.0, end=1800.0, step=60.0)
T = np.arange(60.0, 1801.0, 60.0)
BASE = 1.0 + 0.5 * np.sin(np.arange(T.size))  # 30 distinct per-step values


def gate(*signals: str, stage_weight: float = 50):  # type: ignore[no-untyped-def]
    return load_gate_text(
        "name: g\nmode: kayenta\nscoring: {passScore: 95, marginalScore: 75}\n"
        "scopes: {canary: {t: canary}, baseline: {t: baseline}}\n"
        f"stages: [{{weight: {stage_weight}, minDuration: 0s}}]\nsignals:\n" + "\n".join(signals)
    )


def sig(name: str, group: str, weight: float, extra: str = "", tolerance: float = 0) -> str:
    return (
        f"  - {{name: {name}, kind: threshold, query: 'x{{${{selector}}}}', min: .inf, group: {group}, "
        f"weight: {weight}, direction: increase, tolerance: {tolerance:g}{extra}}}"
    )


def same() -> ArmSeries:
    return ArmSeries(T, BASE.copy(), BASE.copy(), {"canary": "a", "baseline": "b"})


def worse() -> ArmSeries:
    return ArmSeries(T, BASE * 3.0, BASE.copy(), {"canary": "a", "baseline": "b"})


def test_group_weights_and_group_scores_give_kayentas_summary():
    g = gate(sig("errors", "Errors", 60), sig("p50", "Latency", 20), sig("p99", "Latency", 20))
    assert group_weights(g) == {"Errors": 60.0, "Latency": 40.0}
    j = score_gate(g, {"errors": same(), "p50": same(), "p99": worse()}, window=WINDOW)
    # Errors 100 * 0.6 + Latency (1 Pass of 2 = 50) * 0.4 = 80: Marginal
    assert "score 80.00" in j.reason and j.verdict == Verdict.INCONCLUSIVE and j.mode == "kayenta"
    labels = {s.name: s.evidence.label for s in j.signals}
    assert labels == {"errors": "Pass", "p50": "Pass", "p99": "High"}
    contribution = {s.name: s.evidence.contribution for s in j.signals}
    assert contribution == {"errors": 60.0, "p50": 20.0, "p99": 0.0}


def test_every_metric_passing_scores_100():
    g = gate(sig("errors", "Errors", 60), sig("p99", "Latency", 40))
    j = score_gate(g, {"errors": same(), "p99": same()}, window=WINDOW)
    assert j.verdict == Verdict.PASS and "score 100.00" in j.reason


def test_a_critical_metric_classified_high_fails_the_canary_at_score_zero():
    g = gate(sig("errors", "Errors", 10, ", critical: true"), sig("p99", "Latency", 90))
    j = score_gate(g, {"errors": worse(), "p99": same()}, window=WINDOW)
    assert j.verdict == Verdict.FAIL and j.critical_failure
    assert "score 0.00" in j.reason


def test_a_metric_without_data_holds_the_verdict_where_kayenta_would_pass():
    g = gate(sig("errors", "Errors", 50), sig("p99", "Latency", 50))
    empty = ArmSeries(T, np.full(T.size, np.nan), BASE.copy(), {"canary": "a", "baseline": "b"})
    j = score_gate(g, {"errors": same(), "p99": empty}, window=WINDOW)
    assert j.verdict == Verdict.NODATA and "p99" in j.reason
    labels = {s.name: s.evidence.label for s in j.signals}
    assert labels["p99"] == "NodataFailMetric"  # every metric must have data here


def test_the_evidence_alone_fails_the_canary_even_with_a_metric_missing():
    g = gate(sig("errors", "Errors", 10), sig("p50", "Latency", 80), sig("p99", "Latency", 10))
    empty = ArmSeries(T, np.full(T.size, np.nan), BASE.copy(), {"canary": "a", "baseline": "b"})
    j = score_gate(g, {"errors": empty, "p50": worse(), "p99": same()}, window=WINDOW)
    assert j.verdict == Verdict.FAIL  # at best 10 + 10 = 20 < 75


def test_a_dry_run_signal_is_classified_and_shown_but_not_scored():
    g = gate(sig("errors", "Errors", 100), sig("trial", "Errors", 1, ", dryRun: true"))
    j = score_gate(g, {"errors": same(), "trial": worse()}, window=WINDOW)
    assert j.verdict == Verdict.PASS
    trial = next(s for s in j.signals if s.name == "trial")
    assert trial.dry_run and trial.evidence.label == "High" and trial.evidence.contribution is None


def test_a_query_error_is_an_error_not_a_pass_and_a_small_canary_share_is_called_out():
    g = gate(sig("errors", "Errors", 100), stage_weight=5)
    j = score_gate(g, {"errors": "source unavailable: connection refused"}, window=WINDOW)
    assert j.verdict == Verdict.ERROR
    assert "5% canary share" in j.reason


def test_outliers_remove_and_the_cles_effect_measure_reach_kayentas_classifier():
    """Kayenta's `outliers.strategy: remove` (Tukey fences at outlierFactor x IQR, never inside the 1st/99th
    percentiles) and `effectSize.measure: cles` (neutral 0.5), set on the signal and used by `mode: kayenta`."""
    n = 200
    window = Window(start=0.0, end=60.0 * n, step=60.0)
    t = np.arange(60.0, 60.0 * n + 1, 60.0)
    base = 1.0 + 0.05 * np.sin(np.arange(n))
    spiked = base * 1.02
    spiked[0] = 1000.0  # one step of a scrape gone wrong: the mean ratio jumps to ~6
    arms = {"m": ArmSeries(t, spiked, base.copy(), {"canary": "a", "baseline": "b"})}
    kept = score_gate(gate(sig("m", "G", 100, tolerance=0.1)), arms, window=window)
    removed = score_gate(gate(sig("m", "G", 100, ", outliers: remove", tolerance=0.1)), arms, window=window)
    assert kept.signals[0].evidence.label == "High"
    assert removed.signals[0].evidence.label == "Pass"

    shifted = {"m": ArmSeries(t, base * 1.3, base.copy(), {"canary": "a", "baseline": "b"})}
    ratio = score_gate(gate(sig("m", "G", 100, tolerance=0.35)), shifted, window=window)
    cles = score_gate(
        gate(sig("m", "G", 100, ", effectMeasure: cles", tolerance=0.35)), shifted, window=window
    )
    assert ratio.signals[0].evidence.label == "Pass"  # mean ratio 1.3 < allowed 1.35
    assert cles.signals[0].evidence.label == "High"  # every canary step is higher: CLES 1.0 >= 0.85
