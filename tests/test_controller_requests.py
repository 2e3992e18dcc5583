"""Operator commands through the API server (``gatekeeper.ops.actions``: approve, pause, resume, abort) applied
by the running controller; a malformed request; Slack-format notifications filtered by severity; probes.
"""

from __future__ import annotations

import httpx
import pytest
from kubernetes import client

from gatekeeper.ops import actions
from gatekeeper.sim.scenario import ArmProfile
from gatekeeper.spec.crd import GROUP, PLURAL, VERSION
from gatekeeper.spec.requests import ANNOTATION_KEYS
from tests.controller_support import (
    BUSY,
    WebhookSink,
    canary_weight,
    controller_in_process,
    create_gate,
    gate_body,
    gate_events,
    gate_status,
    httproute,
    install_gate_crd,
    read_gate,
    read_route,
    wait_for,
)

pytestmark = pytest.mark.k8s


@pytest.fixture(scope="module")
def crd(kube_admin):  # type: ignore[no-untyped-def]
    install_gate_crd(kube_admin)


def annotations(api, ns: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return read_gate(api, ns, "web")["metadata"].get("annotations") or {}


def test_approve_pause_resume_abort_act_through_the_api_server(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=41)
    original = httproute(kube_admin, ns)
    sink = WebhookSink()
    stages = [
        {"weight": 1, "minDuration": "1m", "minSamples": 500},
        {"weight": 5, "minDuration": "1m", "minSamples": 500, "authority": {"mode": "approval", "group": "system:masters"}},
        {"weight": 50, "minDuration": "1h", "minSamples": 500},
        {"weight": 100, "minDuration": "1m"},
    ]  # fmt: skip
    notify = [{"name": "chat", "url": sink.url + "/slack", "format": "slack", "severity": "warning"}]
    create_gate(kube_admin, ns, gate_body("web", service=sc.service, stages=stages, notify=notify))
    origin = sc.end_ms / 1000 - 20 * 60
    with controller_in_process(kube_admin, namespace=ns, origin=origin, prometheus_url=prometheus.url) as ctl:
        probes = wait_for("the probe server", lambda: ctl.health, timeout=30)
        base = f"http://127.0.0.1:{probes.port}"
        wait_for("readiness", lambda: httpx.get(f"{base}/readyz").status_code == 200, timeout=30)
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json()["leading"] is True

        wait_for(
            "the approval wait",
            lambda: gate_status(kube_admin, ns, "web").get("phase") == "AwaitingApproval",
            timeout=60,
        )
        bad = {"metadata": {"annotations": {ANNOTATION_KEYS["abort"]: "{not json"}}}
        client.CustomObjectsApi(kube_admin).patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, "web", bad
        )
        wait_for(
            "the bad request removed",
            lambda: ANNOTATION_KEYS["abort"] not in annotations(kube_admin, ns),
            timeout=30,
        )
        assert gate_status(kube_admin, ns, "web")["phase"] == "AwaitingApproval"  # not aborted by junk

        assert actions.approve(kube_admin, namespace=ns, name="web", reason="looks good").changed
        s = wait_for(
            "stage 2",
            lambda: (
                (st := gate_status(kube_admin, ns, "web")).get("stage") == 2 and st["intent"]["done"] and st
            ),
            timeout=60,
        )
        assert s["approvals"] == ["stage-1:admin"] and s["weight"] == 50

        actions.pause(kube_admin, namespace=ns, name="web", reason="checking dashboards")
        wait_for("paused", lambda: gate_status(kube_admin, ns, "web").get("phase") == "Paused", timeout=30)
        actions.resume(kube_admin, namespace=ns, name="web")
        wait_for(
            "resumed", lambda: gate_status(kube_admin, ns, "web").get("phase") == "Progressing", timeout=30
        )
        actions.abort(kube_admin, namespace=ns, name="web", reason="wrong build")
        s = wait_for("aborted", lambda: (st := gate_status(kube_admin, ns, "web")).get("phase") == "Aborted"
                     and st["intent"]["done"] and st, timeout=30)  # fmt: skip
        wait_for(
            "requests consumed",
            lambda: not set(ANNOTATION_KEYS.values()) & set(annotations(kube_admin, ns)),
            timeout=30,
        )
    sink.close()
    assert "aborted by admin: wrong build" in s["reason"] and s["weight"] == 0
    route = read_route(kube_admin, ns)
    assert canary_weight(route) == 0 and route["spec"] == original["spec"]
    reasons = [e.reason for e in gate_events(kube_admin, ns, "web")]
    for r in ("InvalidRequest", "AwaitingApproval", "Approved", "Paused", "Resumed", "Aborted"):
        assert r in reasons, (r, reasons)
    # the chat target asked for warnings and worse: only the abort reaches it, in Slack's shape
    wait_for("the abort notification", lambda: sink.received, timeout=10)
    assert [path for path, _ in sink.received] == ["/slack"]
    body = sink.received[0][1]
    assert body["text"].startswith("*gatekeeper: ") and "Aborted" in body["text"]
    assert body["attachments"][0]["fields"][0] == {"title": "Phase", "value": "Aborted", "short": True}
