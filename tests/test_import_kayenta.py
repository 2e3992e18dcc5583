"""`gatekeeper import` of a Kayenta canary config: Prometheus templates to per-arm queries, groups and weights,
effect sizes, fail-open settings; the imported gate scored in `mode: kayenta` against a real Prometheus."""

from __future__ import annotations

import json

import yaml

from gatekeeper.evaluation import judge_gate, open_prometheus
from gatekeeper.importers import import_texts
from gatekeeper.sim.scenario import ArmProfile
from gatekeeper.spec import load_gate_text
from gatekeeper.spec.outcome import Verdict
from tests.test_import_common import BUSY, PEERS, cli, import_to, lint_ok, window_of


def _score(path, url: str, scenario, **args: str):  # type: ignore[no-untyped-def]
    gate = load_gate_text(path.read_text(), args=args)
    source = open_prometheus(gate, url=url)
    try:
        return judge_gate(gate, metrics=source, window=window_of(scenario))
    finally:
        source.close()


def test_canary_config_becomes_a_kayenta_mode_gate_that_lint_accepts(tmp_path):
    out, stderr = import_to(tmp_path, "kayenta/checkout-canary.json")
    lint_ok(out)
    gate = yaml.safe_load(out.read_text())
    assert gate["mode"] == "kayenta"
    assert gate["scoring"] == {"passScore": 95, "marginalScore": 75}
    assert gate["scopes"] == {
        "canary": {"track": "${canary_scope}"},
        "baseline": {"track": "${baseline_scope}"},
    }
    sig = {s["name"]: s for s in gate["signals"]}
    errors = sig["http-errors"]
    assert errors["query"].count("${selector}") == 2 and "${scope}" not in errors["query"]
    assert (errors["group"], errors["weight"], errors["critical"]) == ("Errors", 60, True)
    assert (errors["direction"], errors["tolerance"]) == ("increase", 0.2)  # allowedIncrease 1.2
    assert sig["mean-latency"]["weight"] == 40 and sig["mean-latency"]["tolerance"] == 0.1
    assert "criticalIncrease" in stderr and "checkout-canary.json:23" in stderr


def test_fail_open_settings_warn_and_inexpressible_fields_are_listed(tmp_path):
    out, stderr = import_to(tmp_path, "kayenta/filter-template.json")
    lint_ok(out)
    lines = stderr.splitlines()
    for expected in ("nanStrategy: metric 'request rate': 'replace'", "or vector(0)", "group 'Traffic'"):
        assert any(ln.startswith("warning:") and expected in ln for ln in lines), (expected, stderr)
    for expected in ("reads datadog", "asymmetric effect sizes"):
        assert any(ln.startswith("unexpressed:") and expected in ln for ln in lines), (expected, stderr)
    gate = yaml.safe_load(out.read_text())
    sig = {s["name"]: s for s in gate["signals"]}
    assert sig["request-rate"]["query"] == 'avg(http_requests_total{${selector},code="200"})'
    assert sig["request-rate"]["weight"] == 30  # the unweighted group gets what is left of 100
    assert "vector(0)" not in sig["server-errors"]["query"]
    outlier_metrics = [s for s in gate["signals"] if s.get("outliers") == "remove"]
    assert outlier_metrics and all(s["outlierFactor"] == 3.0 for s in outlier_metrics)
    assert "outliers are kept" not in stderr


def test_the_run_request_scopes_and_thresholds_fill_the_gate():
    config = json.loads((PEERS / "kayenta" / "checkout-canary.json").read_text())
    del config["classifier"]["scoreThresholds"]
    wrapped = {
        "canaryConfig": config,
        "executionRequest": {
            "scopes": {
                "default": {
                    "controlScope": {"scope": "baseline", "step": 30},
                    "experimentScope": {"scope": "canary"},
                }
            },
            "thresholds": {"pass": 90, "marginal": 50},
        },
    }
    result = import_texts([("run.json", json.dumps(wrapped, indent=2))])
    gate = result.gate
    values = {a["name"]: a.get("value") for a in gate["args"]}
    assert (values["canary_scope"], values["baseline_scope"]) == ("canary", "baseline")
    assert gate["scoring"] == {"passScore": 90, "marginalScore": 50}
    assert gate["source"]["prometheus"]["step"] == "30s"


def test_all_nodata_fails_closed_in_kayenta_mode(tmp_path, prometheus, load_scenario):
    out, _ = import_to(tmp_path, "kayenta/filter-template.json")
    empty = load_scenario(canary_absent=True, baseline=ArmProfile(requests_per_second=0.0))
    judged = _score(out, prometheus.url, empty, canary_scope="nobody", baseline_scope="nobody-either")
    assert judged.mode == "kayenta"
    assert judged.verdict in (Verdict.NODATA, Verdict.ERROR), judged.reason


def test_the_imported_gate_scores_healthy_bad_and_absent_canaries(tmp_path, prometheus, load_scenario):
    out, _ = import_to(tmp_path, "kayenta/checkout-canary.json")
    healthy = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=11)
    judged = _score(out, prometheus.url, healthy, service=healthy.service)
    assert judged.verdict == Verdict.PASS, (judged.reason, [(s.name, s.reason) for s in judged.signals])
    assert judged.mode == "kayenta" and "score 100.00" in judged.reason
    contributions = {s.name: s.evidence.contribution for s in judged.signals}
    assert contributions == {"http-errors": 60.0, "mean-latency": 40.0}
    bad = load_scenario(
        canary=ArmProfile(requests_per_second=100, error_ratio=0.05), baseline=ArmProfile(**BUSY), seed=12
    )
    judged = _score(out, prometheus.url, bad, service=bad.service)
    assert judged.verdict == Verdict.FAIL and judged.critical_failure
    assert {s.name: s.evidence.label for s in judged.signals}["http-errors"] == "High"
    absent = load_scenario(canary_absent=True, baseline=ArmProfile(**BUSY), seed=13)
    judged = _score(out, prometheus.url, absent, service=absent.service)
    assert judged.verdict == Verdict.NODATA, judged.reason
    assert cli("lint", str(out)).exit_code == 0
