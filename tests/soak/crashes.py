"""Part 1, crashes: kill -9 of the controller at random points, thousands of times, across all four routers.

Epochs: each has its own namespace, fresh data (healthy, and regressing for a third of the gates) and a gate
clock running ``rate`` times faster than the wall clock, shared by every controller process of the epoch (so a
restart neither stretches nor shrinks stages). ``gates_per_kind`` Gates per router kind roll out at once; one
per kind has a ``confirm-traffic-increase`` hook (a real HTTP server that answers after 30 ms), one regresses
and must roll back. Controller processes (``gatekeeper controller run`` forked from a preloaded server, see
``tests.controller_support.spawn_controller``) are started one after another, each killed one of three ways:

* ``edge``: ``--crash-at POINT:N`` at a transition edge (``executor.POINTS``: before/after the intent, route,
  result and status writes, during a query);
* ``mid``: ``--crash-at POINT:N~MS``, a SIGKILL MS milliseconds after reaching a point right before a request
  leaves (a routing PATCH, a status write, a hook call): the request is in flight when the process dies;
* ``random``: SIGKILL from the harness at a random moment (startup, list/watch, queries, anywhere).

After the kills, one clean process finishes the epoch's rollouts. The API server's record (``Recorder``) of
every route and Gate version is then checked per gate (``checks.check_gate``): routing changes lost, doubled,
or exceeding the stage's weight, stages shorter than their minimum, analyses restarted from zero.
"""

from __future__ import annotations

import random
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper.controller.executor import POINTS
from tests.controller_support import HookServer, spawn_controller
from tests.fixtures.prometheus import current_step_ms
from tests.soak.checks import check_gate, totals
from tests.soak.world import KINDS, STAGE_WEIGHTS, Recorder, World

MID = ("during-route-write", "during-hook-call", "before-status-write", "before-intent-write")
TERMINAL = ("Promoted", "RolledBack", "Halted", "Aborted")


@dataclass(frozen=True)
class CrashPlan:
    kills: int = 2000
    gates_per_kind: int = 3
    rate: float = 30.0  # gate seconds per real second
    data_minutes: float = 150.0  # the epoch ends before its data does (a slow machine finishes later)
    kill_minutes: float = (
        115.0  # gate minutes of kills; the rest is the clean process's to finish the rollouts
    )
    seed: int = 1
    edge_share: float = 0.35
    mid_share: float = 0.30  # the rest: random-time kills by the harness
    reach_timeout: float = (
        5.0  # real seconds for a process to reach its crash point before the harness kills it
    )


class SlowHook(HookServer):
    """A gating hook endpoint that approves after ``delay`` seconds (so a kill can land mid-call)."""

    def __init__(self, delay: float = 0.03) -> None:
        super().__init__({}, delay=delay)
        self.url += "/confirm"


def run_crashes(world: World, plan: CrashPlan, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    rng = random.Random(plan.seed)
    hook = SlowHook()
    kills: Counter[str] = Counter()
    unexpected: list[str] = []
    figures: list[Any] = []
    epochs: list[dict[str, Any]] = []
    processes = 0
    t0 = time.monotonic()
    try:
        while sum(kills.values()) < plan.kills:
            ep = _epoch(world, plan, rng, hook, epoch=len(epochs) + 1, left=plan.kills - sum(kills.values()))
            kills.update(ep["kills"])
            unexpected += ep["unexpected"]
            figures += ep["figures"]
            processes += ep["processes"]
            summary = totals(ep["figures"])
            epochs.append({"namespace": ep["namespace"], "kills": sum(ep["kills"].values()), **summary})
            bad = {k: v for k, v in summary.items() if k not in ("gates", "promoted", "rolled_back",
                                                                  "routing_changes") and v}  # fmt: skip
            say(f"  epoch {len(epochs):3d}: {sum(ep['kills'].values()):3d} kills (total {sum(kills.values()):,}/"
                f"{plan.kills:,}, {time.monotonic() - t0:5.0f} s), {summary['gates']} gates: {summary['promoted']} "
                f"promoted, {summary['rolled_back']} rolled back" + (f"; FOUND {bad}" if bad else ""))  # fmt: skip
    finally:
        hook.close()
    total = totals(figures)
    return {
        "kills": sum(kills.values()),
        "kills_by_point": dict(sorted(kills.items())),
        "processes": processes,
        "unexpected_exits": unexpected,
        "hook_calls": len(hook.calls),
        "seconds": round(time.monotonic() - t0, 1),
        "epochs": len(epochs),
        "gate_clock_rate": plan.rate,
        "figures": total,
        "anomalies": [f.as_dict() for f in figures if f.anomalous],
        "per_epoch": epochs,
    }


def _epoch(
    world: World, plan: CrashPlan, rng: random.Random, hook: SlowHook, *, epoch: int, left: int
) -> dict[str, Any]:
    ns = world.namespace(f"soak-crash-{epoch}")
    recorder = Recorder(world.api, ns)
    end_ms = current_step_ms()
    tag = secrets.token_hex(2)
    origin = end_ms / 1000 - plan.data_minutes * 60 + 120  # two minutes of data before the rollout starts
    switch_ms = int((origin + rng.uniform(90, 240)) * 1000) // 15000 * 15000
    ok = world.load(service=f"crash-{epoch}-{tag}-ok", end_ms=end_ms, minutes=plan.data_minutes, seed=epoch)
    bad = world.load(service=f"crash-{epoch}-{tag}-bad", end_ms=end_ms, minutes=plan.data_minutes,
                     bad_after_ms=switch_ms, seed=epoch + 10_000)  # fmt: skip
    gates: list[tuple[str, str, str]] = []  # (gate, kind, route)
    for kind in KINDS:
        for i in range(plan.gates_per_kind):
            name = f"{kind.split('-')[0]}-{i}"
            world.route(kind, ns, name, owner=name)
            extra: dict[str, Any] = {}
            if i == 1:
                extra["hooks"] = [{"name": "confirm", "type": "confirm-traffic-increase", "url": hook.url,
                                   "timeout": "5s"}]  # fmt: skip
            service = bad.service if i == 2 else ok.service
            world.gate(ns, name, kind=kind, route=name, service=service, **extra)
            gates.append((name, kind, name))
    anchor = time.time()
    deadline = anchor + (plan.data_minutes * 60 - 240) / plan.rate  # stop well before the data ends
    kill_deadline = (
        anchor + plan.kill_minutes * 60 / plan.rate
    )  # a loaded machine still leaves time to finish
    log = world.workdir / f"crash-{ns}.log"
    kills: Counter[str] = Counter()
    unexpected: list[str] = []
    processes = 0

    def finished() -> bool:
        latest = recorder.latest("gate")
        return len(latest) == len(gates) and all((s.status.get("phase") in TERMINAL) for s in latest.values())

    while sum(kills.values()) < left and time.time() < kill_deadline and not finished():
        roll = rng.random()
        crash_at, mode, limit = None, "random", rng.uniform(0.3, 2.5)
        if roll < plan.edge_share:
            crash_at, mode, limit = f"{rng.choice(POINTS)}:{rng.randint(1, 4)}", "edge", plan.reach_timeout
        elif roll < plan.edge_share + plan.mid_share:
            point = rng.choice(MID)
            crash_at = f"{point}:{rng.randint(1, 3)}~{rng.uniform(0.5, 25):.1f}"
            mode, limit = "mid", plan.reach_timeout
        p = spawn_controller(world.kubeconfig, namespace=ns, prometheus=world.prometheus, identity="soak",
                             origin=origin, anchor=anchor, rate=plan.rate, log=log, crash_at=crash_at)  # fmt: skip
        processes += 1
        end = time.monotonic() + limit
        while p.poll() is None and time.monotonic() < end and not finished():
            time.sleep(0.02)
        by_harness = p.poll() is None
        if by_harness:
            p.signal(signal.SIGKILL)
        code = p.wait(10)
        if code == -signal.SIGKILL:
            point = crash_at.partition(":")[0] if crash_at and not by_harness else None
            kills[f"{mode}:{point}" if point else "random"] += 1
        else:
            unexpected.append(f"{ns}: process {processes} ({crash_at or 'random'}) exited {code}; see {log}")
    final = spawn_controller(world.kubeconfig, namespace=ns, prometheus=world.prometheus, identity="soak",
                             origin=origin, anchor=anchor, rate=plan.rate, log=log)  # fmt: skip
    processes += 1
    while time.time() < deadline + 5 and not finished():
        if final.poll() is not None:  # it gave up its Lease (a renewal slower than its deadline on a loaded
            # machine: it stops writing and exits, as it must); a Deployment would start another
            unexpected.append(f"{ns}: the clean process exited {final.poll()} (restarted); see {log}")
            final = spawn_controller(world.kubeconfig, namespace=ns, prometheus=world.prometheus,
                                     identity="soak", origin=origin, anchor=anchor, rate=plan.rate, log=log)  # fmt: skip
            processes += 1
        time.sleep(0.1)
    if final.stop(15) != 0:
        unexpected.append(f"{ns}: the clean process did not stop cleanly; see {log}")
    recorder.stop()
    history = recorder.log()
    unexpected += [f"{ns}: recorder {e}" for e in recorder.errors]
    figures = [check_gate(history, gate=g, kind=k, route=r, weights=STAGE_WEIGHTS, min_duration=60.0)
               for g, k, r in gates]  # fmt: skip
    for f in figures:
        f.name = f"{ns}/{f.name}"
    if not unexpected and all(f.phase in ("Promoted", "RolledBack") for f in figures):
        Path(log).unlink(missing_ok=True)  # keep logs only of epochs worth reading
    return {
        "namespace": ns,
        "kills": kills,
        "unexpected": unexpected,
        "figures": figures,
        "processes": processes,
    }
