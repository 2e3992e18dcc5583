"""`gatekeeper import` of the unusual shapes the peers publish in their docs and test resources: fragments
without apiVersion/kind, elided examples, templates in templates, templates no Rollout references, Kayenta
filters from `templates` in any quoting, label bindings on the default scope label. Each converts, or fails
with a reason that names its file and line; never a traceback."""

from __future__ import annotations

import copy
import json
import math
import re

import pytest
import yaml

from gatekeeper.importers import ImportInputError, import_texts
from tests.test_import_common import PEERS, cli, import_to, lint_ok


def _lines(stderr: str, kind: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(f"{kind}:")]


def test_a_bare_analysis_template_spec_is_recognised_by_shape_and_its_invalid_promql_reported_with_its_line():
    result = cli("import", str(PEERS / "argo" / "bare-metrics.yaml"))
    assert result.exit_code == 2
    assumed = _lines(result.stderr, "assumption")
    assert any(
        "bare-metrics.yaml:3" in ln and "AnalysisTemplate" in ln and "no apiVersion/kind" in ln
        for ln in assumed
    )
    errors = _lines(result.stderr, "error")
    assert any(
        "bare-metrics.yaml:10: spec.metrics[0].provider.prometheus.query: PromQL does not parse" in ln
        for ln in errors
    ), result.stderr


def test_a_bare_single_metric_without_a_name_is_named_after_its_file():
    text = "provider:\n  prometheus:\n    address: http://p:9090\n    query: sum(up)\nsuccessCondition: result[0] >= 1\n"
    result = import_texts([("up-check.yaml", text)])
    assert [s["name"] for s in result.gate["signals"]] == ["up-check"]
    assert result.gate["signals"][0]["min"] == 1.0
    assert any("single Argo metric without a name" in n.reason for n in result.report.of("assumption"))


def test_a_kind_without_apiversion_is_read_as_the_peer_kind_it_names():
    text = (
        (PEERS / "argo" / "success-rate.yaml").read_text().replace("apiVersion: argoproj.io/v1alpha1\n", "")
    )
    result = import_texts([("r.yaml", text)])
    assert result.family == "argo" and len(result.gate["signals"]) == 3
    assert any(
        "no apiVersion: read as argoproj.io/v1alpha1 Rollout" in n.reason
        for n in result.report.of("assumption")
    )


def test_an_analysis_template_that_lists_other_templates_resolves_them_and_names_a_missing_one(tmp_path):
    out, _ = import_to(tmp_path, "argo/templates-in-template.yaml")
    lint_ok(out)
    assert [s["name"] for s in yaml.safe_load(out.read_text())["signals"]] == ["success-rate", "error-rate"]
    text = (PEERS / "argo" / "templates-in-template.yaml").read_text()
    without = text.split("---")[0] + "---" + text.split("---")[2]  # the error-rate template is not given
    path = tmp_path / "rates.yaml"
    path.write_text(without)
    result = cli("import", str(path))
    assert result.exit_code == 2
    line = without.splitlines().index("  - templateName: error-rate") + 1
    assert f"rates.yaml:{line}: spec.templates[1]: template 'error-rate'" in result.stderr, result.stderr


def test_a_template_beside_a_rollout_that_does_not_reference_it_is_imported_with_a_note(tmp_path):
    out, stderr = import_to(tmp_path, "argo/unreferenced.yaml")
    lint_ok(out)
    gate = yaml.safe_load(out.read_text())
    assert [s["weight"] for s in gate["stages"]] == [10, 50]
    assert [s["name"] for s in gate["signals"]] == ["error-rate"] and gate["signals"][0]["max"] == 0.01
    assert any(
        "unreferenced.yaml:16" in ln and "not referenced by Rollout 'checkout'" in ln
        for ln in _lines(stderr, "assumption")
    )


def test_elided_published_rollouts_import_and_pod_template_hashes_become_the_arm_arguments(tmp_path):
    out, stderr = import_to(tmp_path, "argo/elided-rollout.yaml")
    lint_ok(out)
    assert any("line(s) 9, 19: '...'" in ln for ln in _lines(stderr, "assumption")), stderr
    gate = yaml.safe_load(out.read_text())
    query = gate["signals"][0]["query"]
    assert query.count("${canary_hash}") == 2 and query.count("${stable_hash}") == 2
    assert "latest_hash" not in query and "stable_hash}" in query
    assert {a["name"] for a in gate["args"]} == {"service_name", "canary_hash", "stable_hash"}


def test_a_document_end_marker_still_ends_a_document():
    text = (PEERS / "argo" / "success-rate.yaml").read_text().replace("\n---\n", "\n...\n---\n", 1)
    result = import_texts([("r.yaml", text)])
    assert not any("omitted part" in n.reason for n in result.report.notes)


def test_a_range_query_with_all_values_becomes_a_per_step_bound():
    result = import_texts([("r.yaml", (PEERS / "argo" / "range-query.yaml").read_text())])
    sig = result.gate["signals"][0]
    assert sig["max"] == math.nextafter(1000.0, -math.inf) and sig["failureLimit"] == 3
    assert any(n.field.endswith("rangeQuery") for n in result.report.of("unexpressed"))


def test_blue_green_pre_promotion_analysis_references_its_templates():
    rollout = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: guestbook}\nspec:\n  strategy:\n"
        "    blueGreen:\n      activeService: active-svc\n      prePromotionAnalysis:\n        templates:\n"
        "        - templateName: smoke-tests\n        args:\n        - name: service-name\n"
        "          value: preview-svc.default.svc.cluster.local\n"
    )
    template = (
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: smoke-tests}\nspec:\n"
        "  args: [{name: service-name}]\n  metrics:\n  - name: up\n    successCondition: result[0] >= 1\n"
        "    provider: {prometheus: {query: 'sum(up{service=\"{{args.service-name}}\"})'}}\n"
    )
    result = import_texts([("r.yaml", rollout), ("t.yaml", template)])
    assert not result.report.blocking
    assert {a["name"]: a.get("value") for a in result.gate["args"]}[
        "service_name"
    ] == "preview-svc.default.svc.cluster.local"
    assert any("prePromotionAnalysis" in n.field for n in result.report.of("assumption"))


def test_a_flagger_analysis_block_published_alone_imports_beside_its_metric_template(tmp_path):
    out, stderr = import_to(tmp_path, "flagger/analysis-fragment.yaml")
    lint_ok(out)
    assert any("analysis-fragment.yaml:34" in ln and "Canary" in ln for ln in _lines(stderr, "assumption")), (
        stderr
    )
    sig = yaml.safe_load(out.read_text())["signals"]
    assert [s["name"] for s in sig] == ["404s-percentage"] and sig[0]["max"] == 5


def test_a_keptn_objectives_block_published_alone_is_an_analysis_definition():
    text = (PEERS / "keptn" / "analysis-definition.yaml").read_text()
    docs = text.split("---")
    spec_only = "objectives:" + docs[0].split("objectives:")[1].split("totalScore")[0]
    result = import_texts([("definition.yaml", spec_only), ("templates.yaml", "---".join(docs[1:]))])
    assert result.family == "keptn" and len(result.gate["signals"]) == 3
    assert any("AnalysisDefinition" in n.reason for n in result.report.of("assumption"))


def test_kayenta_filter_templates_with_a_single_quoted_scope_resolve_and_muted_metrics_never_score(tmp_path):
    out, _ = import_to(tmp_path, "kayenta/quoted-template.json")
    lint_ok(out)
    gate = yaml.safe_load(out.read_text())
    assert gate["scopes"]["canary"] == {"scope": "${canary_scope}"}
    sig = {s["name"]: s for s in gate["signals"]}
    assert (
        sig["cpu-usage-for-service"]["query"]
        == "avg(integration_test_cpu{namespace='${namespace}',${selector}})"
    )
    assert sig["cpu-usage-for-service"]["weight"] == 100
    assert sig["failing-metric"]["dryRun"] is True and "weight" not in sig["failing-metric"]


def test_kayenta_label_bindings_fall_back_on_the_default_scope_label_unless_told_another(tmp_path):
    out, stderr = import_to(tmp_path, "kayenta/label-bindings.json")
    lint_ok(out)
    gate = yaml.safe_load(out.read_text())
    assert gate["scopes"]["canary"] == {"instance": "${canary_scope}"}
    assert gate["signals"][0]["query"] == 'avg(node_cpu{mode=~"user|system",${selector}})'
    assert any(
        "label-bindings.json:10" in ln and "default scope label" in ln for ln in _lines(stderr, "assumption")
    )
    out2, stderr2 = import_to(tmp_path, "kayenta/label-bindings.json", extra=("--arg", "scope_label=pod"))
    assert yaml.safe_load(out2.read_text())["scopes"]["baseline"] == {"pod": "${baseline_scope}"}
    assert "default scope label" not in stderr2


def test_kayenta_gce_instances_select_the_scope_label_as_kayenta_builds_it():
    config = json.loads((PEERS / "kayenta" / "label-bindings.json").read_text())
    config["metrics"][0]["query"]["resourceType"] = "gce_instance"
    result = import_texts([("c.json", json.dumps(config, indent=2))], args={"scope_label": "instance"})
    # PrometheusMetricsServiceSpec: 'avg(some-metric-name{a=b,instance=~"some-server-group-.{4}",zone=~".+/zones/us-central1-.{1}"})'
    assert (
        result.gate["signals"][0]["query"]
        == 'avg(node_cpu{mode=~"user|system",${selector},zone=~".+/zones/${location}-.{1}"})'
    )
    assert result.gate["scopes"]["canary"] == {"instance": "=~${canary_scope}-.{4}"}


def test_a_kayenta_filter_on_another_variable_tells_the_arms_apart_as_an_assumption():
    config = json.loads((PEERS / "kayenta" / "label-bindings.json").read_text())
    # json-formats.md "MySampleK8SPrometheusCanaryConfigWithCustomFilterTemplate"
    config["metrics"][0]["query"] = {"type": "prometheus", "metricName": "container_cpu_usage_seconds_total",
                                     "labelBindings": [], "customFilterTemplate": "my-template"}  # fmt: skip
    config["templates"] = {"my-template": "container_name='${container_name}'"}
    result = import_texts([("c.json", json.dumps(config, indent=2))])
    assert result.gate["scopes"]["canary"] == {"container_name": "${canary_scope}"}
    assert any("${container_name}" in n.reason for n in result.report.of("assumption"))


def test_an_unquoted_kayenta_filter_with_a_label_prometheus_cannot_parse_is_an_error_on_its_line():
    config = json.loads((PEERS / "kayenta" / "quoted-template.json").read_text())
    config["templates"] = {
        "standard-template": "some-label=${scope}"
    }  # PrometheusMetricsServiceSpec's template
    text = json.dumps(config, indent=2)
    result = import_texts([("c.json", text)])
    errors = [n for n in result.report.of("error") if "not a Prometheus label name" in n.reason]
    assert errors and errors[0].line == text.splitlines().index('      "query": {') + 1


def _wrong_kind(value: object) -> object:
    return "x" if isinstance(value, (dict, list)) else [1]


@pytest.mark.parametrize(
    "name",
    [
        "argo/success-rate.yaml",
        "flagger/podinfo.yaml",
        "kayenta/checkout-canary.json",
        "keptn/analysis-definition.yaml",
        "keptn/slo.yaml",
    ],
)
def test_every_field_of_a_peer_example_given_the_wrong_kind_fails_with_a_line_never_a_traceback(name):
    docs = [d for d in yaml.safe_load_all((PEERS / name).read_text()) if d is not None]
    checked = 0
    for di, doc in enumerate(docs):
        for path in _paths(doc):
            mutated = copy.deepcopy(docs)
            target = mutated[di]
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = _wrong_kind(target[path[-1]])
            text = yaml.safe_dump_all(mutated, sort_keys=False)
            try:
                result = import_texts([("m.yaml", text)])
            except ImportInputError as e:
                assert re.search(r"m\.yaml:\d+", str(e)), (path, str(e))
            else:
                assert all(n.line for n in result.report.blocking), (path, result.report.lines())
            checked += 1
    assert checked > 20


def _paths(obj: object, path: tuple = ()) -> list[tuple]:
    out = [path] if path else []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        out += _paths(v, (*path, k))
    return out
