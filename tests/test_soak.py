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

    out = run_crashes(world, CrashPlan(kills=8, rate=30.0, seed=3))
    f = out["figures"]
    assert out["kills"] >= 8 and not out["unexpected_exits"], out["unexpected_exits"]
    assert f["gates"] == 12 and f["promoted"] == 8 and f["rolled_back"] == 4, out["anomalies"]
    bad = _clean(f, "lost", "doubled", "exceeding_stage_weight", "stages_shorter_than_minimum",
                 "analyses_restarted", "inconsistent_at_end")  # fmt: skip
    assert not bad, out["anomalies"]


QUICK_OUTAGES = (("refused", 150.0), ("error", 20.0), ("partial", 360.0), ("flapping", 120.0), ("slow", 40.0))


def test_prometheus_outages_never_advance_nor_roll_back_and_hold_and_page_as_the_spec_says(world):
    from tests.soak.outages import OutagePlan, run_outages

    out = run_outages(world, OutagePlan(script=QUICK_OUTAGES, gap_s=(60.0, 60.0), gates=4, seed=2))
    f = out["figures"]
    assert out["episodes"] == len(QUICK_OUTAGES) and not out["controller_restarts"]
    assert f["advances_on_missing_evidence"] == 0, out["advances_on_missing_evidence"]
    assert f["rollbacks"] == 0, out["rollbacks"]
    assert out["judged"]["must_page"] > 0 and out["judged"]["must_not_page"] > 0, out["judged"]
    assert f["page_or_hold_not_as_spec"] == 0, out["page_mismatches"]


def test_a_fighting_writer_is_restored_within_two_looks_then_held_and_named_fields_not_owned_untouched(world):
    from tests.soak.fight import FightPlan, run_fights

    out = run_fights(world, FightPlan(fights=4, one_off_share=0.5, seed=4))
    f = out["figures"]
    assert f["fighters"] >= 1 and f["one_offs"] >= 1, out["episodes_detail"]
    assert f["foreign_changes_restored"] >= f["one_offs"] + 3 * f["fighters"]
    assert f["restore_max_intervals"] < 2, f
    assert f["route_versions_with_fields_not_owned_changed"] == 0, out["changed_fields"]
    assert f["fighters_held_and_named"] == f["fighters_held_after_exactly_limit_fights"] == f["fighters"], f
    assert f["one_offs_held"] == 0, out["episodes_detail"]


def test_the_leader_killed_stopped_or_paused_hands_over_and_a_paused_one_wakes_deposed_and_exits(tmp_path):
    from tests.soak.failover import FAST_LEASE, FailoverPlan, audit_args, run_failover

    with World.started(
        tmp_path, kube_args=tuple(audit_args(tmp_path))
    ) as own:  # its own server: audit log on
        out = run_failover(
            own, FailoverPlan(kills=1, graceful=1, stops=2, lease=dict(FAST_LEASE), gates=4, seed=5)
        )
    f = out["figures"]
    assert not out["unexpected_exits"], out["unexpected_exits"]
    assert (f["kill9_failovers"], f["graceful_failovers"], f["sigstop_cycles"]) == (1, 1, 2)
    assert f["sigstop_exited_deposed"] == 2 and f["writes_audited"] > 0
    # the fence policy (charts/gatekeeper) refuses a write from a replica the Lease does not name: a paused
    # leader's request that had passed its own Lease check leaves on waking and is refused by the API server
    assert f["writes_from_deposed_leaders"] == 0, out["deposed"]


def test_an_upgrade_to_a_status_format_one_higher_restarts_no_analysis_and_moves_no_route(world):
    from tests.soak.upgrade import UpgradePlan, run_upgrade

    out = run_upgrade(world, UpgradePlan(gates=12, rate=10.0, seed=6))
    f = out["figures"]
    assert f["gates"] == 12 and f["paused"] >= 1
    assert f["analyses_restarted"] == 0, out["restarted"]
    assert f["routing_changes_by_the_upgrade"] == 0, out["route_writes_after_switch"]
    assert f["transitions_by_the_upgrade"] == 0, out["transition_events_after_switch"]
    assert f["gates_continued_from_stored_evidence"] == 12
    assert f["writes_by_the_old_build_after_rollback"] == 0
    assert f["gates_the_old_build_refused_after_rollback"] >= 10  # every unfinished gate
