"""Replay against a real Prometheus loaded with a canary of known truth: the same core as the controller, look
by look, and the actions its machine would have taken."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper.controller.machine import Policy
from gatekeeper.evaluation import judge_gate, open_prometheus
from gatekeeper.ops.replay import ReplayError, plan_looks, replay
from gatekeeper.sim.scenario import ArmProfile
from gatekeeper.spec import load_gate
from gatekeeper.spec.window import Window

ROOT = Path(__file__).resolve().parents[1]
GATE = ROOT / "gates" / "http-canary.yaml"
BUSY = {"requests_per_second": 100.0}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture
def worse_canary(load_scenario):  # type: ignore[no-untyped-def]
    """A canary with 1.8% errors against a 1% baseline: caught after a few minutes, not at the first look."""
    return load_scenario(
        canary=ArmProfile(**BUSY, error_ratio=0.018), baseline=ArmProfile(**BUSY, error_ratio=0.01), seed=3
    )


def test_replay_reverts_at_the_first_look_whose_evidence_crosses_the_threshold(
    prometheus, worse_canary
) -> None:
    gate = load_gate(GATE, args={"service": worse_canary.service})
    start, end = worse_canary.start_ms / 1000, worse_canary.end_ms / 1000
    source = open_prometheus(gate, url=prometheus.url)
    seen: list[tuple[int, int]] = []
    try:
        result = replay(
            gate, metrics=source, start=start, end=end, step=60, progress=lambda d, n: seen.append((d, n))
        )
        fail_look = next(lk for lk in result.looks if lk.verdict.value == "fail")
        # the same core, called directly on the same window, gives the same answer
        direct = judge_gate(
            gate,
            metrics=source,
            window=Window(
                start=fail_look.stage_started, end=fail_look.time, step=gate.source.prometheus.step
            ),
            stage=fail_look.stage,
            stage_started=fail_look.stage_started,
        )
    finally:
        source.close()
    assert result.policy == "gatekeeper.controller.machine.transition"
    assert fail_look.action == "revert"
    assert result.final.phase.value == "RolledBack" and result.stopped_early
    assert result.looks[-1] is fail_look  # nothing is judged after a terminal phase
    before = result.looks[: result.looks.index(fail_look)]
    assert before, "a 1.8% canary should not be caught by the very first look"
    assert all(lk.verdict.value == "inconclusive" and lk.action == "hold" for lk in before)
    assert direct.verdict == fail_look.verdict
    err = {s.name: s for s in fail_look.judgement.signals}["error-rate"]
    assert err.evidence.e_value >= err.evidence.threshold
    assert err.effect.lower > 1.0
    assert {s.name: s.evidence.e_value for s in direct.signals}["error-rate"] == err.evidence.e_value
    assert any("RolledBack" in e for e in fail_look.events)
    # progress reported every look, up to the stop
    assert seen and [d for d, _ in seen] == list(range(1, len(seen) + 1))
    assert all(n == seen[0][1] for _, n in seen)


def test_replay_cli_prints_the_timeline_as_json_and_writes_the_report(
    prometheus, worse_canary, tmp_path
) -> None:
    report = tmp_path / "replay.html"
    proc = run_cli(
        "replay", str(GATE), "--prometheus", prometheus.url, "--arg", f"service={worse_canary.service}",
        "--from", str(worse_canary.start_ms / 1000), "--to", str(worse_canary.end_ms / 1000),
        "--step", "1m", "--output", "json", "--report", str(report),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the last look failed
    data = json.loads(proc.stdout)
    assert data["final"]["phase"] == "RolledBack"
    assert [a["action"] for a in data["actions"]] == ["revert"]
    looks = data["looks"]
    assert looks[-1]["verdict"] == "fail" and looks[-1]["action"] == "revert"
    assert all(lk["signals"]["error-rate"]["verdict"] in ("inconclusive", "fail") for lk in looks)
    assert looks[-1]["signals"]["error-rate"]["effect"]["lower"] > 1.0
    html = report.read_text()
    assert "Stage and verdict timeline" in html and "revert" in html


def test_healthy_canary_advances_through_the_stages_and_never_reverts(prometheus, load_scenario) -> None:
    scenario = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=5)
    gate = load_gate(GATE, args={"service": scenario.service})
    source = open_prometheus(gate, url=prometheus.url)
    try:
        result = replay(
            gate, metrics=source, start=scenario.start_ms / 1000, end=scenario.end_ms / 1000, step=120
        )
    finally:
        source.close()
    actions = [lk.action for lk in result.looks]
    assert "advance" in actions, [lk.decision for lk in result.looks]
    assert not {"revert", "halt"} & set(actions)
    weights = [s.weight for s in gate.stages]
    for prev, look in zip(result.looks, result.looks[1:], strict=False):
        if prev.action == "advance":
            assert look.stage == prev.stage + 1
            assert look.weight == weights[look.stage]
            assert look.stage_started == prev.time  # the next stage's clock starts at the advancing look
            # each look judges the window from its stage's start: a fresh stage starts with little evidence
            assert look.judgement.window["start"] == prev.time
    policy = Policy.from_gate(gate)
    for look in result.looks:
        if look.action == "advance":
            assert look.verdict.value == "pass"
            assert look.time - look.stage_started >= policy.stage(look.stage).min_duration


def test_replay_holds_while_the_canary_is_dark_and_never_advances_on_missing_data(
    prometheus, load_scenario
) -> None:
    scenario = load_scenario(
        canary=ArmProfile(**BUSY),
        baseline=ArmProfile(**BUSY),
        seed=6,
        duration_seconds=900,
        canary_stops_at_ms=None,
        canary_absent=True,
    )
    gate = load_gate(GATE, args={"service": scenario.service})
    source = open_prometheus(gate, url=prometheus.url)
    try:
        result = replay(
            gate, metrics=source, start=scenario.start_ms / 1000, end=scenario.end_ms / 1000, step=60
        )
    finally:
        source.close()
    assert result.looks
    assert all(lk.verdict.value == "nodata" for lk in result.looks)
    assert "advance" not in [lk.action for lk in result.looks]
    first = result.looks[0]
    assert first.action == "hold" and "no canary" in first.reason
    # holding lasts the outage budget; only then does the stage's onDeadline policy act
    acted = [lk for lk in result.looks if lk.action != "hold"]
    if acted:
        assert acted[0].time - scenario.start_ms / 1000 >= gate.outage_budget


def test_plan_looks_rejects_bad_ranges_naming_the_option() -> None:
    assert plan_looks(start=0, end=300, step=60) == [60, 120, 180, 240, 300]
    with pytest.raises(ReplayError, match="--to"):
        plan_looks(start=10, end=5, step=60)
    with pytest.raises(ReplayError, match="--step"):
        plan_looks(start=0, end=30, step=60)
    with pytest.raises(ReplayError, match="--step"):
        plan_looks(start=0, end=10**9, step=1)


def test_replay_cli_reports_a_bad_time_as_bad_input_with_exit_2(dead_prometheus_url) -> None:
    proc = run_cli(
        "replay", str(GATE), "--prometheus", dead_prometheus_url, "--arg", "service=x",
        "--from", "yesterday", "--to", "1700000000",
    )  # fmt: skip
    assert proc.returncode == 2
    assert "yesterday" in proc.stderr and "RFC 3339" in proc.stderr
