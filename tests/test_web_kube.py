"""The dashboard reading Gate resources from a real kube-apiserver, and approve/abort going through the same
operator actions as the CLI (annotations the controller consumes)."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml
from kubernetes import client

from gatekeeper.controller.machine import is_approved
from gatekeeper.ops.errors import Unreachable
from gatekeeper.ops.repository import KubernetesGateRepository
from gatekeeper.spec.crd import GROUP, PLURAL, VERSION
from gatekeeper.spec.outcome import Verdict
from gatekeeper.spec.status import GateStatus
from gatekeeper.web.app import BackgroundServer, create_app
from tests.controller_support import install_gate_crd
from tests.test_web_dashboard import TOKEN, spec_with, walk

pytestmark = pytest.mark.k8s


def create_gate(api, namespace: str, name: str, spec: dict, status: GateStatus | None) -> None:  # type: ignore[no-untyped-def]
    custom = client.CustomObjectsApi(api)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Gate", "metadata": {"name": name}, "spec": spec}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    if status is not None:
        patch = {"status": status.model_dump(by_alias=True, mode="json", exclude_none=True)}
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, patch)


@pytest.fixture
def gates(kube_admin, kube_namespace):  # type: ignore[no-untyped-def]
    install_gate_crd(kube_admin)
    approval = spec_with(s1={"authority": {"mode": "approval", "group": "sre"}})
    waiting = walk(approval, [Verdict.INCONCLUSIVE, Verdict.PASS, Verdict.PASS], t0=1_790_000_000.0)
    assert waiting.phase.value == "AwaitingApproval"
    approval = {k: v for k, v in approval.items() if k not in ("apiVersion", "kind", "name")}
    create_gate(kube_admin, kube_namespace, "payments", approval, waiting)
    create_gate(kube_admin, kube_namespace, "fresh", approval, None)
    return kube_namespace


def annotations(api, namespace: str, name: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return obj["metadata"].get("annotations") or {}


def test_dashboard_lists_gate_resources_with_the_status_the_controller_wrote(kube_admin, gates) -> None:
    repo = KubernetesGateRepository(kube_admin, namespace=gates)
    records = {r.name: r for r in repo.list_gates()}
    assert set(records) == {"payments", "fresh"}
    assert records["payments"].status.phase.value == "AwaitingApproval"
    assert records["payments"].status.history and records["payments"].created_at is not None
    assert records["fresh"].status.phase.value == "Pending" and records["fresh"].problem == ""
    with BackgroundServer(create_app(repository=repo)) as server:
        page = httpx.get(server.url + "/").text
        gate = httpx.get(f"{server.url}/gates/{gates}/payments").text
    assert f"/gates/{gates}/payments" in page and f"/gates/{gates}/fresh" in page
    assert "AwaitingApproval" in gate and "History" in gate and "error-rate" in gate


def test_approve_and_abort_from_the_dashboard_become_operator_requests_on_the_gate(kube_admin, gates) -> None:
    repo = KubernetesGateRepository(kube_admin, namespace=gates)
    with BackgroundServer(create_app(repository=repo, token=TOKEN)) as server:
        # the admin identity is not in the stage's approving group: refused, with the group named
        refused = httpx.post(
            f"{server.url}/gates/{gates}/payments/approve",
            data={"by": "alice", "token": TOKEN},
            follow_redirects=True,
        )
        assert "approve rejected" in refused.text and "sre" in refused.text
        assert "gatekeeper.dev/approve" not in annotations(kube_admin, gates, "payments")
        aborted = httpx.post(
            f"{server.url}/gates/{gates}/payments/abort",
            data={"by": "alice", "reason": "pager fired", "token": TOKEN},
            follow_redirects=True,
        )
        assert aborted.status_code == 200 and "abort by alice: recorded" in aborted.text
    request = json.loads(annotations(kube_admin, gates, "payments")["gatekeeper.dev/abort"])
    assert (
        request["action"] == "abort" and "pager fired" in request["reason"] and "alice" in request["reason"]
    )
    status = repo.get_gate(namespace=gates, name="payments").status
    assert not is_approved(status, status.stage)  # nothing changes until the controller applies it


def test_an_unreachable_api_server_is_a_503_page_not_a_crash(dead_prometheus_url) -> None:
    config = client.Configuration(host=dead_prometheus_url.replace("http", "https"))
    config.verify_ssl = False
    repo = KubernetesGateRepository(client.ApiClient(config), timeout=2)
    with pytest.raises(Unreachable):
        repo.list_gates()
    with BackgroundServer(create_app(repository=repo)) as server:
        page = httpx.get(server.url + "/")
        api = httpx.get(server.url + "/api/gates")
    assert page.status_code == 503 and "did not answer" in page.text
    assert api.status_code == 503


def test_the_repository_reads_the_gate_spec_as_written(kube_admin, gates) -> None:
    repo = KubernetesGateRepository(kube_admin, namespace=gates)
    record = repo.get_gate(namespace=gates, name="fresh")
    assert record.spec["stages"][1]["authority"] == {"mode": "approval", "group": "sre"}
    assert yaml.safe_dump(record.spec)  # plain data, ready for the spec view
