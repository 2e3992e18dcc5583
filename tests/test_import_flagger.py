"""`gatekeeper import` of a Flagger Canary with MetricTemplates: builtins rendered for the mesh provider with
a comparative companion, thresholdRange bounds, shared failed-check threshold, webhooks, fail-open metrics;
the imported gate judged against a real Prometheus holding Istio-shaped series."""

from __future__ import annotations

import yaml

from gatekeeper.sim.scenario import ArmProfile
from gatekeeper.spec.outcome import Verdict
from tests.test_import_common import (
    BUSY,
    PEERS,
    cli,
    evaluate_file,
    import_to,
    lint_ok,
    load_relabelled,
    unique_service,
)

# Flagger's documented success-rate floor (99%) leaves little room: 0.5% errors, and enough traffic for the
# comparative ratio to bound the canary/primary ratio below its tolerance in 30 minutes.
HEAVY = {"requests_per_second": 300.0, "error_ratio": 0.005}


def istio(target: str, namespace: str = "test"):  # type: ignore[no-untyped-def]
    """The simulator's series as Istio reports them for a Flagger canary: workload `target` (the canary) and
    `target-primary` (the baseline), milliseconds for durations."""

    def relabel(labels: dict[str, str]) -> dict[str, str] | None:
        name = labels["__name__"]
        workload = target if labels["track"] == "canary" else f"{target}-primary"
        base = {
            "reporter": "destination",
            "destination_workload_namespace": namespace,
            "destination_workload": workload,
            "instance": labels["instance"],
        }
        if name == "http_request_duration_seconds_count":
            return {"__name__": "istio_request_duration_milliseconds_count", **base}
        if name == "http_requests_total":
            return {"__name__": "istio_requests_total", **base, "response_code": labels["code"]}
        if name == "http_request_duration_seconds_bucket":
            le = labels["le"]
            ms = le if le == "+Inf" else repr(float(le) * 1000)
            return {"__name__": "istio_request_duration_milliseconds_bucket", **base, "le": ms}
        return None

    return relabel


def test_canary_with_builtins_and_a_template_becomes_a_gate_that_lint_accepts(tmp_path):
    out, stderr = import_to(tmp_path, "flagger/podinfo.yaml")
    lint_ok(out)
    gate = yaml.safe_load(out.read_text())
    assert (gate["maxWeight"], gate["stepWeight"], gate["interval"]) == (50, 5, "60s")
    assert gate["progressDeadline"] == "60s"
    assert gate["scopes"]["baseline"]["destination_workload"] == "podinfo-primary"
    sig = {s["name"]: s for s in gate["signals"]}
    assert sig["request-success-rate"]["min"] == 99 and sig["request-duration"]["max"] == 500
    assert sig["500s-percentage"]["max"] == 5 and "${target}" in sig["500s-percentage"]["query"]
    assert sig["request-error-ratio"]["kind"] == "ratio" and sig["request-duration-p99"]["kind"] == "latency"
    # threshold 10 shared by 3 metrics: each tolerates floor(9 / 3) failed steps, never weaker than Flagger
    assert {
        sig[n]["failureLimit"] for n in ("request-success-rate", "request-duration", "500s-percentage")
    } == {3}
    hooks = {h["name"]: h for h in gate["hooks"]}
    assert hooks["load-test"]["type"] == "rollout" and hooks["load-test"]["timeout"] == "5s"
    assert hooks["promotion gate"]["timeout"] == "10s"  # Flagger's default
    assert "spec.service" in stderr


def test_an_unresolved_template_ref_is_named_and_blocks_unless_partial(tmp_path):
    text = (PEERS / "flagger" / "podinfo.yaml").read_text().split("\n---\n")[0]
    path = tmp_path / "canary.yaml"
    path.write_text(text)
    refused = cli("import", str(path))
    assert refused.exit_code == 2
    assert "MetricTemplate istio-system/server-error-percentage" in refused.stderr
    assert "canary.yaml:33" in refused.stderr, refused.stderr
    partial = cli("import", str(path), "--allow-partial")
    assert partial.exit_code == 0
    assert "500s-percentage" not in partial.stdout.split("signals:")[1]


def test_fail_open_metrics_warn_and_the_gate_does_not_pass_on_empty_data(tmp_path, prometheus):
    out, stderr = import_to(tmp_path, "flagger/fail-open.yaml")
    lint_ok(out)
    warnings = [ln for ln in stderr.splitlines() if ln.startswith("warning:")]
    assert any("checkout-errors" in w and "neither a builtin name nor a templateRef" in w for w in warnings)
    assert any("or vector(100)" in w for w in warnings)
    gate = yaml.safe_load(out.read_text())
    assert gate["stepWeights"] == [1, 5, 25, 50]
    assert all("vector(100)" not in s.get("query", "") for s in gate["signals"])
    result = cli("evaluate", str(out), "--prometheus", prometheus.url, "--window", "10m", "-o", "json")
    assert result.exit_code == 3, result.stdout
    verdicts = {s["name"]: s["verdict"] for s in yaml.safe_load(result.stdout)["signals"]}
    assert verdicts == {"checkout-errors": "nodata", "success-percentage": "nodata"}


def test_the_imported_gate_passes_a_healthy_canary_and_fails_a_bad_one(tmp_path, prometheus, request):
    out, _ = import_to(tmp_path, "flagger/podinfo.yaml")
    target = unique_service(request.node.name)
    text = out.read_text().replace("destination_workload: podinfo", f"destination_workload: {target}")
    out.write_text(text)
    healthy = load_relabelled(
        prometheus,
        service=target,
        relabel=istio(target),
        seed=5,
        canary=ArmProfile(**HEAVY),
        baseline=ArmProfile(**HEAVY),
    )
    judged = evaluate_file(out, prometheus.url, healthy, target=target)
    assert judged.verdict == Verdict.PASS, "\n".join(
        f"{s.name} {s.verdict} {s.reason}" for s in judged.signals
    )
    bad_target = f"{target}-bad"
    text = out.read_text().replace(f"destination_workload: {target}", f"destination_workload: {bad_target}")
    out.write_text(text)
    bad = load_relabelled(
        prometheus,
        service=bad_target,
        relabel=istio(bad_target),
        seed=6,
        canary=ArmProfile(requests_per_second=100, error_ratio=0.05),
        baseline=ArmProfile(**BUSY),
    )
    judged = evaluate_file(out, prometheus.url, bad, target=bad_target)
    assert judged.verdict == Verdict.FAIL
    failing = {s.name for s in judged.signals if s.verdict == Verdict.FAIL}
    assert {"request-success-rate", "request-error-ratio", "500s-percentage"} <= failing


def test_ab_testing_iterations_with_one_match_become_one_ab_stage(tmp_path):
    out, _ = import_to(tmp_path, "flagger/ab-testing.yaml")
    lint_ok(out)
    gate = yaml.safe_load(out.read_text())
    assert gate["stages"] == [
        {
            "weight": 0,
            "minDuration": "600s",  # iterations x interval
            "match": {"headers": {"x-canary": "insider"}, "cookie": {"name": "canary", "value": "always"}},
        }
    ]


def test_ab_testing_with_either_of_two_matches_is_listed_not_narrowed(tmp_path):
    out, stderr = import_to(tmp_path, "flagger/ab-testing-any.yaml")
    lint_ok(out)
    gate = yaml.safe_load(out.read_text())
    assert all("match" not in s for s in gate.get("stages", []))
    assert "several match entries" in stderr and "iterations" in stderr


def test_mirrored_blue_green_becomes_one_shadow_stage(tmp_path):
    out, _ = import_to(tmp_path, "flagger/mirroring.yaml")
    lint_ok(out)
    gate = yaml.safe_load(out.read_text())
    assert gate["stages"] == [{"weight": 0, "minDuration": "600s", "mirror": 100.0}]
    assert gate["revertOnDeletion"] is True
