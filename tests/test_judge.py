"""Aggregation: worst-of order, critical signals lead, dry-run signals never vote, nothing passes by default."""

from __future__ import annotations

import pytest

from gatekeeper.judge import aggregate, signal_alphas
from gatekeeper.spec import SignalOutcome, Verdict, load_gate_text
from gatekeeper.spec.evidence import (
    CountEvidence,
    Evidence,
    HealthEvidence,
    KayentaEvidence,
    KeptnEvidence,
    ThresholdEvidence,
)


def outcome(name: str, verdict: Verdict, *, critical: bool = False, dry_run: bool = False) -> SignalOutcome:
    return SignalOutcome(
        name=name,
        kind="ratio",
        verdict=verdict,
        reason=f"{name} is {verdict}",
        critical=critical,
        dry_run=dry_run,
    )


def judge(*outcomes: SignalOutcome):  # type: ignore[no-untyped-def]
    return aggregate(list(outcomes), gate="g", window={"start": 0, "end": 60, "step": 60})


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([Verdict.PASS, Verdict.PASS], Verdict.PASS),
        ([Verdict.PASS, Verdict.INCONCLUSIVE], Verdict.INCONCLUSIVE),
        ([Verdict.INCONCLUSIVE, Verdict.NODATA], Verdict.NODATA),
        ([Verdict.NODATA, Verdict.ERROR], Verdict.ERROR),
        ([Verdict.ERROR, Verdict.FAIL, Verdict.PASS], Verdict.FAIL),
    ],
)
def test_verdict_is_the_worst_of_the_voting_signals(verdicts, expected):
    assert judge(*[outcome(f"s{i}", v) for i, v in enumerate(verdicts)]).verdict == expected


def test_no_signals_is_never_a_pass():
    assert judge().verdict == Verdict.NODATA


def test_dry_run_signals_are_shown_but_never_vote():
    j = judge(outcome("a", Verdict.PASS), outcome("shadow", Verdict.FAIL, dry_run=True))
    assert j.verdict == Verdict.PASS
    assert [s.name for s in j.signals] == ["a", "shadow"]


def test_only_dry_run_signals_is_nodata_not_pass():
    assert judge(outcome("shadow", Verdict.PASS, dry_run=True)).verdict == Verdict.NODATA


def test_a_critical_failure_is_flagged_and_leads_the_reason():
    j = judge(outcome("minor", Verdict.FAIL), outcome("errors", Verdict.FAIL, critical=True))
    assert j.critical_failure
    assert j.reason.startswith("critical signal errors")


def test_non_critical_failure_fails_without_the_critical_flag():
    j = judge(outcome("minor", Verdict.FAIL), outcome("errors", Verdict.PASS, critical=True))
    assert j.verdict == Verdict.FAIL and not j.critical_failure


def test_alpha_is_split_by_weight_so_the_gate_keeps_its_level():
    gate = load_gate_text("""
name: g
alpha: 0.01
scopes: {canary: {t: c}, baseline: {t: b}}
signals:
  - {name: a, kind: ratio, bad: x, total: y, weight: 3}
  - {name: b, kind: ratio, bad: x, total: y}
  - {name: c, kind: ratio, bad: x, total: y, dryRun: true}
""")
    alphas = signal_alphas(gate)
    assert alphas["a"] == pytest.approx(0.0075)
    assert alphas["a"] + alphas["b"] == pytest.approx(0.01)  # voting signals use exactly the budget


# -- what a missing minimum means (a smoke stage advances on an inconclusive look only when minimums_met) -------
def measured(
    kind: str, verdict: Verdict, evidence: Evidence | None, *, dry_run: bool = False
) -> SignalOutcome:
    return SignalOutcome(
        name=f"{kind}-{verdict.value}",
        kind=kind,
        verdict=verdict,
        reason="",
        evidence=evidence,
        dry_run=dry_run,
    )


MET = measured("ratio", Verdict.INCONCLUSIVE, CountEvidence(minimums=True))
SHORT = measured("ratio", Verdict.INCONCLUSIVE, CountEvidence(minimums=False))
THRESHOLD_PASS = measured(
    "threshold", Verdict.PASS, ThresholdEvidence(failed_measurements=0, failure_limit=0)
)
THRESHOLD_WAITING = measured(
    "threshold", Verdict.INCONCLUSIVE, None
)  # in its initial delay: nothing measured
HEALTH_PASS = measured("health", Verdict.PASS, HealthEvidence())
HEALTH_GAP = measured("health", Verdict.NODATA, HealthEvidence())
KEPTN_WARNING = measured(
    "threshold", Verdict.INCONCLUSIVE, KeptnEvidence(status="warning", score=0.5, max=1.0)
)
KAYENTA_PASS = measured(
    "ratio",
    Verdict.PASS,
    KayentaEvidence(
        label="Pass", group="default", group_score=100.0, group_weight=100.0, contribution=100.0,
        critical=False, effect_size=1.0, bound=None, p_value=0.5, warning=None,
    ),
)  # fmt: skip


@pytest.mark.parametrize(
    ("outcomes", "met"),
    [
        ([MET], True),  # a count signal measured its minimums and has them
        ([SHORT], False),  # ... or does not have them yet
        ([MET, THRESHOLD_PASS], True),  # a pass is its own evidence, minimums or not
        ([MET, HEALTH_PASS], True),
        ([MET, THRESHOLD_WAITING], False),  # changed: a threshold that measured nothing held the stage open
        ([THRESHOLD_WAITING], False),  # changed: was met (no signal said otherwise)
        ([MET, HEALTH_GAP], False),  # a health gap is missing evidence
        ([KEPTN_WARNING], False),  # changed: Keptn's "warning: a human decides" measured no minimums
        ([KAYENTA_PASS], True),
        ([MET, measured("threshold", Verdict.INCONCLUSIVE, None, dry_run=True)], True),  # dry-run never votes
        ([], False),  # changed: no voting signal meets nothing
    ],
)
def test_a_missing_minimum_is_met_only_by_a_signal_that_passed(outcomes, met):
    """docs/architecture.md, "What a missing minimum means": missing evidence never advances a smoke stage."""
    assert judge(*outcomes).minimums_met is met


def test_only_count_evidence_measures_the_stage_minimums():
    assert CountEvidence(minimums=True).minimums_met is True
    assert CountEvidence().minimums_met is None  # no canary seen: not measured
    for other in (
        ThresholdEvidence(failed_measurements=0, failure_limit=0),
        HealthEvidence(),
        KeptnEvidence(status="pass", score=1.0, max=1.0),
    ):
        assert other.minimums_met is None
