"""The controller end to end, in-process, on the real API server and the real Prometheus.

Gate time runs 120x faster than real time (``ScaledClock``) from an origin inside the recorded data, so stages of
a minute take a second. Expectations are read back from the API server (route objects as a watch saw them,
the Gate's status, Events), never from the controller's memory.
"""

from __future__ import annotations

import itertools
import json

import pytest

from gatekeeper.routing.base import ORIGINAL_ANNOTATION
from gatekeeper.sim.scenario import ArmProfile
from tests.controller_support import (
    BUSY,
    FIVE_STAGES,
    RouteRecorder,
    WebhookSink,
    canary_weight,
    controller_in_process,
    create_gate,
    gate_body,
    gate_events,
    gate_status,
    httproute,
    install_gate_crd,
    load,
    read_route,
    regression_scenario,
    wait_for,
)
from tests.fixtures.prometheus import current_step_ms

pytestmark = pytest.mark.k8s


@pytest.fixture(scope="module")
def crd(kube_admin):  # type: ignore[no-untyped-def]
    install_gate_crd(kube_admin)


def phase_is(api, ns: str, name: str, *phases: str):  # type: ignore[no-untyped-def]
    def check():  # type: ignore[no-untyped-def]
        s = gate_status(api, ns, name)
        return s if s.get("phase") in phases and (s.get("intent") or {}).get("done") is not False else None

    return check


def test_a_healthy_canary_is_promoted_through_1_5_25_50_100(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=11)
    httproute(kube_admin, ns)
    recorder = RouteRecorder(kube_admin, ns)
    sink = WebhookSink()
    gate = gate_body("web", service=sc.service, notify=[{"name": "ops", "url": sink.url + "/hook"}])
    create_gate(kube_admin, ns, gate)
    origin = sc.end_ms / 1000 - 20 * 60
    with controller_in_process(kube_admin, namespace=ns, origin=origin, prometheus_url=prometheus.url):
        status = wait_for(
            "promotion", phase_is(kube_admin, ns, "web", "Promoted", "RolledBack", "Halted"), timeout=60
        )
    recorder.stop()
    sink.close()
    assert status["phase"] == "Promoted", status["reason"]
    assert recorder.values() == [1, 5, 25, 50, 100]  # every stage once, none skipped, none repeated
    assert canary_weight(read_route(kube_admin, ns)) == 100
    assert (status["stage"], status["weight"]) == (4, 100)
    history = status["history"]
    assert [h["action"] for h in history if h["action"] not in ("hold", "")] == [
        "start", "advance", "advance", "advance", "advance", "promote",
    ]  # fmt: skip
    moves = [h for h in history if h["action"] in ("advance", "promote")]
    for h in moves:
        assert h["verdict"] == "pass"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Promoted"] == "True"
    reasons = [e.reason for e in gate_events(kube_admin, ns, "web")]
    assert sorted(reasons) == sorted(["Started", "Advanced", "Advanced", "Advanced", "Advanced", "Promoted"])
    wait_for("six notifications", lambda: len(sink.received) >= 6, timeout=10)
    assert [b["event"] for _, b in sink.received] == [
        "Started",
        "Advanced",
        "Advanced",
        "Advanced",
        "Advanced",
        "Promoted",
    ]
    assert sink.received[-1][1]["phase"] == "Promoted"


def test_each_stage_lasts_at_least_its_minimum_duration(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=12)
    httproute(kube_admin, ns)
    stages = [dict(s, minDuration="2m") for s in FIVE_STAGES[:3]]
    create_gate(kube_admin, ns, gate_body("web", service=sc.service, stages=stages))
    with controller_in_process(
        kube_admin, namespace=ns, origin=sc.end_ms / 1000 - 20 * 60, prometheus_url=prometheus.url
    ):
        status = wait_for(
            "promotion", phase_is(kube_admin, ns, "web", "Promoted", "RolledBack", "Halted"), timeout=60
        )
    assert status["phase"] == "Promoted", status["reason"]
    times = [h["time"] for h in status["history"] if h["action"] in ("start", "advance", "promote")]
    assert len(times) == 4
    # a stage starts once its split is in place (just after the decision), so decision gaps are >= 2 min
    assert all(b - a >= 120 for a, b in itertools.pairwise(times)), times


def test_a_bad_canary_is_reverted_at_the_first_stage_and_the_route_restored_exactly(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    sc = load_scenario(
        canary=ArmProfile(requests_per_second=500, error_ratio=0.05), baseline=ArmProfile(**BUSY), seed=13
    )
    original = httproute(kube_admin, ns)
    recorder = RouteRecorder(kube_admin, ns)
    create_gate(kube_admin, ns, gate_body("web", service=sc.service))
    with controller_in_process(
        kube_admin, namespace=ns, origin=sc.end_ms / 1000 - 20 * 60, prometheus_url=prometheus.url
    ):
        status = wait_for(
            "the revert", phase_is(kube_admin, ns, "web", "RolledBack", "Promoted", "Halted"), timeout=60
        )
    recorder.stop()
    assert status["phase"] == "RolledBack", status["reason"]
    assert status["stage"] == 0 and status["weight"] == 0
    assert (
        "error-rate" in status["reason"] and "rolled back at stage 1" in status["reason"]
    )  # people count stages from 1
    assert recorder.values() == [1, 0]
    after = read_route(kube_admin, ns)
    assert json.dumps(after["spec"], sort_keys=True) == json.dumps(original["spec"], sort_keys=True)
    assert ORIGINAL_ANNOTATION not in after["metadata"]["annotations"]
    events = {e.reason: e for e in gate_events(kube_admin, ns, "web")}
    assert events["RolledBack"].type == "Warning" and "error-rate" in events["RolledBack"].message
    assert {c["type"]: c["status"] for c in status["conditions"]}["RolledBack"] == "True"


def test_a_regression_after_the_rollback_window_closed_halts_without_revert(
    crd, kube_admin, kube_namespace, prometheus
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    end = current_step_ms()
    origin = end / 1000 - 20 * 60
    service = f"regression-{ns}"
    sc = regression_scenario(
        service=service, end_ms=end, switch_ms=int((origin + 480) * 1000) // 15000 * 15000,
        bad=ArmProfile(requests_per_second=500, error_ratio=0.10),
    )  # fmt: skip
    load(prometheus.remote_write_url, sc.series)
    httproute(kube_admin, ns)
    recorder = RouteRecorder(kube_admin, ns)
    # stage 1 stays 30 min; its rollback window closes 2 min in; the canary regresses 8 min after the start
    stages = [
        {"weight": 1, "minDuration": "1m", "minSamples": 500},
        {
            "weight": 5,
            "minDuration": "30m",
            "minSamples": 500,
            "rollbackWindow": {"mode": "closes", "after": "2m"},
        },
        {"weight": 100, "minDuration": "1m"},
    ]
    gate = gate_body("web", service=service, stages=stages)
    create_gate(kube_admin, ns, gate)
    with controller_in_process(kube_admin, namespace=ns, origin=origin, prometheus_url=prometheus.url):
        status = wait_for(
            "the halt", phase_is(kube_admin, ns, "web", "Halted", "RolledBack", "Promoted"), timeout=60
        )
    recorder.stop()
    assert status["phase"] == "Halted", status["reason"]
    assert (status["stage"], status["weight"]) == (1, 5)
    assert recorder.values() == [1, 5]  # no revert
    assert canary_weight(read_route(kube_admin, ns)) == 5
    esc = status["escalation"]
    assert esc["owners"] == ["team-checkout"] and esc["runbook"].startswith("https://runbooks.example")
    assert esc["forwardFix"].startswith("ship the fix") and "past its rollback window" in esc["windowClosed"]
    assert status["windowClosed"] is True
    assert [h["action"] for h in status["history"] if h["action"] not in ("hold", "")] == [
        "start",
        "advance",
        "halt",
    ]
    halted = [e for e in gate_events(kube_admin, ns, "web") if e.reason == "Halted"]
    assert len(halted) == 1 and halted[0].type == "Warning" and "team-checkout" in halted[0].message


def test_prometheus_down_holds_and_never_advances(
    crd, kube_admin, kube_namespace, fresh_prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    """Two gates lose Prometheus mid-rollout: one with a long outage budget holds; one whose budget runs out
    takes its stage policy (onDeadline: hold) and pauses for a human. Neither advances, neither reverts."""
    ns = kube_namespace
    sc = load_scenario(
        canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=14, target=fresh_prometheus
    )
    for name in ("long", "short"):
        httproute(kube_admin, ns, name=name, owner=name)
    recorders = {name: RouteRecorder(kube_admin, ns, name) for name in ("long", "short")}
    slow = [
        dict(s, minDuration="1m" if i == 0 else "5m", onDeadline="hold") for i, s in enumerate(FIVE_STAGES)
    ]
    create_gate(kube_admin, ns, gate_body("long", service=sc.service, stages=slow, route="long",
                                          outageBudget="1h", consecutiveErrorLimit=1000))  # fmt: skip
    create_gate(kube_admin, ns, gate_body("short", service=sc.service, stages=slow, route="short",
                                          outageBudget="2m", consecutiveErrorLimit=1000))  # fmt: skip
    origin = sc.end_ms / 1000 - 20 * 60
    with controller_in_process(kube_admin, namespace=ns, origin=origin, prometheus_url=fresh_prometheus.url):
        for name in ("long", "short"):  # stage 1's routing change made (its intent done), not only recorded
            wait_for(
                f"{name} at stage 1",
                lambda n=name: (
                    (
                        gate_status(kube_admin, ns, n).get("stage"),
                        canary_weight(read_route(kube_admin, ns, n)),
                    )
                    == (1, 5)
                ),
                timeout=60,
            )
        fresh_prometheus.stop()
        seen = {name: len(r.values()) for name, r in recorders.items()}
        weights = {name: canary_weight(read_route(kube_admin, ns, name)) for name in recorders}
        wait_for(
            "8 failed looks",
            lambda: gate_status(kube_admin, ns, "long").get("consecutiveErrors", 0) >= 8,
            timeout=60,
        )
        short = wait_for("the budget to run out", phase_is(kube_admin, ns, "short", "Paused"), timeout=60)
        long = gate_status(kube_admin, ns, "long")
    for r in recorders.values():
        r.stop()
    for name in recorders:
        assert recorders[name].values()[seen[name] :] == [], "routing changed during the outage"
        assert canary_weight(read_route(kube_admin, ns, name)) == weights[name]
    assert long["phase"] == "Progressing" and long["verdict"] == "error"
    assert "cannot reach Prometheus" in long["reason"]
    assert (long["stage"], long["weight"]) == (1, weights["long"]) == (1, 5)
    assert (short["stage"], short["weight"]) == (1, weights["short"]) == (1, 5)
    assert "outage budget" in short["reason"] and "held for a human" in short["reason"]
    held = [e for e in gate_events(kube_admin, ns, "short") if e.reason == "Held"]
    assert len(held) == 1 and held[0].type == "Warning"


def test_a_revert_never_raises_exposure_above_the_stage_even_if_the_saved_split_had_more(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    """The route had 10% canary before the gate took it over; the gate starts at 1%, the canary fails: the
    revert goes to 0%, not back to the saved 10% (Argo Rollouts #4612: a rollback that raised exposure)."""
    ns = kube_namespace
    sc = load_scenario(
        canary=ArmProfile(requests_per_second=500, error_ratio=0.05), baseline=ArmProfile(**BUSY), seed=15
    )
    httproute(kube_admin, ns, canary=10)
    recorder = RouteRecorder(kube_admin, ns)
    create_gate(kube_admin, ns, gate_body("web", service=sc.service))
    with controller_in_process(
        kube_admin, namespace=ns, origin=sc.end_ms / 1000 - 20 * 60, prometheus_url=prometheus.url
    ):
        status = wait_for(
            "the revert", phase_is(kube_admin, ns, "web", "RolledBack", "Promoted", "Halted"), timeout=60
        )
    recorder.stop()
    assert status["phase"] == "RolledBack", status["reason"]
    assert recorder.values() == [1, 0] and status["weight"] == 0
