"""The report of a recorded decision: rendered from the record alone (the Prometheus the controller used is
stopped before anyone asks), by `gatekeeper report`, the dashboard's decision pages and replay.

A revert is made on the real API server by the real controller against its own Prometheus; the gate has a
second signal whose metric does not exist, so the record holds a signal without numbers, whose charts must
say why in words instead of drawing nothing.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from gatekeeper.controller.decision_store import DecisionStore
from gatekeeper.ops.decisions import RecordedDecision, read_decision, replay_decisions
from gatekeeper.sim.prometheus import PrometheusServer
from gatekeeper.sim.remote_write import RemoteWriteClient
from gatekeeper.sim.scenario import ArmProfile, canary_scenario
from tests.controller_support import (
    BUSY,
    controller_in_process,
    create_gate,
    gate_body,
    gate_status,
    httproute,
    install_gate_crd,
    wait_for,
)
from tests.fixtures.prometheus import current_step_ms
from tests.test_dashboard_browser import ARTIFACTS, browser  # noqa: F401  (the module-scoped fixture)
from tests.test_report import figures

ROOT = Path(__file__).resolve().parents[1]
GHOST = {
    "name": "ghost-errors",
    "kind": "ratio",
    "description": "A metric nobody exports: never any numbers.",
    "bad": 'ghost_requests_total{code=~"5.."}',
    "total": "ghost_requests_total",
    "tolerance": 0.5,
}


@pytest.fixture(scope="module")
def reverted(kube_cluster, kube_admin):  # type: ignore[no-untyped-def]
    """A Gate reverted by the controller against a Prometheus that is stopped afterwards."""
    install_gate_crd(kube_admin)
    ns = f"decision-report-{secrets.token_hex(3)}"
    client.CoreV1Api(kube_admin).create_namespace({"metadata": {"name": ns}})
    prom = PrometheusServer()
    prom.__enter__()
    try:
        sc = canary_scenario(
            service="decision-report", end_ms=current_step_ms(),
            canary=ArmProfile(requests_per_second=500, error_ratio=0.05), baseline=ArmProfile(**BUSY), seed=31,
        )  # fmt: skip
        RemoteWriteClient(prom.remote_write_url).write(sc.series)
        httproute(kube_admin, ns)
        body = gate_body("web", service=sc.service)
        body["spec"]["signals"].append(GHOST)
        create_gate(kube_admin, ns, body)
        with controller_in_process(
            kube_admin, namespace=ns, origin=sc.end_ms / 1000 - 20 * 60, prometheus_url=prom.url
        ):
            wait_for(
                "the revert",
                lambda: gate_status(kube_admin, ns, "web").get("phase") == "RolledBack",
                timeout=60,
            )
            store = DecisionStore(kube_admin)
            wait_for("its record", lambda: store.index(ns, "web"), timeout=20)
    finally:
        prom.__exit__(None, None, None)  # from here on no report can ask Prometheus anything
    return ns, read_decision(DecisionStore(kube_admin), namespace=ns, name="web")


def cli(kube_cluster: Any, *args: str, context: str = "admin") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli.main", *args, "--kubeconfig", str(kube_cluster.kubeconfig),
         "--context", context],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


@pytest.mark.k8s
def test_the_cli_writes_the_report_of_the_revert_from_its_record_with_prometheus_gone(
    kube_cluster, reverted, tmp_path
):  # type: ignore[no-untyped-def]
    ns, decision = reverted
    out = tmp_path / "r.html"
    proc = cli(kube_cluster, "report", "web", "-n", ns, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out) and "#1 revert at stage 1 (1%)" in proc.stderr
    text = out.read_text()
    record = decision.record
    signals = {s["name"]: s for s in record["judgement"]["signals"]}
    err = signals["error-rate"]
    assert err["verdict"] == "fail" and signals["ghost-errors"]["verdict"] == "nodata"
    assert "Decision #1 of <code>" in text and "revert" in text and html.escape(record["reason"]) in text
    for s in signals.values():  # every signal with its reason and exact queries
        assert html.escape(s["reason"]) in text
        assert all(html.escape(q) in text for q in s["queries"].values())
    figs = figures(text)
    index = list(signals).index("error-rate")
    arms, layout = figs[f"fig-{index}-arms"]
    canary = next(t for t in arms if t["name"] == "canary")
    assert "cumulative" in layout["title"]["text"]
    assert canary["y"][-1] == pytest.approx(err["canary"]["rate"])  # the look's own numbers, step by step
    assert len(canary["x"]) == len(err["evidence"]["series"]["t"])
    evalue, _ = figs[f"fig-{index}-evalue"]
    path = next(t for t in evalue if t["name"].startswith("e-value per step"))
    assert path["y"] == pytest.approx(err["evidence"]["path"])
    assert [x[:19] for x in path["x"]][-1] == _iso(err["evidence"]["path_t"][-1])
    # the signal without numbers: no empty chart, a sentence saying why
    ghost = list(signals).index("ghost-errors")
    assert f"fig-{ghost}-arms" not in figs and f"fig-{ghost}-evalue" not in figs
    words = re.search(rf"<div class='figure no-chart' id='fig-{ghost}-arms'><p class='muted'>(.*?)</p>", text)
    assert words and "no canary requests" in html.unescape(words.group(1))
    for data, _ in figs.values():  # and no figure anywhere is drawn without a value
        assert any(any(isinstance(y, int | float) for y in (t.get("y") or [])) for t in data)


def _iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.mark.k8s
def test_the_cli_lists_decisions_prints_a_record_and_names_what_is_kept(kube_cluster, reverted) -> None:  # type: ignore[no-untyped-def]
    ns, decision = reverted
    listed = cli(kube_cluster, "report", "web", "-n", ns, "--list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(
        r"^1\s+\d{4}-\d\d-\d\dT\S+Z \(.*ago\)\s+revert\s+1\s+1%\s+FAIL\s+RolledBack", listed.stdout, re.M
    )
    as_json = cli(kube_cluster, "report", "web", "-n", ns, "-d", "1", "-o", "json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == {"seq": 1, **decision.record}
    missing = cli(kube_cluster, "report", "web", "-n", ns, "--decision", "9")
    assert missing.returncode == 2 and "no decision #9 (kept: #1 revert" in missing.stderr
    gone = cli(kube_cluster, "report", "nope", "-n", ns)
    assert gone.returncode == 2 and "Gate " + ns + "/nope not found" in gone.stderr


@pytest.mark.k8s
def test_reading_records_without_configmap_access_is_refused_with_the_role_to_ask_for(
    kube_cluster, kube_admin, reverted
):  # type: ignore[no-untyped-def]
    ns, _ = reverted
    rbac = client.RbacAuthorizationV1Api(kube_admin)
    rules = [{"apiGroups": ["gatekeeper.dev"], "resources": ["gates"], "verbs": ["get"]}]
    rbac.create_namespaced_role(ns, {"metadata": {"name": "gates-only"}, "rules": rules})
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "gates-only"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gates-only"},
        "subjects": [{"kind": "User", "name": "gatekeeper", "apiGroup": "rbac.authorization.k8s.io"}],
    })  # fmt: skip
    proc = wait_for(
        "the Role to apply",
        lambda: (
            p
            if "configmaps"
            in (p := cli(kube_cluster, "report", "web", "-n", ns, context="gatekeeper")).stderr
            else None
        ),
        timeout=15,
    )
    assert proc.returncode == 1 and "403" in proc.stderr and "get on configmaps" in proc.stderr


@pytest.mark.k8s
def test_the_dashboard_links_the_recorded_decision_to_its_report(kube_admin, reverted) -> None:  # type: ignore[no-untyped-def]
    from gatekeeper.ops.repository import KubernetesGateRepository
    from gatekeeper.web.app import BackgroundServer, create_app

    ns, decision = reverted
    with BackgroundServer(create_app(repository=KubernetesGateRepository(kube_admin))) as server:
        page = httpx.get(f"{server.url}/gates/{ns}/web", timeout=30).text
        link = re.search(r"<a href='([^']+/decisions/[0-9.]+)'>#1 revert \(stage 1, 1%\)</a>", page)
        assert link, page[page.find("Decisions") :][:600]
        report = httpx.get(server.url + link.group(1), timeout=30)
        live = httpx.get(f"{server.url}/gates/{ns}/web?fragment=live", timeout=30).text
    assert report.status_code == 200 and "Decision #1 of" in report.text and "Back to" in report.text
    assert html.escape(decision.record["reason"]) in report.text
    policy = report.headers["content-security-policy"]
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", report.text, flags=re.S)
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert policy.count("'sha256-") == len(set(scripts)) > 1
    assert "#1 revert" in live


@pytest.mark.k8s
@pytest.mark.browser
def test_the_decision_page_draws_every_chart_in_chromium_under_its_policy(
    kube_admin,
    reverted,
    browser,  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    from gatekeeper.ops.repository import KubernetesGateRepository
    from gatekeeper.web.app import BackgroundServer, create_app

    ns, decision = reverted
    with BackgroundServer(create_app(repository=KubernetesGateRepository(kube_admin))) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(f"{server.url}/gates/{ns}/web/decisions/{decision.time:.3f}")
        text = page.content()
        expected = len(figures(text))
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {expected}")
        assert page.locator(".js-plotly-plot").count() == expected > 2
        assert page.locator(".no-chart").count() >= 1 and problems == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "decision-report.png"), full_page=True)
        page.close()


def test_replay_reports_its_last_decision_through_the_record_path(prometheus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gatekeeper.evaluation import open_prometheus
    from gatekeeper.ops.replay import replay
    from gatekeeper.spec import load_gate

    sc = canary_scenario(
        service="replay-decision", end_ms=current_step_ms(),
        canary=ArmProfile(requests_per_second=100, error_ratio=0.03), baseline=ArmProfile(requests_per_second=100, error_ratio=0.01),
        seed=5,
    )  # fmt: skip
    RemoteWriteClient(prometheus.remote_write_url).write(sc.series)
    gate_file = ROOT / "gates" / "http-canary.yaml"
    gate = load_gate(gate_file, args={"service": sc.service})
    source = open_prometheus(gate, url=prometheus.url)
    try:
        result = replay(gate, metrics=source, start=sc.start_ms / 1000, end=sc.end_ms / 1000, step=60)
    finally:
        source.close()
    decisions = replay_decisions(gate, result.looks)
    acted = [lk for lk in result.looks if lk.action not in ("", "hold")]
    assert [d.record["action"] for d in decisions] == [lk.action for lk in acted] and decisions
    last = decisions[-1]
    assert last.record["action"] == "revert" and last.seq == 0
    look = acted[-1]
    rebuilt = last.judgement()
    assert rebuilt is not None and rebuilt.verdict == look.judgement.verdict
    for a, b in zip(rebuilt.signals, look.judgement.signals, strict=True):
        assert (a.name, a.verdict, a.reason, a.queries) == (b.name, b.verdict, b.reason, b.queries)
        if b.effect is not None and b.effect.upper is not None:
            assert a.effect.upper == pytest.approx(b.effect.upper, rel=1e-6)
    assert last.gate() == gate.model_copy(update={"name": gate.name})
    report = tmp_path / "replay.html"
    proc = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli.main", "replay", str(gate_file), "--prometheus", prometheus.url,
         "--arg", f"service={sc.service}", "--from", str(sc.start_ms / 1000), "--to", str(sc.end_ms / 1000),
         "--step", "1m", "--report", str(report)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    text = report.read_text()
    assert "report of the decision revert at stage" in proc.stderr
    assert "Decision of <code>" in text and "Replayed" in text and "fig-timeline" in figures(text)


def test_a_decision_without_a_judgement_says_so_instead_of_drawing(tmp_path) -> None:
    from gatekeeper.web.decision_report import render_decision_report

    record = {
        "version": 1, "gate": {"namespace": "shop", "name": "web"}, "time": 1.0e9, "action": "hold",
        "human_hold": True, "stage": 1, "weight": 5.0, "verdict": "", "phase": "Paused", "reason": "held",
        "judgement": None, "notes": ["decided without a look (e.g. another writer kept changing the route): no evidence"],
    }  # fmt: skip
    text = render_decision_report(RecordedDecision(seq=4, record=record))
    assert "Decision #4 of <code>shop/web</code>: hold for a human" in text
    assert "No evidence was recorded with this decision: decided without a look" in text
    assert "Plotly.newPlot" not in text


def test_a_health_signal_draws_its_series_ages_and_nothing_is_escaped_twice() -> None:
    from gatekeeper.judge import aggregate
    from gatekeeper.spec.outcome import SignalOutcome, Verdict
    from gatekeeper.web.report import render_report

    health = SignalOutcome(
        name="telemetry", kind="health", verdict=Verdict.PASS, reason="all fresh",
        canary={"age_seconds": {'up{job="a"}': 0.0}}, baseline={"age_seconds": {'up{job="a"}': 12.0}},
    )  # fmt: skip
    odd = SignalOutcome(name="odd", kind="custom", verdict=Verdict.PASS, reason="r", canary={"note": "a<b"})
    j = aggregate([health, odd], gate="g", window={"start": 0.0, "end": 60.0, "step": 15.0})
    text = render_report(gate=None, judgement=j)
    data, layout = figures(text)["fig-0-arms"]
    assert [t["y"] for t in data] == [[0.0], [12.0]] and all(t["mode"] == "markers" for t in data)
    assert "newest sample" in layout["title"]["text"]
    assert "this custom signal has no rates or values to compare (canary: note a&lt;b)" in text
