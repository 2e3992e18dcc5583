"""`gatekeeper evaluate` end to end: the real CLI process against a real Prometheus loaded with known truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper.sim.scenario import ArmProfile

ROOT = Path(__file__).resolve().parents[1]
GATE = ROOT / "gates" / "http-canary.yaml"
BUSY = dict(requests_per_second=100.0, error_ratio=0.01)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def evaluate(url: str, scenario, *extra: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    end = scenario.end_ms / 1000
    proc = run_cli(
        "evaluate",
        str(GATE),
        "--prometheus",
        url,
        "--arg",
        f"service={scenario.service}",
        "--start",
        f"{end - 1800:.0f}",
        "--end",
        f"{end:.0f}",
        "--output",
        "json",
        *extra,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def by_name(result: dict) -> dict[str, dict]:
    return {s["name"]: s for s in result["signals"]}


def test_clearly_worse_canary_fails_with_exit_1(prometheus, load_scenario):
    scenario = load_scenario(
        canary=ArmProfile(requests_per_second=100, error_ratio=0.05), baseline=ArmProfile(**BUSY), seed=1
    )
    code, result = evaluate(prometheus.url, scenario)
    assert code == 1
    assert result["verdict"] == "fail"
    err = by_name(result)["error-rate"]
    assert err["verdict"] == "fail"
    assert err["effect"]["lower"] > 1.2  # the whole confidence sequence is above the tolerance
    assert "http_requests_total" in err["queries"]["canary_bad"]
    assert f'service="{scenario.service}"' in err["queries"]["canary_bad"]
    truth = scenario.truth["canary"]
    # per-step increase() extrapolation keeps the counted errors close to the exact truth
    assert abs(err["canary"]["events"] - truth.errors) <= 0.05 * truth.errors


def test_equal_arms_with_enough_traffic_pass_with_exit_0(prometheus, load_scenario):
    scenario = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=2)
    code, result = evaluate(prometheus.url, scenario)
    assert result["verdict"] == "pass", result["reason"]
    assert code == 0
    for signal in result["signals"]:
        assert signal["verdict"] == "pass", (signal["name"], signal["reason"])


def test_no_canary_series_is_nodata_with_exit_3(prometheus, load_scenario):
    scenario = load_scenario(canary_absent=True, baseline=ArmProfile(**BUSY), seed=3)
    code, result = evaluate(prometheus.url, scenario)
    assert code == 3
    assert result["verdict"] == "nodata"
    assert "canary" in by_name(result)["error-rate"]["reason"]


def test_canary_that_stopped_reporting_five_minutes_ago_does_not_pass(prometheus, load_scenario):
    from tests.fixtures.prometheus import current_step_ms

    end = current_step_ms()
    scenario = load_scenario(
        canary=ArmProfile(**BUSY),
        baseline=ArmProfile(**BUSY),
        seed=4,
        end_ms=end,
        canary_stops_at_ms=end - 300_000,
    )
    code, result = evaluate(prometheus.url, scenario)
    assert code == 3
    assert result["verdict"] == "nodata"
    assert "stopped reporting" in by_name(result)["error-rate"]["reason"]


def test_unreachable_prometheus_is_an_error_with_exit_3_and_a_clear_message(dead_prometheus_url):
    proc = run_cli(
        "evaluate", str(GATE), "--prometheus", dead_prometheus_url, "--arg", "service=x", "--window", "10m"
    )
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "ERROR" in proc.stdout
    assert "cannot reach Prometheus" in proc.stdout


def test_malformed_spec_exits_2_naming_the_field_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GATE.read_text().replace("tolerance: 0.2", "tolerance: lots"))
    proc = run_cli("evaluate", str(bad), "--prometheus", "http://127.0.0.1:9", "--arg", "service=x")
    assert proc.returncode == 2
    assert "signals[0].tolerance" in proc.stderr
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "tolerance: lots" in t)
    assert f"bad.yaml:{line}" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args", [["--window", "10m", "--start", "1"], ["--output", "yaml"], ["--stage", "9"]]
)
def test_bad_usage_exits_2(args):
    proc = run_cli("evaluate", str(GATE), "--arg", "service=x", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
