"""The dashboard over real HTTP (uvicorn on 127.0.0.1, httpx): list, gate page, read-only by default, and
token-guarded approve/abort that go through the controller's own request handling.

Gate statuses here are produced by the controller's real machine fed with judgements, so the pages render
exactly what the controller writes (history, conditions, escalation)."""

from __future__ import annotations

import copy
import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gatekeeper.controller.machine import Policy, Route, applied, transition
from gatekeeper.judge import aggregate
from gatekeeper.ops.gate import GateView
from gatekeeper.ops.repository import InMemoryGateRepository
from gatekeeper.spec import load_gate_text
from gatekeeper.spec.evidence import ArmPair, CountEvidence, SequentialTest
from gatekeeper.spec.outcome import Effect, SignalOutcome, Verdict
from gatekeeper.spec.status import GateStatus
from gatekeeper.web.app import BackgroundServer, create_app

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "0123456789abcdef-test-token"
BASE_SPEC = yaml.safe_load((ROOT / "gates" / "http-canary.yaml").read_text())


def sequential(e_value: float, threshold: float) -> SequentialTest:
    """The e-values of a sequential count test whose harm e-value is `e_value` now."""
    return SequentialTest(e_value=e_value, max_e_value=e_value, safety_e_value=1.0, threshold=threshold)


def spec_with(**stage_changes: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_SPEC)
    spec["args"] = [{"name": "service", "value": "shop"}]
    for index, change in stage_changes.items():
        spec["stages"][int(index[1:])].update(change)
    return spec


def look(verdict: Verdict, *, t: float, e_value: float, stage: int, weight: float):  # type: ignore[no-untyped-def]
    err = SignalOutcome(
        name="error-rate",
        kind="ratio",
        verdict=verdict,
        reason=f"error-rate is {verdict.value}",
        effect=Effect(measure="rate ratio", estimate=1.1, lower=0.8, upper=1.5, limit=1.2),
        evidence=CountEvidence(test=sequential(e_value, 200.0), samples=ArmPair(canary=900, baseline=18000)),
        critical=True,
    )
    lat = SignalOutcome(
        name="latency-p99",
        kind="latency",
        verdict=Verdict.PASS,
        reason="ok",
        evidence=CountEvidence(test=sequential(0.7, 400.0)),
    )
    return aggregate(
        [err, lat], gate="g", window={"start": t - 300, "end": t, "step": 60.0}, stage=stage, weight=weight
    )


def walk(spec: dict[str, Any], verdicts: list[Verdict], *, t0: float) -> GateStatus:
    """Drive the controller's machine from Pending through one look per verdict, a minute apart; routing
    changes are taken as made at once."""
    policy = Policy.from_gate(load_gate_text(yaml.safe_dump(spec)))
    status, actions = transition(GateStatus(), None, t0, policy)
    for i, verdict in enumerate([None, *verdicts]):
        t = t0 + 60 * i * 3  # three minutes apart: past every stage's minimum duration
        if verdict is not None:
            j = look(verdict, t=t, e_value=2.0 ** (i + 1), stage=status.stage, weight=status.weight)
            status, actions = transition(status, j, t, policy)
        for a in actions:
            if isinstance(a, Route):
                status = applied(status, weight=a.intent.to_weight, now=t)
        actions = ()
    return status


def sample_repository(now: float) -> InMemoryGateRepository:
    U, P, F = Verdict.INCONCLUSIVE, Verdict.PASS, Verdict.FAIL  # undecided, pass, fail
    t0 = now - 3600
    approval = spec_with(s1={"authority": {"mode": "approval", "group": "sre"}})
    forward_only = spec_with(s0={"rollbackWindow": {"mode": "forward-fix-only"}})
    forward_only |= {"owners": ["team-orders"], "runbook": "runbooks/orders.md", "forwardFix": "ship 1.4.2"}
    records = [
        GateView("shop", "checkout", spec_with(), walk(spec_with(), [U, U, P, U], t0=t0), created_at=t0),
        GateView("shop", "payments", approval, walk(approval, [U, P, P], t0=t0), created_at=t0 - 3600),
        GateView("shop", "orders", forward_only, walk(forward_only, [U, F], t0=t0), created_at=t0 - 86400),
        GateView("web", "cart", spec_with(), walk(spec_with(), [U, F], t0=t0), created_at=t0),
        GateView("web", "search", spec_with(), GateStatus(), created_at=now - 40),
    ]
    return InMemoryGateRepository(records, clock=lambda: now)


@pytest.fixture
def served():  # type: ignore[no-untyped-def]
    now = time.time()
    repo = sample_repository(now)

    def start(token: str | None):  # type: ignore[no-untyped-def]
        return BackgroundServer(create_app(repository=repo, token=token, clock=lambda: now))

    return start, repo


def test_machine_walks_give_the_phases_the_dashboard_must_show() -> None:
    repo = sample_repository(time.time())
    phases = {r.name: r.status.phase.value for r in repo.list_gates()}
    assert phases == {
        "checkout": "Progressing",
        "payments": "AwaitingApproval",
        "orders": "Halted",
        "cart": "RolledBack",
        "search": "Pending",
    }


def test_read_only_dashboard_lists_every_gate_and_refuses_actions(served) -> None:
    start, repo = served
    with start(None) as server:
        page = httpx.get(server.url + "/")
        assert page.status_code == 200
        assert "read-only" in page.text and "<form" not in page.text
        for r in repo.list_gates():
            assert f"/gates/{r.namespace}/{r.name}" in page.text
        assert "AwaitingApproval" in page.text and "Halted" in page.text
        detail = httpx.get(server.url + "/gates/shop/payments")
        assert detail.status_code == 200 and "<button" not in detail.text
        refused = httpx.post(server.url + "/gates/shop/payments/approve", data={"by": "eve", "token": TOKEN})
        assert refused.status_code == 403
        assert repo.get_gate(namespace="shop", name="payments").status.approvals == []
        assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_gate_page_shows_evidence_history_and_the_escalation_of_a_halted_gate(served) -> None:
    start, _ = served
    with start(None) as server:
        html = httpx.get(server.url + "/gates/shop/orders").text
        api = httpx.get(server.url + "/api/gates/shop/orders").json()
    assert "Escalation" in html and "team-orders" in html and "ship 1.4.2" in html
    assert "error-rate" in html and "/ 200</td>" in html  # e-value against its threshold
    assert api["phase"] == "Halted" and api["verdict"] == "fail"
    assert [h["action"] for h in api["history"]][:1] == ["halt"]  # newest first
    assert {s["name"]: s["verdict"] for s in api["signals"]} == {"error-rate": "fail", "latency-p99": "pass"}
    assert api["signals"][0]["evidence"]["threshold"] == 200.0


def test_approve_needs_the_token_and_records_the_approval_the_controller_reads(served) -> None:
    start, repo = served
    with start(TOKEN) as server:
        page = httpx.get(server.url + "/gates/shop/payments").text
        assert "Approve stage" in page and "Abort rollout" in page
        url = server.url + "/gates/shop/payments/approve"
        assert httpx.post(url, data={"by": "alice"}).status_code == 401
        assert (
            httpx.post(url, data={"by": "alice", "token": TOKEN[:-1] + "x"}).status_code == 403
        )  # wrong token: 403; none: 401
        ok = httpx.post(url, data={"by": "alice", "token": TOKEN})
        assert ok.status_code == 303 and "done=approve" in ok.headers["location"]
        stage = repo.get_gate(namespace="shop", name="payments").status.stage
        assert repo.get_gate(namespace="shop", name="payments").status.approvals == [f"stage-{stage}:alice"]
        # approving a gate that is not waiting is refused with the reason, not silently recorded
        again = httpx.post(
            server.url + "/gates/shop/checkout/approve",
            headers={"authorization": f"Bearer {TOKEN}"},
            data={"by": "bob"},
            follow_redirects=True,
        )
        assert "not AwaitingApproval" in again.text
        assert repo.get_gate(namespace="shop", name="checkout").status.approvals == []


def test_abort_takes_a_reason_and_moves_the_gate_to_aborted_with_traffic_back(served) -> None:
    start, repo = served
    with start(TOKEN) as server:
        url = server.url + "/gates/shop/checkout/abort"
        assert httpx.post(url, data={"by": "carol", "token": TOKEN}).status_code == 400  # no reason
        done = httpx.post(
            url, data={"by": "carol", "reason": "bad deploy", "token": TOKEN}, follow_redirects=True
        )
        assert done.status_code == 200 and "abort by carol: recorded" in done.text
        status = repo.get_gate(namespace="shop", name="checkout").status
        assert status.phase.value == "Aborted" and "bad deploy" in status.reason and status.weight == 0
        metrics = httpx.get(server.url + "/metrics").text
        assert 'gatekeeper_actions_total{action="abort",gate="checkout"} 1.0' in metrics
        assert 'gatekeeper_analysis_aborts_total{action="abort"' not in metrics
        # a finished rollout cannot be aborted again
        twice = httpx.post(url, data={"by": "carol", "reason": "x", "token": TOKEN}, follow_redirects=True)
        assert "already Aborted" in twice.text


def test_unknown_gate_is_a_404_page_and_text_from_specs_is_escaped(served) -> None:
    start, repo = served
    evil = spec_with()
    evil["description"] = "<script>alert('x')</script>"
    repo.put(GateView("web", "evil", evil, GateStatus(reason="<img src=x onerror=alert(1)>")))
    with start(None) as server:
        assert httpx.get(server.url + "/gates/nope/nothing").status_code == 404
        html = httpx.get(server.url + "/gates/web/evil").text
        listing = httpx.get(server.url + "/").text
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "<img src=x" not in listing and "&lt;img src=x" in listing


def test_a_gate_resource_with_an_unreadable_status_is_listed_with_its_problem() -> None:
    good = {
        "metadata": {"name": "ok", "namespace": "a", "creationTimestamp": "2026-11-25T10:00:00Z"},
        "spec": {},
    }
    bad = {"metadata": {"name": "broken", "namespace": "a"}, "spec": {}, "status": {"phase": "Exploded"}}
    records = [GateView.from_resource(good), GateView.from_resource(bad)]
    assert records[0].problem == ""
    assert records[0].created_at == dt.datetime(2026, 11, 25, 10, tzinfo=dt.UTC).timestamp()
    assert "status unreadable" in records[1].problem and "phase" in records[1].problem


def test_a_gate_file_that_is_not_utf8_is_listed_with_its_problem_beside_the_others(tmp_path) -> None:
    from gatekeeper.ops.repository import load_gates_dir

    (tmp_path / "good.yaml").write_text(
        yaml.safe_dump({"kind": "Gate", "metadata": {"name": "good"}, "spec": {}})
    )
    (tmp_path / "bad.yaml").write_bytes(b"kind: Gate\nmetadata: {name: caf\xe9}\n")  # crashed the listing
    records = {r.name: r for r in load_gates_dir(tmp_path).list_gates()}
    assert set(records) == {"good", "bad"}
    assert "utf-8" in records["bad"].problem and not records["good"].problem


def test_gatekeeper_serve_starts_on_gate_files_and_answers_until_stopped() -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gatekeeper.cli.main",
            "serve",
            "--gates-dir",
            str(ROOT / "gates"),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "gatekeeper serve did not answer within 30 s"
            time.sleep(0.1)
        page = httpx.get(f"http://127.0.0.1:{port}/").text
        assert "/gates/default/http-canary" in page and "read-only" in page
    finally:
        proc.terminate()
        proc.wait(timeout=10)
