"""kill -9 of the controller at each transition edge: no routing change is lost or doubled.

Controller processes (the ``gatekeeper controller run`` entry point, forked from a preloaded fork server so a
restart takes a fraction of a second) kill themselves with SIGKILL at a chosen edge
(``--crash-at POINT:N``: the N-th time the process reaches POINT); the next process resumes. Gate time is
shared by every process (same clock origin, anchor and rate), so restarts neither stretch nor shrink stages.
The route's history is read from the API server by a watch: every stored canary weight, in order.

CI runs one rollout killed at each edge once. ``GATEKEEPER_CHAOS_RUNS=N`` adds N rollouts killed at random
edges (seeded); ``bench/controller_chaos.py`` runs many and reports counts.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.controller.executor import POINTS
from gatekeeper.sim.scenario import ArmProfile
from tests.controller_support import (
    BUSY,
    RouteRecorder,
    canary_weight,
    create_gate,
    gate_body,
    gate_status,
    httproute,
    install_gate_crd,
    read_route,
    spawn_controller,
    wait_for,
)

pytestmark = pytest.mark.k8s

RATE = 30.0
# each process dies at one edge; counts are per process (a resumed intent passes the route edges again)
SCRIPTED = [
    "after-intent-write:1",  # the start is recorded, the route untouched
    "after-route-write:1",  # the route is at 1%, the result not recorded
    "after-result-write:2",  # the start settled, then the first advance fully done
    "before-intent-write:1",  # the next advance decided but not recorded
    "during-query:3",  # in the middle of a look
    "after-intent-write:1",  # an advance recorded, not routed
    "after-route-write:1",  # routed, not recorded
    "after-status-write:2",  # a hold recorded
    "before-status-write:2",  # a hold about to be recorded
]


@dataclass
class ChaosRun:
    weights: list[int]
    status: dict[str, Any]
    killed: int
    processes: int


def chaos_rollout(
    *, api: Any, kubeconfig: Path, namespace: str, prometheus: str, service: str, end_ms: int, points: list[str],
    logs: Path, timeout: float = 120.0,
) -> ChaosRun:  # fmt: skip
    """Run a rollout with one controller process per crash point, then one without; return what the API saw."""
    httproute(api, namespace)
    recorder = RouteRecorder(api, namespace)
    create_gate(api, namespace, gate_body("web", service=service))
    origin, anchor = end_ms / 1000 - 28 * 60, time.time()
    killed = 0
    procs = 0
    try:
        for i, point in enumerate([*points, None]):
            proc = spawn_controller(
                kubeconfig, namespace=namespace, prometheus=prometheus, identity="chaos", origin=origin,
                anchor=anchor, rate=RATE, log=logs / f"controller-{i}.log", crash_at=point,
            )  # fmt: skip
            procs += 1
            if point is None:
                try:
                    wait_for(
                        "promotion",
                        lambda: gate_status(api, namespace, "web").get("phase") in _OVER,
                        timeout=timeout,
                    )
                finally:
                    proc.stop()
                break
            try:
                wait_for(
                    f"process {i} to die at {point} (or the rollout to end first)",
                    lambda p=proc: (
                        p.poll() is not None or gate_status(api, namespace, "web").get("phase") in _OVER
                    ),
                    timeout=timeout,
                    every=0.05,
                )
            except AssertionError:
                proc.signal(signal.SIGKILL)
                raise
            if proc.poll() is None:  # the rollout ended before this process reached its crash point
                proc.stop()
                break
            code = proc.wait(5)
            assert code == -signal.SIGKILL, (
                f"process {i} ({point}) exited {code}, see {logs}/controller-{i}.log"
            )
            killed += 1
    finally:
        time.sleep(0.5)  # let the watch deliver the last change
        recorder.stop()
    return ChaosRun(recorder.values(), gate_status(api, namespace, "web"), killed, procs)


_OVER = ("Promoted", "RolledBack", "Halted", "Aborted")


def check(run: ChaosRun, api: Any, namespace: str) -> None:
    s = run.status
    assert s["phase"] == "Promoted", s.get("reason")
    assert run.weights == [1, 5, 25, 50, 100], f"lost or doubled routing changes: {run.weights}"
    assert canary_weight(read_route(api, namespace)) == 100
    assert s["intent"]["done"] is True and s["weight"] == 100
    moves = [h["time"] for h in s["history"] if h["action"] in ("start", "advance", "promote")]
    assert len(moves) == 6  # start, four advances, promote
    assert all(b - a >= 60 for a, b in itertools.pairwise(moves)), f"a stage shorter than 1m: {moves}"


@pytest.fixture(scope="module")
def crd(kube_admin):  # type: ignore[no-untyped-def]
    install_gate_crd(kube_admin)


def test_kill_9_at_every_transition_edge_loses_and_doubles_nothing(
    crd, kube_cluster, kube_admin, kube_namespace, prometheus, load_scenario, tmp_path
):  # type: ignore[no-untyped-def]
    assert {p.partition(":")[0] for p in SCRIPTED} == set(POINTS)  # every edge is covered
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=21)
    run = chaos_rollout(
        api=kube_admin, kubeconfig=kube_cluster.kubeconfig, namespace=kube_namespace, prometheus=prometheus.url,
        service=sc.service, end_ms=sc.end_ms, points=SCRIPTED, logs=tmp_path,
    )  # fmt: skip
    assert run.killed == len(SCRIPTED)
    check(run, kube_admin, kube_namespace)


RANDOM_RUNS = int(os.environ.get("GATEKEEPER_CHAOS_RUNS", "0"))


@pytest.mark.slow
@pytest.mark.skipif(RANDOM_RUNS == 0, reason="set GATEKEEPER_CHAOS_RUNS=N for N random chaos rollouts")
@pytest.mark.parametrize("seed", range(RANDOM_RUNS))
def test_kill_9_at_random_edges_loses_and_doubles_nothing(
    seed, crd, kube_cluster, kube_admin, kube_namespace, prometheus, load_scenario, tmp_path
):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    points = [f"{rng.choice(POINTS)}:{rng.randint(1, 3)}" for _ in range(rng.randint(1, 6))]
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=100 + seed)
    run = chaos_rollout(
        api=kube_admin, kubeconfig=kube_cluster.kubeconfig, namespace=kube_namespace, prometheus=prometheus.url,
        service=sc.service, end_ms=sc.end_ms, points=points, logs=tmp_path,
    )  # fmt: skip
    check(run, kube_admin, kube_namespace)
