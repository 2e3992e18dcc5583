"""Recorded decisions on the real API server: the controller stores the judgement of every look that acts in
one ConfigMap per Gate, only then, bounded, readable after the controller is gone.

Expectations are read back from the API server (the ConfigMap as stored, a watch on it, the Gate's status),
never from the controller's memory.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from typing import Any

import pytest
from kubernetes import client, watch

from gatekeeper.controller.decision_store import (
    INDEX_ANNOTATION,
    DecisionStore,
    NotOurs,
    configmap_name,
)
from gatekeeper.controller.decisions import RECORD_BYTES, decode, encode
from gatekeeper.sim.scenario import ArmProfile
from tests.controller_support import (
    BUSY,
    controller_in_process,
    create_gate,
    gate_body,
    gate_status,
    httproute,
    install_gate_crd,
    read_gate,
    wait_for,
)

pytestmark = pytest.mark.k8s


@pytest.fixture(scope="module")
def crd(kube_admin):  # type: ignore[no-untyped-def]
    install_gate_crd(kube_admin)


def settled(api: Any, ns: str, name: str, *phases: str) -> Any:
    def check() -> Any:
        s = gate_status(api, ns, name)
        return s if s.get("phase") in phases and (s.get("intent") or {}).get("done") is not False else None

    return check


class ConfigMapWrites:
    """Counts every write the API server stored to one ConfigMap (ADDED and MODIFIED events of a watch)."""

    def __init__(self, api: Any, namespace: str, name: str) -> None:
        self.events: list[str] = []
        self._watch = watch.Watch()
        core = client.CoreV1Api(api)
        rv = core.list_namespaced_config_map(namespace).metadata.resource_version
        ready = threading.Event()

        def run() -> None:
            ready.set()
            try:
                for ev in self._watch.stream(
                    core.list_namespaced_config_map, namespace, field_selector=f"metadata.name={name}",
                    resource_version=rv, timeout_seconds=300,
                ):  # fmt: skip
                    self.events.append(ev["type"])
            except Exception:  # stop() closes the stream under the reader
                pass

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(5)

    def stop(self) -> list[str]:
        self._watch.stop()
        return self.events


def stored_configmap(api: Any, ns: str, gate: str) -> dict[str, Any]:
    resp = client.CoreV1Api(api).read_namespaced_config_map(configmap_name(gate), ns, _preload_content=False)
    out: dict[str, Any] = json.loads(resp.data)
    return out


def records_of(cm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: decode(base64.b64decode(v)) for k, v in sorted((cm.get("binaryData") or {}).items())}


def test_a_promotion_records_each_advance_and_the_promotion_once_and_nothing_for_the_holds(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=21)
    httproute(kube_admin, ns)
    writes = ConfigMapWrites(kube_admin, ns, configmap_name("web"))
    create_gate(kube_admin, ns, gate_body("web", service=sc.service))
    with controller_in_process(
        kube_admin, namespace=ns, origin=sc.end_ms / 1000 - 20 * 60, prometheus_url=prometheus.url
    ):
        status = wait_for(
            "promotion", settled(kube_admin, ns, "web", "Promoted", "RolledBack", "Halted"), timeout=90
        )
        wait_for("the promotion's record", lambda: len(writes.events) >= 5, timeout=20)
    events = writes.stop()
    assert status["phase"] == "Promoted", status["reason"]
    gate = read_gate(kube_admin, ns, "web")
    looks = [h for h in status["history"] if h["action"] == "hold"]
    assert looks, "the controller held between decisions (routine looks that record nothing)"
    # one write per decision (the first creates the ConfigMap): holds and routine looks write nothing here
    assert events == ["ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "MODIFIED"]
    cm = stored_configmap(kube_admin, ns, "web")
    owner = cm["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Gate", "web", gate["metadata"]["uid"])
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gatekeeper"
    records = list(records_of(cm).values())
    index = json.loads(cm["metadata"]["annotations"][INDEX_ANNOTATION])
    assert [r["action"] for r in records] == ["advance"] * 4 + ["promote"]
    assert [e["seq"] for e in index] == [1, 2, 3, 4, 5]
    decided = [h for h in status["history"] if h["action"] in ("advance", "promote")]
    assert [r["time"] for r in records] == [h["time"] for h in decided]
    for r, h in zip(records, decided, strict=True):
        # an advance's history entry names the next stage; the record names the stage judged
        judged = h["stage"] - 1 if h["action"] == "advance" else h["stage"]
        assert (r["stage"], r["weight"], r["verdict"]) == (judged, h["weight"], "pass")
        assert r["spec_hash"] == status["specHash"] and r["spec"] == gate["spec"]
        j = r["judgement"]
        assert j["verdict"] == "pass" and j["stage"] == r["stage"]
        assert j["window"]["end"] <= r["time"] and j["window"]["start"] < j["window"]["end"]
        (sig,) = j["signals"]
        assert sig["name"] == "error-rate" and sig["verdict"] == "pass"
        assert set(sig["queries"]) and all("http_requests_total" in q for q in sig["queries"].values())
        ev = sig["evidence"]
        assert ev["e_value"] < ev["threshold"] and len(ev["path"]) == len(ev["path_t"]) > 0
        series = ev["series"]
        assert sum(series["canary"]["requests"]) == sig["canary"]["requests"]
        assert sum(series["baseline"]["events"]) == sig["baseline"]["events"]
        assert sig["effect"]["upper"] < sig["effect"]["limit"]
        assert "carry" not in sig and "carried" not in json.dumps(r)
    assert [r["to_weight"] for r in records] == [5, 25, 50, 100, None]  # the last stage is at 100 already


def test_a_revert_records_the_failing_look_with_its_numbers(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    sc = load_scenario(
        canary=ArmProfile(requests_per_second=500, error_ratio=0.05), baseline=ArmProfile(**BUSY), seed=22
    )
    httproute(kube_admin, ns)
    create_gate(kube_admin, ns, gate_body("web", service=sc.service))
    with controller_in_process(
        kube_admin, namespace=ns, origin=sc.end_ms / 1000 - 20 * 60, prometheus_url=prometheus.url
    ):
        status = wait_for("the revert", settled(kube_admin, ns, "web", "RolledBack", "Promoted"), timeout=60)
        store = DecisionStore(kube_admin)
        wait_for("its record", lambda: store.index(ns, "web"), timeout=20)
    assert status["phase"] == "RolledBack"
    # read back by a store that never wrote anything: the record outlives the controller that made it
    stored, record = DecisionStore(kube_admin).read(ns, "web")  # type: ignore[misc]
    assert (stored.seq, stored.action, record["action"]) == (1, "revert", "revert")
    assert record["phase"] == "RolledBack" and record["to_weight"] == 0 and record["weight"] == 1
    assert record["reason"] == next(h["reason"] for h in status["history"] if h["action"] == "revert")
    (sig,) = record["judgement"]["signals"]
    assert sig["verdict"] == "fail" and sig["evidence"]["max_e_value"] >= sig["evidence"]["threshold"]
    assert sig["effect"]["lower"] > sig["effect"]["limit"]
    rate = sig["canary"]["events"] / sig["canary"]["requests"]
    assert 0.03 < rate < 0.08  # the canary's 5 % as the look saw it


def test_an_abort_is_recorded_with_who_and_the_last_look(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    from gatekeeper.ops import actions

    ns = kube_namespace
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=23)
    httproute(kube_admin, ns)
    stages = [{"weight": 1, "minDuration": "30m", "minSamples": 500}, {"weight": 100, "minDuration": "1m"}]
    create_gate(kube_admin, ns, gate_body("web", service=sc.service, stages=stages))
    with controller_in_process(
        kube_admin, namespace=ns, origin=sc.end_ms / 1000 - 20 * 60, prometheus_url=prometheus.url
    ):
        wait_for("a look", lambda: gate_status(kube_admin, ns, "web").get("verdict"), timeout=30)
        actions.abort(kube_admin, namespace=ns, name="web", reason="bad release")
        wait_for("the abort", settled(kube_admin, ns, "web", "Aborted"), timeout=30)
        store = DecisionStore(kube_admin)
        wait_for("its record", lambda: store.index(ns, "web"), timeout=20)
    _, record = store.read(ns, "web")  # type: ignore[misc]
    assert record["action"] == "abort" and record["by"] and "bad release" in record["reason"]
    assert record["judgement"]["signals"][0]["name"] == "error-rate"
    assert record["judgement"]["window"]["end"] <= record["time"]


# -- the store on its own ---------------------------------------------------------------------------------
def a_gate(api: Any, ns: str, name: str = "web") -> dict[str, Any]:
    return create_gate(api, ns, gate_body(name, service="none"))


def record_at(t: float, *, action: str = "advance", filler: int = 0) -> dict[str, Any]:
    return {
        "version": 1, "time": t, "action": action, "human_hold": False, "stage": 0, "weight": 1.0,
        "verdict": "pass", "phase": "Progressing", "reason": "r", "notes": [],
        "judgement": {"signals": [{"name": "s", "evidence": {"path": [float(i) * 1.37 for i in range(filler)]}}]},
    }  # fmt: skip


def test_the_store_keeps_the_newest_records_numbered_for_good_and_rewrites_a_repeated_decision(
    crd, kube_admin, kube_namespace
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    gate = a_gate(kube_admin, ns)
    store = DecisionStore(kube_admin, max_records=3)
    for t in range(1, 6):
        store.write(gate, record_at(1000.0 + t))
    store.write(gate, record_at(1005.0))  # the same decision again (a retried write): no new number
    index = DecisionStore(kube_admin).index(ns, "web")
    assert [(s.seq, s.time) for s in index] == [(3, 1003.0), (4, 1004.0), (5, 1005.0)]
    cm = stored_configmap(kube_admin, ns, "web")
    assert sorted(cm["binaryData"]) == [f"decision-00000{i}.json.gz" for i in (3, 4, 5)]
    assert DecisionStore(kube_admin).read(ns, "web", seq=2) is None  # dropped, never renumbered
    found = DecisionStore(kube_admin).read(ns, "web", at=1004.0)
    assert found is not None and found[0].seq == 4 and found[1]["time"] == 1004.0


def test_the_store_stays_within_its_byte_budget_and_keeps_the_newest_whole(crd, kube_admin, kube_namespace):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    gate = a_gate(kube_admin, ns)
    blob, _ = encode(record_at(1.0, filler=4000))
    store = DecisionStore(kube_admin, max_bytes=int(len(blob) * 2.5))
    for t in range(1, 6):
        store.write(gate, record_at(float(t), filler=4000))
    index = store.index(ns, "web")
    assert [s.seq for s in index] == [4, 5] and sum(s.bytes for s in index) <= store.max_bytes
    cm = stored_configmap(kube_admin, ns, "web")
    assert sum(len(base64.b64decode(v)) for v in cm["binaryData"].values()) == sum(s.bytes for s in index)


def test_an_oversized_record_is_thinned_and_says_so(tmp_path) -> None:  # no API server needed
    big = record_at(1.0)
    series = {"t": list(range(120)), "canary": {"events": list(range(120)), "requests": list(range(120))},
              "baseline": {"events": list(range(120)), "requests": list(range(120))}, "unit": "requests", "bucket": 1}  # fmt: skip
    big["judgement"]["signals"] = [
        {"name": f"s{i}", "evidence": {"series": series, "path": [i / 7 + k / 13 for k in range(200)]}}
        for i in range(200)
    ]
    blob, stored = encode(big, limit=8 * 1024)
    assert len(blob) <= 8 * 1024
    assert any("to fit the record limit" in n for n in stored["notes"])
    assert decode(blob) == json.loads(gzip.decompress(blob)) == stored
    small, same = encode(record_at(1.0))
    assert len(small) < RECORD_BYTES and same["notes"] == []


def test_a_configmap_gatekeeper_does_not_manage_is_never_touched(crd, kube_admin, kube_namespace):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    gate = a_gate(kube_admin, ns)
    core = client.CoreV1Api(kube_admin)
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": configmap_name("web")}, "data": {"mine": "yes"}}
    )
    with pytest.raises(NotOurs, match="left alone"):
        DecisionStore(kube_admin).write(gate, record_at(1.0))
    assert core.read_namespaced_config_map(configmap_name("web"), ns).data == {"mine": "yes"}
    assert DecisionStore(kube_admin).index(ns, "web") == []


def test_records_of_an_earlier_gate_with_the_same_name_are_neither_shown_nor_kept(
    crd, kube_admin, kube_namespace
):  # type: ignore[no-untyped-def]
    from gatekeeper.spec.crd import GROUP, PLURAL, VERSION

    ns = kube_namespace
    first = a_gate(kube_admin, ns)
    DecisionStore(kube_admin).write(first, record_at(1.0))
    DecisionStore(kube_admin).write(first, record_at(2.0))
    client.CustomObjectsApi(kube_admin).delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "web")
    second = wait_for("a new Gate", lambda: _recreate(kube_admin, ns), timeout=10)
    assert DecisionStore(kube_admin).index(ns, "web", uid=second["metadata"]["uid"]) == []
    DecisionStore(kube_admin).write(second, record_at(3.0))
    index = DecisionStore(kube_admin).index(ns, "web", uid=second["metadata"]["uid"])
    assert [(s.seq, s.time) for s in index] == [(1, 3.0)]
    owner = stored_configmap(kube_admin, ns, "web")["metadata"]["ownerReferences"][0]
    assert owner["uid"] == second["metadata"]["uid"]


def _recreate(api: Any, ns: str) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return a_gate(api, ns)
    except ApiException:
        return None


def test_a_long_gate_name_gets_a_valid_configmap_name() -> None:
    name = "g" * 250
    cm = configmap_name(name)
    assert len(cm) <= 253 and cm != configmap_name("g" * 249) and cm.startswith("gatekeeper-decisions-")


def test_an_outage_that_holds_for_a_human_is_recorded_with_the_looks_missing_evidence(
    crd, kube_admin, kube_namespace, dead_prometheus_url
):  # type: ignore[no-untyped-def]
    ns = kube_namespace
    httproute(kube_admin, ns)
    create_gate(kube_admin, ns, gate_body("web", service="nobody", outageBudget="1m"))
    import time

    with controller_in_process(
        kube_admin, namespace=ns, origin=time.time() - 3600, prometheus_url=dead_prometheus_url
    ):
        status = wait_for("the hold", settled(kube_admin, ns, "web", "Paused"), timeout=60)
        store = DecisionStore(kube_admin)
        wait_for("its record", lambda: store.index(ns, "web"), timeout=20)
    (stored,) = store.index(ns, "web")  # the routine holds before the budget ran out recorded nothing
    assert stored.human_hold and stored.action == "hold" and stored.phase == "Paused"
    _, record = store.read(ns, "web")  # type: ignore[misc]
    assert "held for a human" in status["reason"] and record["reason"] == next(
        h["reason"] for h in status["history"] if h["time"] == record["time"]
    )
    (sig,) = record["judgement"]["signals"]
    assert sig["verdict"] == "error" and "127.0.0.1" in sig["reason"]  # what the look could not reach
