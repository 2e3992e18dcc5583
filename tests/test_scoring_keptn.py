"""`mode: keptn` scoring checked against Keptn's own documentation and evaluator source:
- the slo.yaml reference (docs 0.18.x reference/files/slo): "if the maximum score is 92 and the evaluation
  result is 85, the total_score is 92.39%"; criteria in one list are AND-ed, split lists OR-ed;
- lighthouse-service evaluate_sli_handler.go: pass = weight, warning = weight / 2, `<=+10%` targets
  base * (100 + 10) / 100, a sign without % is an absolute delta, `-` a decrease; a failed key SLI fails.
Where gatekeeper is stricter (no data, no criteria), the tests say so."""

from __future__ import annotations

import pytest

from gatekeeper.judge.keptn import parse_criterion, score_gate
from gatekeeper.spec import load_gate_text
from gatekeeper.spec.outcome import Verdict
from gatekeeper.spec.window import Window

WINDOW = Window(start=0.0, end=600.0, step=60.0)


def gate(*signals: str, passing: float = 90, warning: float = 75):  # type: ignore[no-untyped-def]
    body = "\n".join(signals)
    return load_gate_text(
        f"name: g\nmode: keptn\nscoring: {{passScore: {passing}, marginalScore: {warning}}}\n"
        "scopes: {canary: {d: canary}, baseline: {d: primary}}\nsignals:\n" + body
    )


def sig(name: str, *, weight: float = 1, passing: str = "[]", warn: str = "[]", extra: str = "") -> str:
    return (
        f"  - {{name: {name}, kind: threshold, query: 'x{{${{selector}}}}', max: .inf, weight: {weight}, "
        f"passCriteria: {passing}, warningCriteria: {warn}{extra}}}"
    )


def test_total_score_is_achieved_over_maximum_as_in_keptns_92_39_percent_example():
    g = gate(sig("a", weight=78, passing="['<100']"), sig("b", weight=14, passing="['<10']", warn="['<50']"))
    j = score_gate(g, {"a": {"canary": 1.0}, "b": {"canary": 20.0}}, window=WINDOW)
    assert "total score 92.39%" in j.reason  # (78 + 14 / 2) / 92
    assert j.verdict == Verdict.PASS and j.mode == "keptn"
    contribution = {s.name: s.evidence.contribution for s in j.signals}
    assert contribution == {
        "a": pytest.approx(100 * 78 / 92, abs=1e-3),
        "b": pytest.approx(100 * 7 / 92, abs=1e-3),
    }


@pytest.mark.parametrize(
    ("text", "baseline", "target"),
    [
        ("<=+10%", 200.0, 220.0),  # (aggregate * (100 + 10)) / 100
        ("<-5%", 200.0, 190.0),  # (aggregate * (100 - 5)) / 100
        (">=+20", 200.0, 220.0),  # absolute increase
        (">-8%", 100.0, 92.0),  # the example in parseCriteriaString's comment
        ("<600", None, 600.0),
        ("=0", None, 0.0),
    ],
)
def test_criteria_targets_follow_keptns_evaluator(text, baseline, target):
    assert parse_criterion(text).target(baseline) == pytest.approx(target)


def test_a_criterion_keptn_cannot_parse_is_rejected_with_the_form_to_use():
    with pytest.raises(ValueError, match="<op><value>"):
        parse_criterion("below 600")


def test_one_criteria_list_is_and_split_lists_are_or():
    both = gate(sig("p95", passing="['<1000', '<=+10%']"))
    either = gate(sig("p95", passing="['<1000 || <=+10%']"))
    values = {"p95": {"canary": 995.0, "baseline": 900.0}}  # below 1000 but 10.6% above the baseline
    assert score_gate(both, values, window=WINDOW).verdict == Verdict.FAIL
    assert score_gate(either, values, window=WINDOW).verdict == Verdict.PASS


def test_a_score_in_the_warning_band_needs_a_human():
    g = gate(sig("a", weight=3, passing="['<1']"), sig("b", weight=1, passing="['<1']"))
    j = score_gate(g, {"a": {"canary": 0.5}, "b": {"canary": 2.0}}, window=WINDOW)
    assert "total score 75.00%" in j.reason
    assert j.verdict == Verdict.INCONCLUSIVE  # Keptn "warning"


def test_a_failed_key_objective_fails_whatever_the_score():
    g = gate(
        sig("key", weight=1, passing="['<1']", extra=", key: true"), sig("b", weight=99, passing="['<1']")
    )
    j = score_gate(g, {"key": {"canary": 5.0}, "b": {"canary": 0.0}}, window=WINDOW)
    assert "total score 99.00%" in j.reason
    assert j.verdict == Verdict.FAIL and j.critical_failure


def test_a_relative_criterion_without_a_baseline_value_is_nodata_where_keptn_passes():
    g = gate(sig("a", passing="['<=+10%']"))
    j = score_gate(g, {"a": {"canary": 5.0, "baseline": None}}, window=WINDOW)
    assert j.verdict == Verdict.NODATA


def test_no_canary_value_is_nodata_unless_the_rest_already_fails():
    g = gate(sig("a", weight=1, passing="['<1']"), sig("b", weight=1, passing="['<1']"))
    assert (
        score_gate(g, {"a": {"canary": None}, "b": {"canary": 0.0}}, window=WINDOW).verdict == Verdict.NODATA
    )
    lost = gate(sig("a", weight=1, passing="['<1']"), sig("b", weight=9, passing="['<1']"))
    j = score_gate(lost, {"a": {"canary": None}, "b": {"canary": 2.0}}, window=WINDOW)
    assert j.verdict == Verdict.FAIL  # 10% at best: the evidence alone fails it


def test_a_signal_without_criteria_never_passes_while_a_dry_run_one_is_only_shown():
    voting = gate(sig("a", passing="['<1']"), sig("info"))
    j = score_gate(voting, {"a": {"canary": 0.0}, "info": {"canary": 3.0}}, window=WINDOW)
    assert j.verdict == Verdict.INCONCLUSIVE and "info" in j.reason
    shown = gate(sig("a", passing="['<1']"), sig("info", extra=", dryRun: true"))
    j = score_gate(shown, {"a": {"canary": 0.0}, "info": {"canary": 3.0}}, window=WINDOW)
    assert j.verdict == Verdict.PASS and "total score 100.00%" in j.reason


def test_a_pass_before_the_stages_minimum_duration_is_held():
    g = gate(sig("a", passing="['<1']"))
    j = score_gate(g, {"a": {"canary": 0.0}}, window=WINDOW, stage_elapsed=10.0)
    assert j.verdict == Verdict.INCONCLUSIVE and "minDuration" in j.reason
