"""Typed evidence: each family's JSON keeps the keys its readers (CLI, dashboard, reports, metrics, the status
history, decision records) read, and a record reads back to the same evidence."""

from __future__ import annotations

import json

import pytest

from gatekeeper.spec.evidence import (
    ArmPair,
    CountEvidence,
    Evidence,
    FixedTest,
    HealthEvidence,
    KayentaEvidence,
    KeptnEvidence,
    LatencyObjective,
    RolloutEvidence,
    SequentialTest,
    ThresholdEvidence,
    TraceEvidence,
    evidence_from_dict,
)
from gatekeeper.spec.outcome import SignalOutcome, Verdict

SEQUENTIAL = SequentialTest(
    e_value=3.5,
    max_e_value=7.25,
    safety_e_value=0.5,
    threshold=100.0,
    path=(1.0, 2.0, 3.5),
    path_t=(60.0, 120.0, 180.0),
    rollout=RolloutEvidence(stages=2, samples=ArmPair(900, 9000), events=ArmPair(9, 80)),
    more_needed=1200,
)
EXAMPLES: dict[str, Evidence] = {
    "ratio, sequential": CountEvidence(
        test=SEQUENTIAL,
        samples=ArmPair(500, 5000),
        events=ArmPair(5, 40),
        minimums=False,
        series={"t": [60, 120], "canary": {"events": [1, 4], "requests": [200, 300]}, "unit": "requests"},
        notes=("2 steps had bad events before their requests were scraped: counted with the next step",),
    ),
    "ratio, silent": CountEvidence(
        test=SequentialTest(
            e_value=1.0, max_e_value=1.0, safety_e_value=1.0, threshold=100.0, silence_requests=4600
        ),
        samples=ArmPair(10, 100),
        events=ArmPair(0, 0),
        minimums=True,
    ),
    "ratio, fixed": CountEvidence(
        test=FixedTest(threshold=0.01, planned_end=600.0, p_value=0.03), samples=ArmPair(5, 50), minimums=True
    ),
    "ratio, fixed before its planned end": CountEvidence(test=FixedTest(), minimums=False),
    "latency": CountEvidence(
        latency=LatencyObjective("slower than 0.5s", 0.5, 0.99, 0.61, 0.48), minimums=True
    ),
    "invariant": CountEvidence(
        traces=TraceEvidence(
            ("t1", "t2"), ("t3",), {"canary": 0, "baseline": 0}, {"canary": 1.5, "baseline": 2.0}
        )
    ),
    "threshold": ThresholdEvidence(
        failed_measurements=2, failure_limit=1, values=(0.1, 0.9), values_t=(60.0, 120.0)
    ),
    "kayenta": KayentaEvidence("High", "errors", 0.0, 50.0, 0.0, True, 1.6, 0.25, 0.001, None),
    "keptn": KeptnEvidence(
        status="warning",
        score=0.5,
        max=1.0,
        contribution=25.0,
        pass_targets=({"criteria": "<600", "target": 600.0, "violated": True},),
    ),
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_a_recorded_evidence_reads_back_to_the_same_evidence(name):
    evidence = EXAMPLES[name]
    stored = json.loads(json.dumps(evidence.to_dict()))  # as a status, a record or `-o json` holds it
    assert evidence_from_dict(stored) == evidence


def test_a_sequential_count_keeps_the_keys_its_readers_read():
    d = EXAMPLES["ratio, sequential"].to_dict()
    assert list(d) == [
        "notes", "method", "e_value", "max_e_value", "safety_e_value", "threshold", "path", "path_t", "samples",
        "events", "rollout", "more_needed", "minimums_met", "series",
    ]  # fmt: skip
    assert d["samples"] == {"canary": 500, "baseline": 5000} and d["rollout"]["stages"] == 2


def test_a_fixed_test_keeps_its_p_value_and_alpha_as_threshold():
    d = EXAMPLES["ratio, fixed"].to_dict()
    assert (d["method"], d["threshold"], d["p_value"], d["planned_end"]) == ("fixed", 0.01, 0.03, 600.0)
    assert EXAMPLES["ratio, fixed"].recorded() == {
        "threshold": 0.01,
        "p_value": 0.03,
        "samples": d["samples"],
    }


def test_fields_not_measured_are_left_out_and_the_scoring_modes_show_every_key():
    assert CountEvidence().to_dict() == {}
    assert HealthEvidence().to_dict() == {} and evidence_from_dict({}) is None
    kayenta = EXAMPLES["kayenta"].to_dict()
    assert kayenta["mode"] == "kayenta" and "warning" in kayenta and kayenta["warning"] is None


def test_an_outcome_without_evidence_shows_an_empty_mapping():
    class Signal:
        name, kind, critical, dry_run = "errors", "ratio", True, False

    out = SignalOutcome.of(Signal(), Verdict.ERROR, "source unavailable: refused")
    assert out.critical and out.to_dict()["evidence"] == {}
    assert out.to_dict()["verdict"] == "error"
