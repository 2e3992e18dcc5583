"""Another writer on the route (a GitOps sync rewriting the weights): gatekeeper restores its weights at the next
look, leaves every field it does not own byte-identical, and after ``fightLimit`` looks in a row stops
fighting, holds for a human and names the writer (its field manager), on the real API server.

The pure part (``fights.guard``) and the reading of ``managedFields`` (``engine.changed_by``) are tested
first without a server; the managedFields samples are what kube-apiserver 1.35 stored for these writes.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from kubernetes import client

from gatekeeper.controller.fights import guard
from gatekeeper.controller.machine import Announce, Route
from gatekeeper.routing.kube_router import changed_by
from gatekeeper.sim.scenario import ArmProfile
from gatekeeper.spec.status import GateStatus, Phase, RouteContest
from tests.controller_support import (
    BUSY,
    canary_weight,
    controller_in_process,
    create_gate,
    gate_body,
    gate_events,
    gate_status,
    httproute,
    install_gate_crd,
    read_route,
    wait_for,
)

STAGE = GateStatus(phase=Phase.PROGRESSING, stage=1, weight=5.0, stage_started_at=100.0, progressed_at=100.0)
ROUTE = "HTTPRoute shop/web"


# -- the rule, pure ----------------------------------------------------------------------------------------------
def test_a_route_found_as_recorded_is_left_alone():
    s, actions = guard(STAGE, found=5.0, by="argocd-controller", where=ROUTE, now=200.0, limit=3)
    assert s is STAGE and actions == ()


def test_a_changed_weight_is_restored_through_an_intent_that_keeps_the_stage_clock():
    s, actions = guard(STAGE, found=0.0, by="argocd-controller", where=ROUTE, now=200.0, limit=3)
    route, said = actions
    assert isinstance(route, Route) and route.kind == "set"
    assert route.intent.action == "restore" and route.intent.to_weight == 5.0 and route.intent.stage == 1
    assert s.intent == route.intent and s.stage_started_at == 100.0
    assert s.route_contest == RouteContest(fights=1, by="argocd-controller", weight=0.0, at=200.0)
    assert (
        isinstance(said, Announce) and said.reason == "RouteRestored" and "argocd-controller" in said.message
    )


def test_past_the_limit_it_holds_for_a_human_pages_and_names_the_writer():
    s = STAGE
    for i in range(3):  # three restores in a row
        s, actions = guard(s, found=0.0, by="argocd-controller", where=ROUTE, now=200.0 + i, limit=3)
        assert isinstance(actions[0], Route)
        s = s.model_copy(update={"intent": s.intent.model_copy(update={"done": True})})
    s, actions = guard(s, found=0.0, by="argocd-controller", where=ROUTE, now=210.0, limit=3)
    (said,) = actions
    assert s.phase == Phase.PAUSED and s.route_contest.fights == 4
    assert said.reason == "RouteContested" and said.severity == "critical"
    assert "argocd-controller" in s.reason and "stopped fighting" in s.reason
    assert guard(s, found=0.0, by="argocd-controller", where=ROUTE, now=211.0, limit=3) == (s, ())  # no more


def test_a_resume_starts_the_count_again_and_a_quiet_route_ends_the_fight():
    held = STAGE.model_copy(
        update={"phase": Phase.PROGRESSING, "progressed_at": 300.0,
                "route_contest": RouteContest(fights=4, by="flux", weight=0.0, at=250.0)}
    )  # fmt: skip
    s, actions = guard(held, found=0.0, by="flux", where=ROUTE, now=310.0, limit=3)
    assert s.route_contest.fights == 1 and isinstance(actions[0], Route)
    quiet, none = guard(
        s.model_copy(update={"intent": None}), found=5.0, by="flux", where=ROUTE, now=320.0, limit=3
    )
    assert quiet.route_contest is None and none == ()


def test_a_fight_limit_of_zero_holds_at_the_first_change():
    s, actions = guard(STAGE, found=0.0, by="kubectl-edit", where=ROUTE, now=200.0, limit=0)
    assert s.phase == Phase.PAUSED and [a.reason for a in actions] == ["RouteContested"]


# -- who wrote the weights: managedFields ------------------------------------------------------------------------
GATEWAY_WEIGHTS = ["/spec/rules/0/backendRefs/0/weight", "/spec/rules/0/backendRefs/1/weight"]
NGINX_WEIGHT = ["/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight"]


def _entry(manager: str, at: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": "Update",
        "time": at,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }


def test_the_owner_of_an_atomic_list_of_backends_wrote_the_weights():
    obj = {"metadata": {"managedFields": [
        _entry("gatekeeper", "2026-12-03T10:00:05Z", {"f:metadata": {"f:annotations": {"f:gatekeeper.dev/original": {}}}}),
        _entry("argocd-controller", "2026-12-03T10:00:04Z", {"f:spec": {"f:rules": {}}}),
        _entry("kubectl-client-side-apply", "2026-12-03T10:00:06Z", {"f:metadata": {"f:labels": {"f:app": {}}}}),
    ]}}  # fmt: skip
    assert changed_by(obj, GATEWAY_WEIGHTS) == "argocd-controller"


def test_an_annotation_weight_is_owned_key_by_key():
    obj = {"metadata": {"managedFields": [
        _entry("flux", "2026-12-03T10:00:01Z", {"f:metadata": {"f:annotations": {"f:nginx.ingress.kubernetes.io/canary-weight": {}}}}),
        _entry("helm", "2026-12-03T10:00:09Z", {"f:metadata": {"f:annotations": {"f:team": {}}}}),
    ]}}  # fmt: skip
    assert changed_by(obj, NGINX_WEIGHT) == "flux"


def test_without_an_owner_of_the_weights_the_newest_other_writer_is_named_and_gatekeeper_alone_is_none():
    obj = {"metadata": {"managedFields": [
        _entry("helm", "2026-12-03T10:00:01Z", {"f:metadata": {"f:labels": {}}}),
        _entry("kubectl-edit", "2026-12-03T10:00:03Z", {"f:spec": {"f:hostnames": {}}}),
    ]}}  # fmt: skip
    assert changed_by(obj, GATEWAY_WEIGHTS) == "kubectl-edit"
    mine = {
        "metadata": {
            "managedFields": [_entry("gatekeeper", "2026-12-03T10:00:01Z", {"f:spec": {"f:rules": {}}})]
        }
    }
    assert changed_by(mine, GATEWAY_WEIGHTS) is None


# -- on the real API server ----------------------------------------------------------------------------------------
LONG = [{"weight": w, "minDuration": "1000h", "minSamples": 100} for w in (1, 100)]
MANAGER = "argocd-controller"


def _foreign(api: Any, ns: str, canary: int) -> None:
    """The other writer: a JSON patch of both weights, as a GitOps sync's field manager."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", "web",
        [{"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": canary},
         {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 100 - canary}],
        _content_type="application/json-patch+json", field_manager=MANAGER,
    )  # fmt: skip


def _not_owned(route: dict[str, Any]) -> str:
    """The route without what gatekeeper owns (the weights, its annotations, the server's metadata), as
    stored: byte for byte."""
    spec = json.loads(json.dumps(route["spec"]))
    for rule in spec["rules"]:
        for ref in rule.get("backendRefs", []):
            ref.pop("weight", None)
    meta = route["metadata"]
    ann = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k not in ("gatekeeper.dev/original", "gatekeeper.dev/written-by")
    }
    return json.dumps({"spec": spec, "labels": meta.get("labels"), "annotations": ann})


@pytest.fixture
def rollout(kube_admin, kube_namespace, load_scenario, prometheus):  # type: ignore[no-untyped-def]
    install_gate_crd(kube_admin)
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=41)
    httproute(kube_admin, kube_namespace)
    create_gate(kube_admin, kube_namespace, gate_body("web", service=sc.service, stages=LONG))
    return sc, prometheus.url


@pytest.mark.k8s
def test_a_one_off_change_of_the_weights_is_restored_at_the_next_look_and_nothing_else_is_touched(
    rollout, kube_admin, kube_namespace
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    sc, url = rollout
    with controller_in_process(
        kube_admin, namespace=ns, origin=sc.end_ms / 1000 - 28 * 60, rate=15.0, prometheus_url=url
    ):
        wait_for("the start at 1%", lambda: canary_weight(read_route(kube_admin, ns)) == 1, timeout=60)
        before = _not_owned(read_route(kube_admin, ns))
        _foreign(kube_admin, ns, 0)
        wait_for("the restore", lambda: canary_weight(read_route(kube_admin, ns)) == 1, timeout=30)
        time.sleep(2.5)  # several more looks: a quiet route ends the fight
        s = gate_status(kube_admin, ns, "web")
    assert _not_owned(read_route(kube_admin, ns)) == before
    assert s["phase"] == "Progressing" and s["stage"] == 0 and s.get("routeContest") is None
    restored = [e for e in gate_events(kube_admin, ns, "web") if e.reason == "RouteRestored"]
    assert len(restored) == 1 and MANAGER in restored[0].message and "changed to 0%" in restored[0].message


@pytest.mark.k8s
def test_a_writer_that_keeps_changing_the_route_is_fought_three_times_then_held_and_named(
    rollout, kube_admin, kube_namespace
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    stop = threading.Event()

    def fighter() -> None:  # a GitOps sync with self-heal: its desired weights every 100 ms
        while not stop.is_set():
            _foreign(kube_admin, ns, 0)
            time.sleep(0.1)

    sc, url = rollout
    with controller_in_process(
        kube_admin, namespace=ns, origin=sc.end_ms / 1000 - 28 * 60, rate=15.0, prometheus_url=url
    ):
        wait_for("the start at 1%", lambda: canary_weight(read_route(kube_admin, ns)) == 1, timeout=60)
        before = _not_owned(read_route(kube_admin, ns))
        t = threading.Thread(target=fighter, daemon=True)
        t.start()
        try:
            wait_for(
                "the hold", lambda: gate_status(kube_admin, ns, "web").get("phase") == "Paused", timeout=60
            )
            held = gate_status(kube_admin, ns, "web")
            time.sleep(2.0)  # more looks while held: no more restores
            restores = [e for e in gate_events(kube_admin, ns, "web") if e.reason == "RouteRestored"]
        finally:
            stop.set()
            t.join(5)
        assert held["routeContest"]["fights"] == 4 and held["routeContest"]["by"] == MANAGER
        assert MANAGER in held["reason"] and "stopped fighting" in held["reason"]
        assert len(restores) == 3
        contested = [e for e in gate_events(kube_admin, ns, "web") if e.reason == "RouteContested"]
        assert len(contested) == 1 and MANAGER in contested[0].message
        assert _not_owned(read_route(kube_admin, ns)) == before
        from gatekeeper.ops.actions import resume

        resume(kube_admin, namespace=ns, name="web", reason="argo cd ignores the weights now", by="alice")
        wait_for(
            "the restore after the resume", lambda: canary_weight(read_route(kube_admin, ns)) == 1, timeout=30
        )
        wait_for("progressing again", lambda: gate_status(kube_admin, ns, "web").get("phase") == "Progressing",
                 timeout=30)  # fmt: skip
