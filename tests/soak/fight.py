"""Part 4, a fighting writer: another client rewrites the route's weights, once or every 100 ms (a GitOps sync
with self-heal), on routes of all four kinds, while gatekeeper holds a stage.

One Gate per router kind sits in its first stage (1%, a stage of 1000 h) and looks every ``interval`` of gate
time. Episodes, round-robin over the kinds, each with another field manager name (``argocd-controller``,
``kustomize-controller``, ``helm``, ``kubectl-edit``):

* one-off: a single JSON patch of the weights (to 0, 10, 50 or 100% canary); gatekeeper must restore 1% and
  must not hold;
* fighter: the same patch every 100 ms until the gate holds; gatekeeper must fight exactly ``fightLimit``
  looks in a row (restoring each time; a restore the writer overwrote before it was read back is retried by
  the same fight, so route writes can outnumber fights), then hold (``Paused``) naming that manager. The harness then stops the writer and resumes the gate,
  which must restore 1% once more and go on.

Figures from the API server's record of every route version: restore latency from a foreign change to the
version that puts the gate's weight back (p50/p99/max, in gate intervals; goal < 2), route versions whose
fields gatekeeper does not own differ from the route as created (goal 0: byte-identical), fighter episodes
ending held with the writer named after exactly ``fightLimit`` fights, one-off episodes without a hold.
"""

from __future__ import annotations

import contextlib
import json
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from gatekeeper.ops.actions import resume
from gatekeeper.routing.base import APIS
from tests.controller_support import spawn_controller
from tests.fixtures.prometheus import current_step_ms
from tests.soak.world import KINDS, Recorder, World, canary_weight
from tests.test_routing_kube import raw_set

MANAGERS = ("argocd-controller", "kustomize-controller", "helm", "kubectl-edit")
LONG = [{"weight": w, "minDuration": "1000h", "minSamples": 100} for w in (1, 100)]


@dataclass(frozen=True)
class FightPlan:
    fights: int = 48
    one_off_share: float = 0.5
    interval: float = 10.0  # gate seconds between looks
    rate: float = 10.0  # gate clock: one look per real second
    limit: int = 3
    seed: int = 1


def run_fights(world: World, plan: FightPlan, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    rng = random.Random(plan.seed)
    t0 = time.monotonic()
    ns = world.namespace("soak-fight")
    hours = plan.fights * 12 * plan.rate / 3600 + 1
    end_ms = current_step_ms()
    sc = world.load(service=f"fight-{ns}", end_ms=end_ms, minutes=hours * 60, seed=plan.seed)
    recorder = Recorder(world.api, ns)
    for kind in KINDS:
        world.route(kind, ns, kind, owner=kind)
        world.gate(
            ns, kind, kind=kind, route=kind, service=sc.service, stages=LONG, interval=f"{plan.interval:g}s"
        )
        routing = world.gates(ns)[kind]["spec"]["routing"]
        client.CustomObjectsApi(world.api).patch_namespaced_custom_object(
            "gatekeeper.dev",
            "v1alpha1",
            ns,
            "gates",
            kind,
            {"spec": {"routing": {**routing, "fightLimit": plan.limit}}},
        )
    log = world.workdir / f"fight-{ns}.log"
    ctl = spawn_controller(world.kubeconfig, namespace=ns, prometheus=world.prometheus, identity="soak-fight",
                           origin=end_ms / 1000 - hours * 3600 + 120, anchor=time.time(), rate=plan.rate, log=log)  # fmt: skip
    look = plan.interval / plan.rate  # real seconds per look
    episodes: list[dict[str, Any]] = []
    try:
        for kind in KINDS:
            _wait(lambda k=kind: canary_weight(k, world.read_route(k, ns, k)) == 1, 60, f"{kind} to start")
        created = {k: _not_owned(k, world.read_route(k, ns, k)) for k in KINDS}
        for i in range(plan.fights):
            kind, manager = KINDS[i % len(KINDS)], MANAGERS[(i // len(KINDS)) % len(MANAGERS)]
            one_off = rng.random() < plan.one_off_share
            target = rng.choice((0, 10, 50, 100))
            start = time.time()
            if one_off:
                _write(world, kind, ns, target, manager)
                _wait(
                    lambda k=kind: canary_weight(k, world.read_route(k, ns, k)) == 1, 20 * look, "the restore"
                )
                time.sleep(2 * look)
                held = _phase(world, ns, kind) == "Paused"
                episodes.append({"kind": kind, "manager": manager, "one_off": True, "to": target, "held": held,
                                 "start": start})  # fmt: skip
            else:
                stop = threading.Event()
                fighter = threading.Thread(
                    target=_fight, args=(world, kind, ns, target, manager, stop), daemon=True
                )
                fighter.start()
                try:
                    _wait(
                        lambda k=kind: _phase(world, ns, k) == "Paused", (plan.limit + 10) * look, "the hold"
                    )
                    time.sleep(2 * look)  # looks while held: no more restores
                finally:
                    stop.set()
                    fighter.join(5)
                status = world.gates(ns)[kind].get("status") or {}
                contest = status.get("routeContest") or {}
                episodes.append({"kind": kind, "manager": manager, "one_off": False, "to": target, "start": start,
                                 "held": status.get("phase") == "Paused", "named": contest.get("by") == manager,
                                 "fights": contest.get("fights"), "held_at": time.time()})  # fmt: skip
                resume(
                    world.api,
                    namespace=ns,
                    name=kind,
                    reason="soak: the other writer stopped",
                    by="soak-operator",
                )
                _wait(lambda k=kind: _phase(world, ns, k) == "Progressing"
                      and canary_weight(k, world.read_route(k, ns, k)) == 1, 20 * look, "the resume")  # fmt: skip
            if (i + 1) % 8 == 0:
                say(f"  episode {i + 1:3d}/{plan.fights} ({time.monotonic() - t0:.0f} s)")
        time.sleep(2 * look)
    finally:
        ctl.stop(20)
        recorder.stop()
    return {**judge(recorder.log(), episodes, created, look=look, limit=plan.limit),
            "seconds": round(time.monotonic() - t0, 1), "interval_real_s": look}  # fmt: skip


def judge(log: list[Any], episodes: list[dict[str, Any]], created: dict[str, str], *, look: float,
          limit: int) -> dict[str, Any]:  # fmt: skip
    latencies: list[float] = []
    changed_fields: list[str] = []
    restores: dict[str, list[float]] = {}
    holds = {k: [e["held_at"] for e in episodes if e["kind"] == k and not e["one_off"]] for k in KINDS}
    after_resume = 0
    for kind in KINDS:
        foreign_since: float | None = None
        last: int | None = None
        for item in (x for x in log if x.what == kind and x.name == kind and x.event == "MODIFIED"):
            w = item.weight
            if _not_owned(kind, item.obj) != created[kind]:
                changed_fields.append(f"{kind} rv {item.rv}")
            if w is None or w == last:
                continue
            if w != 1 and foreign_since is None:
                foreign_since = item.seen
            elif w == 1 and last is not None and last != 1:
                restores.setdefault(kind, []).append(item.seen)
                if foreign_since is not None and any(foreign_since <= h <= item.seen for h in holds[kind]):
                    after_resume += 1  # held, then restored once a human resumed: not a fight's restore
                elif foreign_since is not None:
                    latencies.append((item.seen - foreign_since) / look)
                foreign_since = None
            last = w
    fighters = [e for e in episodes if not e["one_off"]]
    for e in fighters:  # restores between the first write of the episode and the hold
        e["restores"] = sum(1 for t in restores.get(e["kind"], []) if e["start"] <= t <= e["held_at"])
    ones = [e for e in episodes if e["one_off"]]
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "figures": {
            "episodes": len(episodes),
            "foreign_changes_restored": len(latencies),
            "restore_p50_intervals": round(q[49], 2) if q else None,
            "restore_p99_intervals": round(q[98], 2) if q else None,
            "restore_max_intervals": round(max(latencies), 2) if latencies else None,
            "restores_after_a_resume": after_resume,
            "route_versions_with_fields_not_owned_changed": len(changed_fields),
            "fighters": len(fighters),
            "fighters_held_and_named": sum(bool(e["held"] and e["named"]) for e in fighters),
            "fighters_held_after_exactly_limit_fights": sum(e["fights"] == limit + 1 for e in fighters),
            "route_restore_writes_per_fighter": round(statistics.mean(e["restores"] for e in fighters), 2)
            if fighters
            else None,
            "one_offs": len(ones),
            "one_offs_held": sum(bool(e["held"]) for e in ones),
        },
        "fight_limit": limit,
        "changed_fields": changed_fields[:20],
        "episodes_detail": episodes,
    }


def _write(world: World, kind: str, ns: str, canary: int, manager: str) -> None:
    a = APIS[kind]
    client.CustomObjectsApi(world.api).patch_namespaced_custom_object(
        a.group, a.versions[0], ns, a.plural, kind, raw_set(kind, canary),
        _content_type="application/json-patch+json", field_manager=manager,
    )  # fmt: skip


def _fight(world: World, kind: str, ns: str, canary: int, manager: str, stop: threading.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(Exception):  # a conflict with gatekeeper's write: the next tick writes again
            _write(world, kind, ns, canary, manager)
        stop.wait(0.1)


def _phase(world: World, ns: str, name: str) -> str:
    return str((world.gates(ns)[name].get("status") or {}).get("phase") or "")


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _not_owned(kind: str, obj: dict[str, Any]) -> str:
    """The route without what gatekeeper (or the other writer) owns: the two weights and gatekeeper's own
    annotations; everything else as stored, byte for byte."""
    o = json.loads(json.dumps({"spec": obj.get("spec"), "labels": obj["metadata"].get("labels"),
                               "annotations": obj["metadata"].get("annotations") or {}}))  # fmt: skip
    o["annotations"].pop("gatekeeper.dev/original", None)
    o["annotations"].pop("gatekeeper.dev/written-by", None)
    s = o["spec"]
    if kind == "gateway-api":
        for r in s["rules"][0]["backendRefs"]:
            r.pop("weight", None)
    elif kind == "istio":
        for r in s["http"][0]["route"]:
            r.pop("weight", None)
    elif kind == "smi":
        for b in s["backends"]:
            b.pop("weight", None)
    else:
        o["annotations"].pop("nginx.ingress.kubernetes.io/canary-weight", None)
    return json.dumps(o)
