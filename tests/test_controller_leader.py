"""Two (or three) controller replicas on one Lease: only the leader acts; failover after kill -9, after a
graceful stop, and after the leader was paused (SIGSTOP), with zero writes from a deposed leader.

Who wrote what is read from the API server: the Lease's holder, and the Gate's ``managedFields`` (each replica
writes status with its own field manager ``gatekeeper@<identity>``, and the server records the time of each
manager's last write). Lease settings are short (3 s / 2 s / 0.5 s) so failover takes seconds.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time
from typing import Any

import pytest

from gatekeeper.sim.scenario import ArmProfile
from tests.controller_support import (
    BUSY,
    RouteRecorder,
    controller_in_process,
    create_gate,
    gate_body,
    gate_status,
    httproute,
    install_gate_crd,
    lease_holder,
    read_gate,
    spawn_controller,
    status_managers,
    wait_for,
)
from tests.soak.promproxy import PromProxy

pytestmark = pytest.mark.k8s
RATE = 30.0


@pytest.fixture(scope="module")
def crd(kube_admin):  # type: ignore[no-untyped-def]
    install_gate_crd(kube_admin)


@pytest.fixture
def rollout(crd, kube_cluster, kube_admin, kube_namespace, prometheus, load_scenario, tmp_path):  # type: ignore[no-untyped-def]
    """A gate over healthy data, a route recorder, and a function starting a replica on the shared gate clock."""
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=31)
    httproute(kube_admin, kube_namespace)
    recorder = RouteRecorder(kube_admin, kube_namespace)
    create_gate(kube_admin, kube_namespace, gate_body("web", service=sc.service))
    origin, anchor = sc.end_ms / 1000 - 28 * 60, time.time()
    procs: list[Any] = []

    def replica(identity: str, *, cli: bool = False) -> Any:
        p = spawn_controller(
            kube_cluster.kubeconfig, namespace=kube_namespace, prometheus=prometheus.url, identity=identity,
            origin=origin, anchor=anchor, rate=RATE, log=tmp_path / f"{identity}.log", cli=cli,
        )  # fmt: skip
        procs.append(p)
        return p

    yield replica, recorder
    recorder.stop()
    for p in procs:
        p.signal(signal.SIGCONT)
        p.stop(10)


def managers(api: Any, ns: str) -> dict[str, str]:
    return {
        k: v for k, v in status_managers(read_gate(api, ns, "web")).items() if k.startswith("gatekeeper@")
    }


def test_only_the_leader_acts_and_a_standby_takes_over_after_kill_9_or_a_graceful_stop(
    rollout, kube_admin, kube_namespace, record_property
):  # type: ignore[no-untyped-def]
    replica, recorder = rollout
    ns = kube_namespace
    a = replica("a", cli=True)  # the real CLI process
    wait_for("a to lead", lambda: lease_holder(kube_admin, ns) == "a", timeout=90)
    b = replica("b")
    wait_for("the first advance", lambda: gate_status(kube_admin, ns, "web").get("stage", 0) >= 1, timeout=60)
    time.sleep(1.0)  # b campaigns meanwhile
    assert set(managers(kube_admin, ns)) == {"gatekeeper@a"}, "a standby wrote the Gate's status"

    t0 = time.monotonic()
    a.signal(signal.SIGKILL)
    wait_for("b to take the Lease", lambda: lease_holder(kube_admin, ns) == "b", timeout=30)
    crash_failover = time.monotonic() - t0
    wait_for("b to act", lambda: "gatekeeper@b" in managers(kube_admin, ns), timeout=30)
    acting = time.monotonic() - t0
    assert crash_failover < 20, f"failover after kill -9 took {crash_failover:.1f}s"

    c = replica("c")
    time.sleep(1.0)
    t1 = time.monotonic()
    assert b.stop() == 0  # SIGTERM: finish the look in flight, release the Lease, exit 0
    wait_for("c to take the Lease", lambda: lease_holder(kube_admin, ns) == "c", timeout=30)
    graceful_failover = time.monotonic() - t1
    wait_for("promotion", lambda: gate_status(kube_admin, ns, "web").get("phase") == "Promoted", timeout=90)
    assert c.stop() == 0
    time.sleep(0.5)
    assert recorder.values() == [1, 5, 25, 50, 100]
    assert set(managers(kube_admin, ns)) <= {"gatekeeper@a", "gatekeeper@b", "gatekeeper@c"}
    for name, value in (("failover_kill9_s", crash_failover), ("first_write_after_kill9_s", acting),
                        ("failover_graceful_s", graceful_failover)):  # fmt: skip
        record_property(name, round(value, 2))
    print(
        f"failover: kill -9 {crash_failover:.2f}s (acting {acting:.2f}s), graceful stop {graceful_failover:.2f}s"
    )


def test_a_paused_leader_wakes_up_deposed_writes_nothing_and_exits(rollout, kube_admin, kube_namespace):  # type: ignore[no-untyped-def]
    replica, recorder = rollout
    ns = kube_namespace
    a = replica("a")
    wait_for("a to lead", lambda: lease_holder(kube_admin, ns) == "a", timeout=60)
    b = replica("b")
    wait_for("the first advance", lambda: gate_status(kube_admin, ns, "web").get("stage", 0) >= 1, timeout=60)
    a.signal(signal.SIGSTOP)
    stopped = time.time()
    wait_for("b to take the Lease", lambda: lease_holder(kube_admin, ns) == "b", timeout=30)
    wait_for("b to act", lambda: "gatekeeper@b" in managers(kube_admin, ns), timeout=30)
    resumed = time.time()
    a.signal(signal.SIGCONT)
    assert a.wait(15) == 1  # it noticed it lost the Lease and exited
    last_a = dt.datetime.fromisoformat(
        managers(kube_admin, ns)["gatekeeper@a"].replace("Z", "+00:00")
    ).timestamp()
    assert last_a <= stopped + 1 < resumed, "the paused leader wrote after it was deposed"
    assert "lost Lease" in a.log.read_text()
    weights = recorder.values()
    assert weights == sorted(set(weights)) and set(weights) <= {1, 5, 25, 50, 100}, weights
    assert b.poll() is None  # the new leader goes on


def test_a_graceful_stop_lets_the_look_in_flight_write_its_advance_before_releasing_the_lease(
    crd, kube_admin, kube_namespace, prometheus, load_scenario
):  # type: ignore[no-untyped-def]
    # found by the failover soak (tests/soak/failover.py): a stop cancelled the gate tasks, which dropped their
    # reconciles from the in-flight set, so the Lease was released while a look was still running and its
    # writes could land after a standby took over (or were refused and the decision lost)
    ns = kube_namespace
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=33)
    httproute(kube_admin, ns)
    create_gate(kube_admin, ns, gate_body("web", service=sc.service))
    armed, stopping, ctl_box = threading.Event(), threading.Event(), []

    def on_request(mode: str) -> None:  # the proxy answers this query 1.5 s later: the look is in flight
        if armed.is_set() and not stopping.is_set():
            stopping.set()
            ctl_box[0].stop()

    proxy = PromProxy(prometheus.url, delay=1.5, on_request=on_request)
    try:
        with controller_in_process(
            kube_admin, namespace=ns, origin=sc.end_ms / 1000 - 28 * 60, rate=60.0, identity="graceful",
            prometheus_url=proxy.url,
        ) as ctl:  # fmt: skip
            ctl_box.append(ctl)
            wait_for("the start", lambda: (gate_status(kube_admin, ns, "web").get("intent") or {}).get("done"),
                     timeout=60)  # fmt: skip
            time.sleep(2.5)  # the stage's minute has long passed (gate clock x60): any look now advances
            proxy.mode = "slow"
            armed.set()
            wait_for("a look to be in flight", stopping.is_set, timeout=30)
    finally:
        proxy.close()
    s = gate_status(kube_admin, ns, "web")
    assert s["stage"] == 1 and s["intent"]["done"] and s["weight"] == 5, s.get("reason")
    assert lease_holder(kube_admin, ns, "gk-graceful") is None  # released, after the write
