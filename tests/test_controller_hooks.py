"""Lifecycle hooks, stage routing (A/B match, mirror), whole-gate dry run and the progress deadline, end to end:
the controller in-process on the real API server and the real Prometheus, hooks answered by a real HTTP server
on 127.0.0.1, notifications received by another.

Hook points and bodies follow Flagger's webhook documentation (docs/gitbook/usage/webhooks.md in
fluxcd/flagger): ``{"name", "namespace", "phase", "metadata"}``; event hooks carry ``eventMessage``,
``eventType`` and ``timestamp`` in ``metadata``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client, watch

from gatekeeper.routing.base import ORIGINAL_ANNOTATION
from gatekeeper.sim.scenario import ArmProfile
from gatekeeper.spec.crd import GROUP, PLURAL, VERSION
from tests.controller_support import (
    BUSY,
    CANARY,
    HookServer,
    WebhookSink,
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
THREE = [{"weight": w, "minDuration": "1m", "minSamples": 500} for w in (1, 25, 100)]
FINAL = ("Promoted", "RolledBack", "Halted", "Aborted")


@pytest.fixture(scope="module")
def crd(kube_admin):  # type: ignore[no-untyped-def]
    install_gate_crd(kube_admin)


class RouteSnapshots:
    """Every version of one HTTPRoute the API server stored, whole (spec and annotations)."""

    def __init__(self, api: Any, namespace: str, name: str = "web") -> None:
        self.specs: list[dict[str, Any]] = []
        self._watch = watch.Watch()
        custom = client.CustomObjectsApi(api)
        self._args = ("gateway.networking.k8s.io", "v1", namespace, "httproutes")
        rv = custom.list_namespaced_custom_object(*self._args, field_selector=f"metadata.name={name}")
        self._rv = rv["metadata"]["resourceVersion"]
        self._custom, self._name = custom, name
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for ev in self._watch.stream(
                self._custom.list_namespaced_custom_object, *self._args,
                field_selector=f"metadata.name={self._name}", resource_version=self._rv, timeout_seconds=300,
            ):  # fmt: skip
                if ev["type"] == "MODIFIED":
                    self.specs.append(ev["object"]["spec"])
        except Exception:
            pass

    def stop(self) -> None:
        self._watch.stop()


def managed(spec: dict[str, Any]) -> dict[str, Any]:
    """The rule naming both backends (the one whose weights the gate sets)."""
    return next(r for r in spec["rules"] if len(r.get("backendRefs") or []) == 2)


def weight(spec: dict[str, Any]) -> int:
    return int(next(b["weight"] for b in managed(spec)["backendRefs"] if b["name"] == CANARY))


def ab_rules(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in spec["rules"] if str(r.get("name", "")).startswith("gatekeeper-ab-")]


def mirror(spec: dict[str, Any]) -> dict[str, Any] | None:
    return next((f for f in managed(spec).get("filters") or [] if f.get("type") == "RequestMirror"), None)


def final(api: Any, ns: str, name: str = "web") -> Any:
    def check() -> Any:
        s = gate_status(api, ns, name)
        return s if s.get("phase") in FINAL and (s.get("intent") or {}).get("done") is not False else None

    return check


def start(
    api: Any, ns: str, prometheus: Any, load_scenario: Any, seed: int, **gate: Any
) -> tuple[Any, float]:
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=seed)
    create_gate(api, ns, gate_body("web", service=sc.service, **gate))
    return sc, sc.end_ms / 1000 - 20 * 60


def hooks(url: str, *types: str, **options: Any) -> list[dict[str, Any]]:
    return [
        {"name": f"{t} check", "type": t, "url": f"{url}/{t}", "metadata": {"cmd": f"run {t}"}, **options}
        for t in types
    ]


def test_every_hook_point_is_called_in_flaggers_order_with_flaggers_bodies(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    httproute(kube_admin, ns)
    server = HookServer({"/confirm-rollout": 403})
    types = ("confirm-rollout", "pre-rollout", "rollout", "confirm-traffic-increase", "confirm-promotion",
             "post-rollout", "rollback", "event")  # fmt: skip
    snaps = RouteSnapshots(kube_admin, ns)
    _, origin = start(
        kube_admin, ns, prometheus, load_scenario, 31, stages=THREE, hooks=hooks(server.url, *types)
    )
    server.answers["/rollback"] = 404  # a closed rollback gate: no rollback requested
    with controller_in_process(kube_admin, namespace=ns, origin=origin, prometheus_url=prometheus.url):
        wait_for(
            "the confirm-rollout hook to be asked twice",
            lambda: server.paths().count("/confirm-rollout") >= 2,
        )
        held = gate_status(kube_admin, ns, "web")
        assert held["phase"] == "Pending" and "waiting for the confirm-rollout hook" in held["reason"]
        assert "gate closed" in held["reason"], "the refusing answer's body is in the reason"
        assert snaps.specs == [], "no traffic moves while the confirmation is refused"
        server.answers["/confirm-rollout"] = 200
        status = wait_for("the end", final(kube_admin, ns), timeout=90)
        wait_for("post-rollout", lambda: "/post-rollout" in server.paths(), timeout=10)
    snaps.stop()
    server.close()
    assert status["phase"] == "Promoted", status["reason"]
    paths = server.paths()
    first = {p: paths.index(p) for p in set(paths)}
    assert (
        first["/confirm-rollout"]
        < first["/pre-rollout"]
        < first["/rollout"]
        < first["/confirm-traffic-increase"]
    )
    assert first["/confirm-traffic-increase"] < first["/confirm-promotion"] < first["/post-rollout"]
    assert paths.count("/pre-rollout") == 1 and paths.count("/post-rollout") == 1
    assert paths.count("/confirm-traffic-increase") >= 2, "asked before each of the two advances"
    assert paths.count("/rollback") >= paths.count("/rollout") >= 3
    body = server.bodies("/pre-rollout")[0]
    assert body == {
        "name": "web",
        "namespace": ns,
        "phase": "Progressing",
        "metadata": {"cmd": "run pre-rollout"},
    }
    assert server.bodies("/confirm-rollout")[0]["phase"] == "Initialized"
    assert server.bodies("/confirm-rollout")[1]["phase"] == "Waiting", "after the first refusal"
    assert server.bodies("/rollout")[0]["phase"] == "Progressing"
    assert server.bodies("/post-rollout")[0]["phase"] == "Succeeded"
    events = server.bodies("/event")
    messages = [e["metadata"]["eventMessage"] for e in events]
    assert any("canary 25% -> 100%" in m for m in messages), messages
    assert all(e["metadata"]["eventType"] in ("Normal", "Warning") for e in events)
    assert all(e["metadata"]["timestamp"].isdigit() and e["metadata"]["cmd"] == "run event" for e in events)
    assert {e["name"] for e in events} == {"web"}
    assert [weight(s) for s in snaps.specs] == [1, 25, 100]


def test_a_failing_pre_rollout_hook_rolls_back_before_any_traffic_moves_and_notifies(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    original = httproute(kube_admin, ns)
    server = HookServer({"/pre-rollout": 500})
    sink = WebhookSink()
    snaps = RouteSnapshots(kube_admin, ns)
    _, origin = start(
        kube_admin, ns, prometheus, load_scenario, 32, stages=THREE, consecutiveErrorLimit=1,
        hooks=hooks(server.url, "pre-rollout", retries=1),
        notify=[{"name": "ops", "url": sink.url + "/n", "severity": "warning"}],
    )  # fmt: skip
    with controller_in_process(kube_admin, namespace=ns, origin=origin, prometheus_url=prometheus.url):
        status = wait_for("the rollback", final(kube_admin, ns), timeout=60)
        wait_for("two notifications", lambda: len(sink.received) >= 2, timeout=10)
    snaps.stop()
    server.close()
    sink.close()
    assert status["phase"] == "RolledBack"
    assert "pre-rollout hooks failed 2 checks in a row (limit 1)" in status["reason"]
    assert "HTTP 500" in status["reason"] and "2 attempts" in status["reason"], "retries are counted"
    assert server.paths().count("/pre-rollout") == 4, "two checks, each with one retry"
    assert snaps.specs == [], "the route was never touched"
    assert read_route(kube_admin, ns)["spec"] == original["spec"]
    reasons = [e.reason for e in gate_events(kube_admin, ns, "web")]
    assert "HookFailed" in reasons and "RolledBack" in reasons and "Started" not in reasons
    assert [b["event"] for _, b in sink.received] == ["HookFailed", "RolledBack"]
    assert sink.received[0][1]["severity"] == "warning"


def test_an_unanswered_confirm_traffic_increase_hook_holds_then_fails_the_stage_at_its_deadline(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    original = httproute(kube_admin, ns)
    server = HookServer({"/confirm-traffic-increase": "hang"})
    stages = [dict(THREE[0], maxDuration="4m"), *THREE[1:]]
    _, origin = start(
        kube_admin, ns, prometheus, load_scenario, 33, stages=stages,
        hooks=hooks(server.url, "confirm-traffic-increase", timeout="0.3s"),
    )  # fmt: skip
    with controller_in_process(
        kube_admin, namespace=ns, origin=origin, prometheus_url=prometheus.url, rate=30.0
    ):
        held = wait_for(
            "the hold",
            lambda: (s := gate_status(kube_admin, ns, "web")).get("waitingSince") and s,
            timeout=60,
        )
        assert held["phase"] == "Progressing" and held["stage"] == 0 and "did not answer" in held["reason"]
        status = wait_for("the stage to fail", final(kube_admin, ns), timeout=90)
    server.close()
    assert status["phase"] == "RolledBack", status["reason"]
    assert "confirm-traffic-increase hook has not answered" in status["reason"]
    assert "deadline 240s" in status["reason"], "the stage's maxDuration is the hook's deadline"
    assert read_route(kube_admin, ns)["spec"] == original["spec"]
    reasons = [e.reason for e in gate_events(kube_admin, ns, "web")]
    assert reasons.count("HookUnanswered") == 1 and "RolledBack" in reasons


def test_mirror_and_ab_stages_are_routed_on_the_httproute_and_cleared_on_promotion(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    httproute(kube_admin, ns)
    snaps = RouteSnapshots(kube_admin, ns)
    stages = [
        {"weight": 0, "mirror": 10, "minDuration": "1m", "minSamples": 0, "requirePass": False},
        {"weight": 0, "match": {"headers": {"X-Canary": "always"}}, "minDuration": "1m", "minSamples": 0,
         "requirePass": False},
        {"weight": 50, "minDuration": "1m", "minSamples": 500},
        {"weight": 100, "minDuration": "1m", "minSamples": 500},
    ]  # fmt: skip
    _, origin = start(kube_admin, ns, prometheus, load_scenario, 34, stages=stages)
    with controller_in_process(kube_admin, namespace=ns, origin=origin, prometheus_url=prometheus.url):
        status = wait_for("the end", final(kube_admin, ns), timeout=90)
    snaps.stop()
    assert status["phase"] == "Promoted", status["reason"]
    seen = [
        (weight(s), (mirror(s) or {}).get("requestMirror", {}).get("percent"), len(ab_rules(s)))
        for s in snaps.specs
    ]
    # each write shows up as one version; collapse repeats and check the order of the states the route went through
    states = [x for i, x in enumerate(seen) if i == 0 or seen[i - 1] != x]
    assert (0, 10, 0) in states, states
    assert (0, None, 1) in states, states
    assert states.index((0, 10, 0)) < states.index((0, None, 1)) < states.index((50, None, 0))
    assert states[-1] == (100, None, 0)
    assert all(not (m and w > 0) for w, m, _ in seen), "never a mirror while the canary takes live traffic"
    ab = next(ab_rules(s)[0] for s in snaps.specs if ab_rules(s))
    headers = ab["matches"][0]["headers"]
    assert {"type": "Exact", "name": "x-canary", "value": "always"} in headers
    assert [b["name"] for b in ab["backendRefs"]] == [CANARY]
    last = read_route(kube_admin, ns)
    assert not ab_rules(last["spec"]) and mirror(last["spec"]) is None


def test_a_dry_run_gate_walks_its_stages_without_changing_the_route_or_paging_anyone(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    original = httproute(kube_admin, ns)
    sink = WebhookSink()
    server = HookServer({})
    snaps = RouteSnapshots(kube_admin, ns)
    _, origin = start(
        kube_admin, ns, prometheus, load_scenario, 35, stages=THREE, dryRun=True,
        hooks=hooks(server.url, "pre-rollout", "event"), notify=[{"name": "ops", "url": sink.url + "/n"}],
    )  # fmt: skip
    with controller_in_process(kube_admin, namespace=ns, origin=origin, prometheus_url=prometheus.url):
        status = wait_for("the end", final(kube_admin, ns), timeout=60)
        time.sleep(0.5)
    snaps.stop()
    sink.close()
    server.close()
    assert status["phase"] == "Promoted" and status["dryRun"] is True
    moves = [h["action"] for h in status["history"] if h["action"] not in ("", "hold")]
    assert moves == ["start", "advance", "advance", "promote"]
    assert snaps.specs == [], "validated with dryRun=All, never stored"
    after = read_route(kube_admin, ns)
    assert after["spec"] == original["spec"] and ORIGINAL_ANNOTATION not in after["metadata"].get(
        "annotations", {}
    )
    assert sink.received == [] and server.calls == []
    events = gate_events(kube_admin, ns, "web")
    assert events and all(e.message.startswith("[dry run] ") for e in events)


def test_a_routing_change_failing_past_the_progress_deadline_pages_the_owners_once(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    httproute(kube_admin, ns, owner="someone-else")  # owned by another gate: every write is refused
    sink = WebhookSink()
    _, origin = start(
        kube_admin, ns, prometheus, load_scenario, 36, stages=THREE, progressDeadline="2m",
        notify=[{"name": "pager", "url": sink.url + "/p", "severity": "critical"}],
    )  # fmt: skip
    with controller_in_process(kube_admin, namespace=ns, origin=origin, prometheus_url=prometheus.url):
        wait_for("the page", lambda: sink.received, timeout=60)
        time.sleep(2)  # two more minutes of gate time: no second page
        status = gate_status(kube_admin, ns, "web")
    sink.close()
    assert [b["event"] for _, b in sink.received] == ["ProgressDeadlineExceeded"]
    page = sink.received[0][1]
    assert page["severity"] == "critical" and "team-checkout" in page["message"]
    assert "still not made after" in page["message"] and "progressDeadline 120s" in page["message"]
    assert status["intent"]["done"] is False, "still retrying the change"
    assert status["escalation"]["progressDeadline"]
    reasons = [e.reason for e in gate_events(kube_admin, ns, "web")]
    assert reasons.count("ProgressDeadlineExceeded") == 1


def test_deleting_a_gate_mid_rollout_reverts_its_route_only_with_revert_on_deletion(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    custom = client.CustomObjectsApi(kube_admin)
    original = httproute(kube_admin, ns)
    httproute(kube_admin, ns, name="kept", owner="other")
    long = [{"weight": 5, "minDuration": "1h"}, {"weight": 100, "minDuration": "1h"}]
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=37)
    create_gate(kube_admin, ns, gate_body("web", service=sc.service, stages=long, revertOnDeletion=True))
    create_gate(kube_admin, ns, gate_body("other", service=sc.service, stages=long, route="kept"))
    with controller_in_process(
        kube_admin, namespace=ns, origin=sc.end_ms / 1000 - 20 * 60, prometheus_url=prometheus.url
    ):
        for name, route in (("web", "web"), ("other", "kept")):
            wait_for(f"{name} at 5%", lambda r=route: weight(read_route(kube_admin, ns, r)["spec"]) == 5)
        gate = wait_for(
            "the finalizer",
            lambda: (g := read_gate(kube_admin, ns, "web"))["metadata"].get("finalizers") and g,
        )
        assert gate["metadata"]["finalizers"] == ["gatekeeper.dev/revert-on-deletion"]
        assert not read_gate(kube_admin, ns, "other")["metadata"].get("finalizers")
        for name in ("web", "other"):
            custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        wait_for("the Gate to go", lambda: not gate_exists(custom, ns, "web"), timeout=30)
    after = read_route(kube_admin, ns)
    assert after["spec"] == original["spec"], "reverted to the split saved before the first write"
    assert ORIGINAL_ANNOTATION not in after["metadata"].get("annotations", {})
    assert weight(read_route(kube_admin, ns, "kept")["spec"]) == 5, "without revertOnDeletion the route stays"
    events = [e for e in gate_events(kube_admin, ns, "web") if e.reason == "RevertedOnDeletion"]
    assert len(events) == 1 and "canary now 0%" in events[0].message


def gate_exists(custom: Any, ns: str, name: str) -> bool:
    try:
        custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        return True
    except client.exceptions.ApiException as e:
        if e.status == 404:
            return False
        raise
