"""Operator commands act through the real API server, so RBAC (and the stage's approving group) decides who may:
requests land as the annotations the controller reads, refusals are clear, nothing is written when refused."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from gatekeeper.cli.main import app
from gatekeeper.ops import actions
from gatekeeper.ops.errors import InvalidAction, OperatorError, Refused, Unreachable
from gatekeeper.ops.gate import GateView
from gatekeeper.sim.kube import KubeCluster
from gatekeeper.spec.crd import GROUP, PLURAL, VERSION
from gatekeeper.spec.requests import OperatorRequest, pending_requests
from gatekeeper.spec.status import Phase
from tests.test_crd import example_spec, gate_resource, install_gate_crd

APPROVERS = "release-managers"
T0 = 1_795_000_000.0  # the requests' clock, injected; `date -u -d @1795000000` = 2026-11-18T11:06:40


def clock() -> float:
    return T0


# -- pure: the view model -------------------------------------------------------------------------------------
def test_the_view_shows_a_gate_whose_status_or_stage_it_cannot_read_instead_of_failing() -> None:
    spec = example_spec()
    spec["stages"][1] = {"weight": "lots"}
    obj = gate_resource("web", spec) | {"status": {"phase": "Exploded", "stage": 1}}
    obj["metadata"] |= {"namespace": "shop", "annotations": {"gatekeeper.dev/abort": "now!"}}
    view = GateView.from_resource(obj)
    assert view.phase == Phase.PENDING and "status unreadable" in view.problem
    assert view.stages[1].problem and not view.stages[0].problem
    assert view.bad_requests and "not JSON" in view.bad_requests[0]
    as_json = json.loads(json.dumps(view.as_dict()))
    assert as_json["name"] == "web" and as_json["statusProblem"]


def test_the_view_says_when_the_spec_changed_since_the_controller_acted() -> None:
    spec = example_spec()
    obj = gate_resource("web", spec) | {"status": {"phase": "Progressing", "specHash": "0" * 64}}
    assert GateView.from_resource(obj).spec_changed
    obj["status"]["specHash"] = GateView.from_resource(obj).spec_hash
    assert not GateView.from_resource(obj).spec_changed


# -- on the real API server -----------------------------------------------------------------------------------
@pytest.fixture
def shop(kube_cluster: KubeCluster, kube_admin: Any, kube_namespace: str) -> dict[str, Any]:
    """A gate whose stage 1 needs an approval by `release-managers`, and people with different rights:
    alice (operator, in the group), bob (operator, not in it), carol (viewer), dave (nothing)."""
    from kubernetes import client

    install_gate_crd(kube_admin)
    ns = kube_namespace
    spec = example_spec()
    spec["stages"][1]["authority"] = {"mode": "approval", "group": APPROVERS}
    custom = client.CustomObjectsApi(kube_admin)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, gate_resource("web", spec))
    rbac = client.RbacAuthorizationV1Api(kube_admin)
    for role, verbs in (
        ("operator", ["get", "list", "watch", "patch"]),
        ("viewer", ["get", "list", "watch"]),
    ):
        rule = {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": verbs}
        rbac.create_namespaced_role(ns, {"metadata": {"name": role}, "rules": [rule]})
    for role, kind, who in (
        ("operator", "Group", APPROVERS),
        ("operator", "User", "bob"),
        ("viewer", "User", "carol"),
    ):
        rbac.create_namespaced_role_binding(ns, {
            "metadata": {"name": f"{role}-{who}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": who}],
        })  # fmt: skip

    def as_user(user: str, group: str | None = None) -> Any:
        api = kube_cluster.api_client()
        api.set_default_header("Impersonate-User", user)
        if group:
            api.set_default_header("Impersonate-Group", group)
        return api

    return {
        "ns": ns,
        "admin": kube_admin,
        "alice": as_user("alice", APPROVERS),
        "bob": as_user("bob"),
        "carol": as_user("carol"),
        "dave": as_user("dave"),
    }


def set_status(s: dict[str, Any], **status: Any) -> None:
    from kubernetes import client

    client.CustomObjectsApi(s["admin"]).patch_namespaced_custom_object_status(
        GROUP, VERSION, s["ns"], PLURAL, "web", {"status": status}
    )


def annotations(s: dict[str, Any]) -> dict[str, str]:
    from kubernetes import client

    obj = client.CustomObjectsApi(s["admin"]).get_namespaced_custom_object(
        GROUP, VERSION, s["ns"], PLURAL, "web"
    )
    return dict(obj["metadata"].get("annotations") or {})


@pytest.mark.k8s
def test_a_member_of_the_approving_group_records_an_approval_the_controller_reads(
    shop: dict[str, Any],
) -> None:
    set_status(shop, phase="AwaitingApproval", stage=1, weight=5)
    result = actions.approve(
        shop["alice"], namespace=shop["ns"], name="web", reason="dashboards ok", clock=clock
    )
    assert result.changed and result.request is not None
    found, bad = pending_requests(annotations(shop))  # exactly what the controller will read
    assert not bad
    assert found == [OperatorRequest("approve", "alice", "2026-11-18T11:06:40.000000Z", 1, "dashboards ok")]
    view = actions.status(shop["carol"], namespace=shop["ns"], name="web")
    assert [(r.action, r.by) for r in view.pending] == [("approve", "alice")]


@pytest.mark.k8s
def test_an_operator_outside_the_approving_group_is_refused_and_nothing_is_written(
    shop: dict[str, Any],
) -> None:
    set_status(shop, phase="AwaitingApproval", stage=1, weight=5)
    with pytest.raises(Refused, match=rf"you are bob .*group '{APPROVERS}'"):
        actions.approve(shop["bob"], namespace=shop["ns"], name="web")
    assert "gatekeeper.dev/approve" not in annotations(shop)
    set_status(shop, approvals=["stage-1:alice"])  # the controller applied alice's approval
    again = actions.approve(shop["alice"], namespace=shop["ns"], name="web")
    assert not again.changed and "already approved" in again.message


@pytest.mark.k8s
def test_a_viewer_reads_the_status_but_rbac_refuses_its_requests(shop: dict[str, Any]) -> None:
    assert actions.status(shop["carol"], namespace=shop["ns"], name="web").phase == Phase.PENDING
    for act in (actions.pause, actions.abort):
        with pytest.raises(Refused, match=r"forbidden.*'operator' ClusterRole"):
            act(shop["carol"], namespace=shop["ns"], name="web")
    with pytest.raises(Refused, match=r"cannot read gate web.*forbidden.*'viewer' ClusterRole"):
        actions.status(shop["dave"], namespace=shop["ns"], name="web")
    assert not annotations(shop)


@pytest.mark.k8s
def test_pause_and_resume_share_one_request_and_the_latest_wins(shop: dict[str, Any]) -> None:
    ns, bob = shop["ns"], shop["bob"]
    set_status(shop, phase="Progressing", stage=0, weight=1)
    with pytest.raises(InvalidAction, match="Progressing, not paused or halted"):
        actions.resume(bob, namespace=ns, name="web")
    assert actions.pause(bob, namespace=ns, name="web", clock=clock).changed
    assert not actions.pause(bob, namespace=ns, name="web").changed  # already pending
    assert actions.resume(bob, namespace=ns, name="web", clock=clock).changed  # before the controller looked
    found, _ = pending_requests(annotations(shop))
    assert [(r.action, r.by) for r in found] == [("resume", "bob")]


@pytest.mark.k8s
def test_requests_that_do_not_fit_the_gate_are_invalid(shop: dict[str, Any]) -> None:
    ns, alice = shop["ns"], shop["alice"]
    set_status(shop, phase="Progressing", stage=1, weight=5)
    for stage, match in (
        (0, "already past"),
        (7, r"no stage 7; its stages are 0\.\.3"),
        (2, "decides by itself"),
    ):
        with pytest.raises(InvalidAction, match=match):
            actions.approve(alice, namespace=ns, name="web", stage=stage)
    with pytest.raises(InvalidAction, match="no Gate 'nope'"):
        actions.abort(alice, namespace=ns, name="nope")
    set_status(shop, phase="Promoted", stage=3, weight=100)
    with pytest.raises(InvalidAction, match="Promoted: the rollout is over; nothing to abort"):
        actions.abort(alice, namespace=ns, name="web")
    assert not annotations(shop)


@pytest.mark.k8s
def test_the_cli_acts_reports_and_maps_refusals_to_exit_codes(
    shop: dict[str, Any], kube_cluster: KubeCluster
) -> None:
    ns, kc = shop["ns"], str(kube_cluster.kubeconfig)
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(app, [*args, "-n", ns, "--kubeconfig", kc])

    done = cli("abort", "web", "--reason", "bad build", "-o", "json")
    assert done.exit_code == 0, done.output
    written = json.loads(done.stdout)["annotation"]["gatekeeper.dev/abort"]
    assert json.loads(written) | {"at": "-"} == {
        "action": "abort",
        "by": "admin",
        "at": "-",
        "reason": "bad build",
    }
    shown = cli("status", "web", "-o", "json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["pending"][0]["action"] == "abort"
    table = cli("status")
    assert table.exit_code == 0 and "web" in table.stdout
    refused = cli("pause", "web", "--context", "gatekeeper")  # a user with no RoleBinding
    assert refused.exit_code == 1
    message = re.sub(r"\s+", " ", refused.stderr)
    assert 'User "gatekeeper" cannot get resource "gates"' in message and "'operator' ClusterRole" in message
    assert cli("status", "nope").exit_code == 2


def test_an_unreachable_api_server_exits_3_with_a_hint(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x", "namespace": "shop"}}],
    }  # fmt: skip
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    done = CliRunner().invoke(app, ["status", "web", "--kubeconfig", str(path)])
    assert done.exit_code == 3, done.output
    assert "unreachable" in done.stderr and "--kubeconfig" in done.stderr
    assert issubclass(Unreachable, OperatorError)
