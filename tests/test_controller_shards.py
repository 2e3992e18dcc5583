"""Sharding on the real API server: two controllers, shards 0/2 and 1/2, each acts on exactly the Gates whose
UID hashes to it (read back from each Gate's status field managers) and every Gate is acted on."""

from __future__ import annotations

import pytest

from gatekeeper.controller.runtime import Settings, shard_of
from gatekeeper.sim.scenario import ArmProfile
from tests.controller_support import (
    BUSY,
    controller_in_process,
    create_gate,
    gate_body,
    gate_status,
    install_gate_crd,
    read_gate,
    status_managers,
    wait_for,
)

pytestmark = pytest.mark.k8s
LONG = [{"weight": 5, "minDuration": "1h"}, {"weight": 100, "minDuration": "1h"}]


def test_each_shard_acts_on_its_own_gates_only(kube_admin, kube_namespace, prometheus, load_scenario):  # type: ignore[no-untyped-def]
    install_gate_crd(kube_admin)
    ns = kube_namespace
    sc = load_scenario(canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=41)
    owner: dict[str, int] = {}
    for i in range(12):  # until both shards own a Gate (UIDs are random)
        name = f"g{i}"
        owner[name] = shard_of(
            create_gate(kube_admin, ns, gate_body(name, service=sc.service, stages=LONG, route=None)), 2
        )
        if len(set(owner.values())) == 2 and i >= 3:
            break
    assert set(owner.values()) == {0, 1}
    origin = sc.end_ms / 1000 - 20 * 60
    with (
        controller_in_process(kube_admin, namespace=ns, origin=origin, prometheus_url=prometheus.url,
                              identity="shard-0", shard=0, shards=2),
        controller_in_process(kube_admin, namespace=ns, origin=origin, prometheus_url=prometheus.url,
                              identity="shard-1", shard=1, shards=2),
    ):  # fmt: skip
        for name in owner:
            wait_for(f"{name} to start", lambda n=name: gate_status(kube_admin, ns, n).get("weight") == 5)
    for name, shard in owner.items():
        assert set(status_managers(read_gate(kube_admin, ns, name))) == {f"gatekeeper@shard-{shard}"}, name


def test_a_shard_outside_the_count_is_refused() -> None:
    with pytest.raises(ValueError, match="0 <= shard < shards"):
        Settings(identity="x", shard=2, shards=2)
    objs = [{"metadata": {"uid": f"uid-{i}"}} for i in range(200)]
    spread = [shard_of(o, 4) for o in objs]
    assert set(spread) == {0, 1, 2, 3} and spread == [shard_of(o, 4) for o in objs], "stable and spread"
