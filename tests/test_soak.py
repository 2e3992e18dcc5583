"""Reliability at volume, the CI-sized runs: each part of ``bench/soak.py`` with small counts on the session's
real kube-apiserver and Prometheus, asserting the same goals the full runs report (the harness is in
``tests/soak/``; the full-mode figures are in the README from ``bench/results/soak-*.json``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.controller_support import install_gate_crd
from tests.soak.world import World

pytestmark = pytest.mark.k8s


@pytest.fixture
def world(kube_cluster, kube_admin, prometheus, tmp_path) -> World:  # type: ignore[no-untyped-def]
    install_gate_crd(kube_admin)
    return World(kube_admin, kube_cluster.kubeconfig, prometheus.url, prometheus.remote_write_url, tmp_path)


def _clean(figures: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: figures[k] for k in keys if figures[k]}


def test_kill_9_at_random_points_across_all_four_routers_loses_doubles_and_restarts_nothing(world):
    from tests.soak.crashes import CrashPlan, run_crashes

    out = run_crashes(world, CrashPlan(kills=8, rate=60.0, seed=3))
    f = out["figures"]
    assert out["kills"] >= 8 and not out["unexpected_exits"], out["unexpected_exits"]
    assert f["gates"] == 12 and f["promoted"] == 8 and f["rolled_back"] == 4, out["anomalies"]
    bad = _clean(f, "lost", "doubled", "exceeding_stage_weight", "stages_shorter_than_minimum",
                 "analyses_restarted", "inconsistent_at_end")  # fmt: skip
    assert not bad, out["anomalies"]
