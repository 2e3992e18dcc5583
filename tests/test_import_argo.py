"""`gatekeeper import` of Argo Rollouts AnalysisTemplates (+ Rollout): conditions to bounds, limits, stages,
fail-open conditions, and the imported gate judged by `gatekeeper evaluate` against a real Prometheus."""

from __future__ import annotations

import math

import yaml

from gatekeeper.importers import import_texts
from gatekeeper.sim.scenario import ArmProfile
from gatekeeper.spec.outcome import Verdict
from tests.test_import_common import PEERS, cli, import_to, lint_ok


def _template(*metrics: str) -> str:
    body = "\n".join(metrics)
    return (
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: t\nspec:\n  metrics:\n"
        + body
    )


def _metric(name: str, condition: str, query: str = "sum(rate(x[1m]))") -> str:
    return (
        f"  - name: {name}\n    {condition}\n    provider:\n      prometheus:\n"
        f"        address: http://127.0.0.1:9090\n        query: '{query}'\n"
    )


def _signals(text: str) -> dict[str, dict]:
    return {s["name"]: s for s in import_texts([("t.yaml", text)]).gate["signals"]}


def test_rollout_and_templates_become_a_gate_that_lint_accepts(tmp_path):
    out, stderr = import_to(tmp_path, "argo/success-rate.yaml")
    lint_ok(out)
    gate = yaml.safe_load(out.read_text())
    assert [s["weight"] for s in gate["stages"]] == [20, 40, 60]
    assert gate["stages"][0]["minDuration"] == "600s"
    assert gate["stages"][2]["authority"]["mode"] == "approval"  # pause: {} is a manual promotion
    assert gate["progressDeadline"] == "900s"
    assert gate["consecutiveErrorLimit"] == 2  # the stricter of the templates' limits
    sig = {s["name"]: s for s in gate["signals"]}
    assert sig["success-rate"]["min"] == 0.95 and sig["success-rate"]["failureLimit"] == 3
    assert sig["success-rate"]["initialDelay"] == "30s"
    assert sig["total-errors"]["max"] == math.nextafter(100.0, -math.inf)  # failure `>= 100` -> pass `< 100`
    assert sig["total-4xx-errors"]["dryRun"] is True
    assert "${service_name}" in sig["success-rate"]["query"]
    assert {a["name"]: a.get("value") for a in gate["args"]}["service_name"] == "guestbook"
    assert "measurementRetention" in stderr and "success-rate.yaml:60" in stderr


def test_simple_condition_forms_become_threshold_bounds():
    sig = _signals(
        _template(
            _metric("a", "successCondition: result[0] >= 0.95"),
            _metric("b", "successCondition: 'result[0] < 100'"),
            _metric("c", "successCondition: result[0] > 0.9 && result[0] <= 1.1"),
            _metric("d", "failureCondition: result[0] > 5"),
            _metric("e", "successCondition: result >= 1\n    failureCondition: result < 0.5"),
        )
    )
    assert sig["a"]["min"] == 0.95 and "max" not in sig["a"]
    assert sig["b"]["max"] == math.nextafter(100.0, -math.inf)
    assert sig["c"]["min"] == math.nextafter(0.9, math.inf) and sig["c"]["max"] == 1.1
    assert sig["d"]["max"] == 5.0 and "min" not in sig["d"]
    assert sig["e"]["min"] == 1.0  # values in [0.5, 1) are Inconclusive in Argo and failed here (listed)


def test_a_condition_that_cannot_be_bounds_is_listed_and_blocks_without_allow_partial(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        _template(
            _metric("ok", "successCondition: result[0] >= 1"),
            _metric("split", "successCondition: result[0] < 1 || result[0] > 5"),
        )
    )
    refused = cli("import", str(path))
    assert refused.exit_code == 2
    assert "t.yaml:15: spec.metrics[1].successCondition" in refused.stderr, refused.stderr
    partial = cli("import", str(path), "--allow-partial")
    assert partial.exit_code == 0, partial.stderr
    assert [s["name"] for s in yaml.safe_load(partial.stdout)["signals"]] == ["ok"]


def test_a_promql_syntax_error_is_reported_with_its_file_and_line(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(_template(_metric("broken", "successCondition: result[0] >= 1", "sum(rate(x[1m])")))
    result = cli("import", str(path))
    assert result.exit_code == 2
    assert "t.yaml:12" in result.stderr and "PromQL does not parse" in result.stderr, result.stderr


def test_a_template_the_rollout_names_but_the_inputs_lack_is_named_and_blocks(tmp_path):
    text = (
        (PEERS / "argo" / "success-rate.yaml")
        .read_text()
        .replace("templateName: error-count", "templateName: latency")
    )
    path = tmp_path / "rollout.yaml"
    path.write_text(text)
    result = cli("import", str(path))
    assert result.exit_code == 2
    assert "template 'latency'" in result.stderr and "rollout.yaml:16" in result.stderr


def test_every_fail_open_condition_warns_and_the_gate_does_not_pass_on_empty_data(tmp_path, prometheus):
    out, stderr = import_to(tmp_path, "argo/fail-open.yaml")
    lint_ok(out)
    warnings = [ln for ln in stderr.splitlines() if ln.startswith("warning:")]
    assert any("metrics[0]" in w and "empty result" in w for w in warnings), stderr
    assert any("metrics[1]" in w and "NaN" in w for w in warnings), stderr
    assert any("metrics[2]" in w and "or vector(0)" in w for w in warnings), stderr
    assert any("metrics[3]" in w and "no success or failure condition" in w for w in warnings), stderr
    assert any("metrics[4]" in w and "empty result" in w for w in warnings), stderr  # default(result, 0)
    gate = yaml.safe_load(out.read_text())
    assert "vector(0)" not in {s["name"]: s for s in gate["signals"]}["errors-per-minute"]["query"]
    result = cli(
        "evaluate",
        str(out),
        "--prometheus",
        prometheus.url,
        "--arg",
        "service_name=nothing-here",
        "--window",
        "10m",
        "--output",
        "json",
    )
    assert result.exit_code == 3, result.stdout  # NODATA: not a pass
    assert '"verdict": "nodata"' in result.stdout


def test_the_imported_gate_passes_a_healthy_canary_and_fails_a_bad_one(tmp_path, prometheus, load_scenario):
    out, _ = import_to(
        tmp_path,
        "argo/success-rate.yaml",
        extra=("--arg", f"prometheus-port={prometheus.url.rsplit(':', 1)[1]}"),
    )
    healthy = load_scenario(
        canary=ArmProfile(error_ratio=0.005), baseline=ArmProfile(error_ratio=0.005), seed=3
    )
    bad = load_scenario(canary=ArmProfile(error_ratio=0.2), baseline=ArmProfile(error_ratio=0.005), seed=4)
    verdicts = {}
    for label, scenario in (("healthy", healthy), ("bad", bad)):
        end = scenario.end_ms // 1000
        result = cli(
            "evaluate",
            str(out),
            "--arg",
            f"service_name={scenario.service}",
            "--start",
            str(end - 1800),
            "--end",
            str(end),
            "--output",
            "json",
        )
        verdicts[label] = (result.exit_code, yaml.safe_load(result.stdout))
    assert verdicts["healthy"][0] == 0, verdicts["healthy"][1]["reason"]
    code, bad_result = verdicts["bad"]
    assert code == 1 and bad_result["verdict"] == Verdict.FAIL.value
    failing = {s["name"] for s in bad_result["signals"] if s["verdict"] == "fail"}
    assert {"success-rate", "total-errors"} <= failing
