"""`gatekeeper controller run --metrics-port --dashboard-port --config`: the controller process (the real CLI entry
point, forked from the preloaded fork server) on the real API server and the real Prometheus, its `/metrics`
scraped over real HTTP and parsed with prometheus_client's own parser.

Three gates on one controller: a healthy canary promoted through five stages, a bad one reverted by the analysis
at the first stage, and one an operator aborts (`gatekeeper abort`'s function). Only the revert is an analysis
abort. Every signal kind in the healthy gate exports its measured value next to its limit. The gates name no
Prometheus: the URL comes from `--config`, the defaults file the Helm chart mounts.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.ops import actions
from gatekeeper.sim.scenario import ArmProfile
from tests.controller_support import (
    BUSY,
    FAST_LEASE,
    FIVE_STAGES,
    ControllerProcess,
    create_gate,
    gate_body,
    gate_status,
    httproute,
    install_gate_crd,
    wait_for,
)

pytestmark = pytest.mark.k8s
RATE = 60.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def crd(kube_admin):  # type: ignore[no-untyped-def]
    install_gate_crd(kube_admin)


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(m: Samples, name: str, **labels: str) -> float | None:
    return m.get((name, tuple(sorted(labels.items()))))


def of_gate(m: Samples, name: str, gate: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(kv for kv in labels if kv[0] != "gate"): v
        for (n, labels), v in m.items()
        if n == name and ("gate", gate) in labels
    }


def dry(signal: dict[str, Any]) -> dict[str, Any]:
    return {
        **signal,
        "dryRun": True,
    }  # measured and exported, never voting: the decisions stay the error rate's


EVERY_KIND = [
    {"name": "error-rate", "kind": "ratio", "bad": 'http_requests_total{code=~"5.."}',
     "total": "http_requests_total", "tolerance": 0.5, "critical": True},
    dry({"name": "latency-p99", "kind": "latency", "histogram": "http_request_duration_seconds",
         "quantile": 0.99, "tolerance": 0.5}),
    dry({"name": "request-rate", "kind": "threshold", "query": "sum(rate(http_requests_total{${selector}}[1m]))",
         "min": 1, "max": 100000}),
    dry({"name": "telemetry", "kind": "health", "series": ["http_requests_total"], "maxStaleness": "2m"}),
]  # fmt: skip


def controller_args(
    *, kubeconfig: Path, namespace: str, config: Path, origin: float, anchor: float
) -> list[str]:
    return [
        "controller", "run", "--kubeconfig", str(kubeconfig), "--namespace", namespace, "--config", str(config),
        "--identity", "metrics", "--lease-name", "gk-metrics", "--lease-namespace", namespace,
        "--lease-duration", str(FAST_LEASE["lease_duration"]), "--renew-deadline", str(FAST_LEASE["renew_deadline"]),
        "--retry-period", str(FAST_LEASE["retry_period"]), "--health-port", "0", "--health-host", "127.0.0.1",
        "--metrics-port", "0", "--metrics-host", "127.0.0.1", "--dashboard-port", "0",
        "--dashboard-host", "127.0.0.1", "--clock-origin", f"{origin:.3f}", "--clock-anchor", f"{anchor:.3f}",
        "--clock-rate", str(RATE), "--log-level", "info",
    ]  # fmt: skip


def served_at(log: Path, what: str) -> str:
    pattern = re.compile(rf"serving {what} at (http://\S+?)/?$", re.M)

    def found() -> str | None:
        m = pattern.search(log.read_text()) if log.exists() else None
        return m.group(1) if m else None

    return str(wait_for(f"{what} in {log}", found))


def settled(api: Any, ns: str, name: str, *phases: str) -> Any:
    def check() -> Any:
        s = gate_status(api, ns, name)
        return s if s.get("phase") in phases and (s.get("intent") or {}).get("done") is not False else None

    return check


def test_the_controllers_metrics_show_verdict_stage_weight_phase_limits_and_only_analysis_aborts(
    crd, kube_cluster, kube_admin, kube_namespace, prometheus, load_scenario, tmp_path
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    healthy = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=41)
    bad = load_scenario(
        canary=ArmProfile(requests_per_second=500, error_ratio=0.05), baseline=ArmProfile(**BUSY), seed=42
    )
    held_stages = [dict(FIVE_STAGES[0], minDuration="60m"), *FIVE_STAGES[1:]]
    for name, service, extra in (
        ("good", healthy.service, {"signals": EVERY_KIND}),
        ("bad", bad.service, {}),
        ("held", healthy.service, {"stages": held_stages}),
    ):
        httproute(kube_admin, ns, name=name, owner=name)
        body = gate_body(name, service=service, route=name, **extra)
        assert "url" not in body["spec"]["source"]["prometheus"]  # the URL comes from --config
        create_gate(kube_admin, ns, body)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"source": {"prometheus": {"url": prometheus.url}}, "routers": ["gateway-api"]})
    )
    log = tmp_path / "controller.log"
    origin = min(healthy.end_ms, bad.end_ms) / 1000 - 20 * 60
    args = controller_args(
        kubeconfig=kube_cluster.kubeconfig, namespace=ns, config=config, origin=origin, anchor=time.time()
    )
    proc = ControllerProcess(args, log=log, cli=False)
    try:
        metrics_url = served_at(log, "metrics") + "/metrics"
        dashboard_url = served_at(log, "the read-only dashboard")
        wait_for("held to be looked at", lambda: gate_status(kube_admin, ns, "held").get("lastEvaluatedAt"))
        done = actions.abort(kube_admin, namespace=ns, name="held", reason="wrong build", by="alice")
        assert done.changed
        for name, phase in (("good", "Promoted"), ("bad", "RolledBack"), ("held", "Aborted")):
            status = wait_for(
                f"{name} to settle", settled(kube_admin, ns, name, "Promoted", "RolledBack", "Halted", "Aborted"),
                timeout=90,
            )  # fmt: skip
            assert status["phase"] == phase, (name, status["reason"])
        m = wait_for(
            "the transitions in /metrics",
            lambda: (s := scrape(metrics_url)) and value(s, "gatekeeper_gate_phase", gate="held", phase="Aborted")
            and value(s, "gatekeeper_gate_phase", gate="good", phase="Promoted") and s,
        )  # fmt: skip
        page = httpx.get(dashboard_url + "/", timeout=10)
        refused = httpx.post(
            f"{dashboard_url}/gates/{ns}/bad/abort", data={"by": "x", "reason": "y"}, timeout=10
        )
        on_dashboard = scrape(dashboard_url + "/metrics")
    finally:
        code = proc.stop()
    assert code == 0, log.read_text()[-3000:]
    with pytest.raises(httpx.TransportError):  # stopped with the controller
        httpx.get(metrics_url, timeout=2)

    # the healthy gate: passed every stage, at 100%, promoted
    assert value(m, "gatekeeper_gate_verdict", gate="good", verdict="pass") == 1
    assert value(m, "gatekeeper_gate_verdict", gate="good", verdict="fail") == 0
    assert value(m, "gatekeeper_gate_stage", gate="good") == 5
    assert value(m, "gatekeeper_gate_weight_percent", gate="good") == 100
    phases = of_gate(m, "gatekeeper_gate_phase", "good")
    assert {dict(k)["phase"] for k, v in phases.items() if v == 1} == {"Promoted"} and len(phases) == 8
    moves = of_gate(m, "gatekeeper_actions_total", "good")
    assert moves == {(("action", "start"),): 1, (("action", "advance"),): 4, (("action", "promote"),): 1}
    assert value(m, "gatekeeper_evaluations_total", gate="good") >= 5
    assert value(m, "gatekeeper_signal_e_value_threshold", gate="good", signal="error-rate") > 1
    assert value(m, "gatekeeper_signal_e_value", gate="good", signal="error-rate") is not None

    # every signal kind: the measured value and the limit it is judged against, under one measure label
    effect, limit = (
        of_gate(m, "gatekeeper_signal_effect", "good"),
        of_gate(m, "gatekeeper_signal_effect_limit", "good"),
    )

    def lines(signal: str) -> tuple[dict[str, float], dict[str, float]]:
        e = {
            f"{d['measure']}/{d['bound']}": v for k, v in effect.items() if (d := dict(k))["signal"] == signal
        }
        lim = {
            f"{d['measure']}/{d['side']}": v for k, v in limit.items() if (d := dict(k))["signal"] == signal
        }
        return e, lim

    e, lim = lines("error-rate")
    assert lim == {"rate ratio/max": 1.5} and e["rate ratio/upper"] <= 1.5 and "rate ratio/estimate" in e
    e, lim = lines("latency-p99")
    assert lim == {"rate ratio/max": 1.5} and "rate ratio/estimate" in e
    e, lim = lines("request-rate")
    assert lim == {"value/min": 1, "value/max": 100000}
    assert 1 < e["value/estimate"] < 100000  # the canary's requests per second, between its bounds
    e, lim = lines("telemetry")
    assert lim == {"staleness (s)/max": 120} and 0 <= e["staleness (s)/estimate"] < 120

    # the bad canary: failed, reverted by the analysis, back at 0%
    assert value(m, "gatekeeper_gate_verdict", gate="bad", verdict="fail") == 1
    assert value(m, "gatekeeper_gate_weight_percent", gate="bad") == 0
    assert value(m, "gatekeeper_gate_phase", gate="bad", phase="RolledBack") == 1
    assert (
        value(
            m,
            "gatekeeper_signal_effect",
            gate="bad",
            signal="error-rate",
            measure="rate ratio",
            bound="lower",
        )
        > 1.5
    )

    # the operator's abort: an action, at 0%, Aborted, but not an abort caused by the analysis
    assert value(m, "gatekeeper_actions_total", gate="held", action="abort") == 1
    assert value(m, "gatekeeper_gate_weight_percent", gate="held") == 0
    aborts = {labels: v for (n, labels), v in m.items() if n == "gatekeeper_analysis_aborts_total"}
    assert aborts == {(("action", "revert"), ("gate", "bad")): 1}

    # the dashboard in the same process: the gates, read-only, the same metrics
    assert page.status_code == 200 and all(g in page.text for g in ("good", "bad", "held"))
    assert refused.status_code == 403
    assert value(on_dashboard, "gatekeeper_analysis_aborts_total", gate="bad", action="revert") == 1


def test_a_taken_metrics_port_or_a_bad_config_is_bad_input_before_anything_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import socket

    from typer.testing import CliRunner

    from gatekeeper.cli.main import app

    kubeconfig = tmp_path / "kubeconfig"  # never contacted: the command stops before
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
    }))  # fmt: skip
    base = [
        "controller",
        "run",
        "--kubeconfig",
        str(kubeconfig),
        "--health-port",
        "0",
        "--health-host",
        "127.0.0.1",
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = CliRunner().invoke(app, [*base, "--metrics-port", str(port), "--metrics-host", "127.0.0.1"])
    assert done.exit_code == 2 and f"cannot serve /metrics on 127.0.0.1:{port}" in done.output, done.output
    config = tmp_path / "config.yaml"
    config.write_text("source: {prometheus: {url: 'not a url'}}\n")
    done = CliRunner().invoke(app, [*base, "--config", str(config)])
    assert done.exit_code == 2 and "--config" in done.output and "url" in done.output, done.output
