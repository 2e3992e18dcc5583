"""`gatekeeper import` of Keptn quality gates: v1 slo.yaml + sli.yaml (placeholders, criteria, weights, key
SLIs, total score) and v2 AnalysisDefinition (targets turned into pass/warning criteria); fail-open forms;
the imported gate scored in `mode: keptn` against a real Prometheus."""

from __future__ import annotations

import yaml

from gatekeeper.evaluation import judge_gate, open_prometheus
from gatekeeper.importers import import_texts
from gatekeeper.sim.scenario import ArmProfile
from gatekeeper.spec import load_gate_text
from gatekeeper.spec.outcome import Verdict
from tests.test_import_common import BUSY, cli, import_to, lint_ok, load_relabelled, unique_service, window_of


def _deployment(labels: dict[str, str]) -> dict[str, str]:
    """Keptn's arms: `deployment` is canary or primary."""
    return {**labels, "deployment": "canary" if labels["track"] == "canary" else "primary"}


def _score(path, url: str, scenario, **args: str):  # type: ignore[no-untyped-def]
    gate = load_gate_text(path.read_text(), args=args or None)
    source = open_prometheus(gate, url=url)
    try:
        return judge_gate(gate, metrics=source, window=window_of(scenario))
    finally:
        source.close()


def test_slo_and_sli_become_a_keptn_mode_gate_that_lint_accepts(tmp_path):
    out, stderr = import_to(tmp_path, "keptn/slo.yaml", "keptn/sli.yaml", extra=("--arg", "service=checkout"))
    lint_ok(out)
    gate = yaml.safe_load(out.read_text())
    assert gate["mode"] == "keptn" and gate["scoring"] == {"passScore": 90, "marginalScore": 75}
    assert gate["scopes"] == {"canary": {"deployment": "canary"}, "baseline": {"deployment": "primary"}}
    sig = {s["name"]: s for s in gate["signals"]}
    assert sig["error-rate"]["passCriteria"] == ["<=+10%", "<0.02"] and sig["error-rate"]["key"] is True
    assert sig["error-rate"]["weight"] == 2 and sig["response-time-p95"]["warningCriteria"] == ["<=800"]
    assert sig["error-rate"]["query"].count("${selector}") == 2 and "${window}" in sig["error-rate"]["query"]
    assert sig["throughput"]["dryRun"] is True  # no pass criteria: informational, as in Keptn
    assert "comparison" in stderr and "slo.yaml:5" in stderr


def test_or_blocks_and_missing_slis_are_handled_as_keptn_defines_them(tmp_path):
    slo = (
        'spec_version: "1.0"\nobjectives:\n  - sli: latency\n    pass:\n      - criteria: ["<1000"]\n'
        '      - criteria: ["<=+10%"]\n  - sli: missing\n    pass:\n      - criteria: ["<1"]\n'
        'total_score:\n  pass: "90%"\n'
    )
    sli = "spec_version: '1.0'\nindicators:\n  latency: sum(rate(x{deployment=\"$DEPLOYMENT\"}[$DURATION_SECONDS]))\n"
    result = import_texts([("slo.yaml", slo), ("sli.yaml", sli)])
    sig = {s["name"]: s for s in result.gate["signals"]}
    assert sig["latency"]["passCriteria"] == ["<1000 || <=+10%"]
    unresolved = result.report.of("unresolved")
    assert unresolved and unresolved[0].line == 7 and "missing" in unresolved[0].reason
    path = tmp_path / "slo.yaml"
    path.write_text(slo)
    (tmp_path / "sli.yaml").write_text(sli)
    assert cli("import", str(path), str(tmp_path / "sli.yaml")).exit_code == 2


def test_fail_open_forms_warn_and_the_gate_does_not_pass_on_empty_data(tmp_path, prometheus, load_scenario):
    no_criteria = 'spec_version: "1.0"\nobjectives:\n  - sli: throughput\ntotal_score:\n  pass: "90%"\n'
    sli = "spec_version: '1.0'\nindicators:\n  throughput: sum(rate(x{deployment=\"$DEPLOYMENT\"}[1m]))\n"
    result = import_texts([("slo.yaml", no_criteria), ("sli.yaml", sli)])
    assert any("score 100" in n.reason for n in result.report.of("warning"))
    out, stderr = import_to(tmp_path, "keptn/analysis-definition.yaml")
    lint_ok(out)
    assert "no failure or warning target" in stderr and "or vector(1)" in stderr
    empty = load_scenario(canary_absent=True, baseline=ArmProfile(requests_per_second=0.0))
    judged = _score(out, prometheus.url, empty, service="nobody-at-all")
    assert judged.mode == "keptn" and judged.verdict != Verdict.PASS, judged.reason
    assert judged.verdict in (Verdict.NODATA, Verdict.INCONCLUSIVE)


def test_v2_targets_turn_into_pass_and_warning_criteria(tmp_path):
    out, _ = import_to(tmp_path, "keptn/analysis-definition.yaml")
    gate = yaml.safe_load(out.read_text())
    sig = {s["name"]: s for s in gate["signals"]}
    # fail if > 600, warn if in [300, 600]: pass needs <= 600 and outside [300, 600]
    assert sig["response-time-p95"]["passCriteria"] == ["<=600", "<300 || >600"]
    assert sig["response-time-p95"]["warningCriteria"] == ["<=600"]
    assert sig["error-ratio"]["passCriteria"] == ["<0.05"] and sig["error-ratio"]["key"] is True  # 50m = 0.05
    assert gate["source"]["prometheus"]["url"] == "http://127.0.0.1:9090"
    assert {a["name"]: a.get("value") for a in gate["args"]} == {"service": "checkout"}


def test_the_imported_gate_scores_healthy_bad_and_absent_canaries(tmp_path, prometheus, request):
    out, _ = import_to(tmp_path, "keptn/slo.yaml", "keptn/sli.yaml")
    service = unique_service(request.node.name)
    healthy = load_relabelled(
        prometheus,
        service=service,
        relabel=_deployment,
        seed=21,
        canary=ArmProfile(**BUSY),
        baseline=ArmProfile(**BUSY),
    )
    judged = _score(out, prometheus.url, healthy, service=service)
    assert judged.verdict == Verdict.PASS, (judged.reason, [(s.name, s.reason) for s in judged.signals])
    assert "total score 100.00%" in judged.reason
    assert {s.name: s.evidence.contribution for s in judged.signals} == {
        "error-rate": 66.6667,
        "response-time-p95": 33.3333,
        "throughput": 0.0,
    }
    bad = load_relabelled(
        prometheus,
        service=f"{service}-bad",
        relabel=_deployment,
        seed=22,
        canary=ArmProfile(requests_per_second=100, error_ratio=0.1),
        baseline=ArmProfile(**BUSY),
    )
    judged = _score(out, prometheus.url, bad, service=f"{service}-bad")
    assert judged.verdict == Verdict.FAIL and "key objective error-rate" in judged.reason
    absent = load_relabelled(
        prometheus,
        service=f"{service}-absent",
        relabel=_deployment,
        seed=23,
        canary_absent=True,
        baseline=ArmProfile(**BUSY),
    )
    judged = _score(out, prometheus.url, absent, service=f"{service}-absent")
    assert judged.verdict == Verdict.NODATA, judged.reason
