"""Reliability at volume: the controller under thousands of kill -9s, leader failovers, Prometheus outages, a
fighting writer and an upgrade mid-rollout, on the real kube-apiserver + etcd and a real Prometheus.

    nice -n 19 .venv/bin/python bench/soak.py crashes  [--kills 2000]     # part 1, about an hour on 2 cores
    .venv/bin/python bench/soak.py failover [--cycles 100]                # part 2 (timings: run on a quiet machine)
    .venv/bin/python bench/soak.py outages  [--outages 200]               # part 3
    .venv/bin/python bench/soak.py fight    [--fights 50]                 # part 4
    .venv/bin/python bench/soak.py upgrade  [--gates 500]                 # part 5
    .venv/bin/python bench/soak.py PART --quick                           # the CI-sized run (tests/test_soak.py)

Each part starts its own etcd + kube-apiserver (``scripts/kube-apiserver.sh`` builds it) and Prometheus under a
temporary directory, prints progress, and writes ``bench/results/soak-PART.json`` (``soak-PART-quick.json`` with
``--quick``) with the figures, their goals, the load average before and after and ``--quiet-machine`` as
declared by whoever ran it. The harness itself lives in ``tests/soak/`` (the pytest quick modes call the same
functions); what each figure means is in each part's module docstring.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PARTS = ("crashes", "failover", "outages", "fight", "upgrade")
GOALS: dict[str, dict[str, Any]] = {
    "crashes": {"kills": ">= 2000", "lost": 0, "doubled": 0, "exceeding_stage_weight": 0,
                "stages_shorter_than_minimum": 0, "analyses_restarted": 0},
    "failover": {"kill9_next_look_p99_s": "< 20 (default Lease)", "graceful_next_look_p99_s": "< 5",
                 "writes_from_deposed_leaders": 0},
    "outages": {"advances_on_missing_evidence": 0, "rollbacks_after_outages_shorter_than_budget": 0,
                "page_or_hold_not_as_spec": 0},
    "fight": {"restore_max_intervals": "< 2", "route_versions_with_fields_not_owned_changed": 0,
              "fighters_held_and_named": "all", "fighters_held_after_exactly_limit_fights": "all", "one_offs_held": 0},
    "upgrade": {"analyses_restarted": 0, "routing_changes_by_the_upgrade": 0, "transitions_by_the_upgrade": 0,
                "gates_continued_from_stored_evidence": "all", "writes_by_the_old_build_after_rollback": 0,
                "gates_the_old_build_refused_after_rollback": "all unfinished"},
}  # fmt: skip


def say(msg: str) -> None:
    print(msg, flush=True)


def crashes(world: Any, a: argparse.Namespace) -> dict[str, Any]:
    from tests.soak.crashes import CrashPlan, run_crashes

    plan = CrashPlan(kills=8, rate=30.0, seed=a.seed) if a.quick else CrashPlan(kills=a.kills, seed=a.seed)
    say(f"crashes: {plan.kills:,} kill -9s, {plan.gates_per_kind} gates per router kind per epoch, "
        f"gate clock x{plan.rate:g}")  # fmt: skip
    return {"plan": plan.__dict__, **run_crashes(world, plan, say=say)}


def failover(world: Any, a: argparse.Namespace) -> dict[str, Any]:
    from tests.soak.failover import FAST_LEASE, FailoverPlan, run_failover

    plan = FailoverPlan(kills=a.cycles, graceful=a.cycles, stops=a.cycles, seed=a.seed)
    if a.quick:
        plan = FailoverPlan(kills=1, graceful=1, stops=2, lease=dict(FAST_LEASE), gates=4, seed=a.seed)
    say(f"failover: {plan.kills} kill -9, {plan.graceful} graceful stops (Lease {plan.lease}), "
        f"{plan.stops} SIGSTOP/SIGCONT (Lease {plan.stop_lease}), {plan.replicas} replicas")  # fmt: skip
    return {"plan": plan.__dict__, **run_failover(world, plan, say=say)}


def outages(world: Any, a: argparse.Namespace) -> dict[str, Any]:
    from tests.soak.outages import OutagePlan, run_outages

    plan = OutagePlan(outages=a.outages, seed=a.seed)
    if a.quick:
        plan = OutagePlan(outages=8, max_s=400.0, gap_s=(60.0, 90.0), gates=4, seed=a.seed)
    say(f"outages: {plan.outages} Prometheus outages of {plan.min_s:g}-{plan.max_s:g} s of gate time, "
        f"{plan.gates} gates at a time, gate clock x{plan.rate:g}")  # fmt: skip
    return {"plan": plan.__dict__, **run_outages(world, plan, say=say)}


def fight(world: Any, a: argparse.Namespace) -> dict[str, Any]:
    from tests.soak.fight import FightPlan, run_fights

    plan = FightPlan(fights=4, seed=a.seed) if a.quick else FightPlan(fights=a.fights, seed=a.seed)
    say(f"fight: {plan.fights} episodes of another writer on the route (one-off or every 100 ms), "
        f"fightLimit {plan.limit}, one look per {plan.interval / plan.rate:g} s")  # fmt: skip
    return {"plan": plan.__dict__, **run_fights(world, plan, say=say)}


def upgrade(world: Any, a: argparse.Namespace) -> dict[str, Any]:
    from tests.soak.upgrade import UpgradePlan, run_upgrade

    if a.quick:
        plan = UpgradePlan(gates=12, rate=10.0, from_rev=a.from_rev, seed=a.seed)
    else:
        plan = UpgradePlan(gates=a.gates, from_rev=a.from_rev, seed=a.seed)
    say(f"upgrade: {plan.gates} gates settled at different stages, then the controller replaced by a build with "
        f"a status format one higher; gate clock x{plan.rate:g}")  # fmt: skip
    return {"plan": plan.__dict__, **run_upgrade(world, plan, say=say)}


RUNS = {"crashes": crashes, "failover": failover, "outages": outages, "fight": fight, "upgrade": upgrade}


def run_part(part: str, a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from tests.soak.failover import audit_args
    from tests.soak.world import World

    if part not in RUNS:
        raise SystemExit(f"part {part!r} is not built yet")
    kube_args = tuple(audit_args(workdir)) if part == "failover" else ()
    with World.started(workdir, kube_args=kube_args) as world:
        return RUNS[part](world, a)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=PARTS)
    ap.add_argument("--quick", action="store_true", help="the CI-sized run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kills", type=int, default=2000, help="crashes: kill -9s in all")
    ap.add_argument("--outages", type=int, default=200, help="outages: Prometheus outages in all")
    ap.add_argument("--fights", type=int, default=48, help="fight: episodes of another writer on the route")
    ap.add_argument("--gates", type=int, default=500, help="upgrade: gates settled before the upgrade")
    ap.add_argument(
        "--from-rev", default=None, help="upgrade: the old build (default: before STATUS_FORMAT's bump)"
    )
    ap.add_argument(
        "--cycles", type=int, default=100, help="failover: kill -9s, graceful stops and SIGSTOPs each"
    )
    ap.add_argument("--quiet-machine", action="store_true", help="declare that nothing else ran meanwhile")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs of failed epochs)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    load_before = os.getloadavg()
    commit = _commit()  # the code that ran, not whatever HEAD is when the run ends
    workdir = Path(tempfile.mkdtemp(prefix=f"gk-soak-{a.part}-"))
    t0 = time.monotonic()
    try:
        result = run_part(a.part, a, workdir)
    finally:
        if not a.keep:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
        else:
            say(f"work directory kept: {workdir}")
    doc = {
        "benchmark": f"soak-{a.part}",
        "mode": "quick" if a.quick else "full",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit,
        "seconds": round(time.monotonic() - t0, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "niceness": os.nice(0),
            "quiet_declared": a.quiet_machine,
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "goals": GOALS.get(a.part, {}),
        **result,
    }
    out = a.out or ROOT / "bench" / "results" / f"soak-{a.part}{'-quick' if a.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    figures = result.get("figures", {})
    say(
        f"{a.part}: {json.dumps(figures)}; wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}"
    )
    return 0


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return ""


if __name__ == "__main__":
    sys.exit(main())
