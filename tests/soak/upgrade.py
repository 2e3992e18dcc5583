"""Part 5, an upgrade mid-rollout: hundreds of Gates settled at different stages by one build of the controller,
which is then replaced by a build whose status format (``STATUS_FORMAT``) is one higher.

The old build is the real previous code: the repository at the parent of the commit that set
``STATUS_FORMAT`` to its current value (``--from-rev`` overrides), exported with ``git archive`` and run as
``gatekeeper controller run`` with that tree first on ``PYTHONPATH``, on the CRD that build generates. Gate ``i``
has stages of 1 minute up to stage ``i mod 6`` and 1000 hours after it, so it settles in that stage (stage 6
means promoted); every tenth is then paused by an operator. Once all have settled, the upgrade goes as the
chart's does: the new CRD is applied, the old controller stops (SIGTERM), the new one starts. It runs until it
has looked at every unfinished gate and written its status in the new format, plus two heartbeats. Then the
old build runs again for a while (a rollback of the controller), which must not write what it cannot read.

Figures, per gate, the stored status before the upgrade against after it, and the API server's record:
analyses restarted (the stage, its clock, the evidence carried from earlier stages, or the transitions in the
history differ, or the rollout started again; goal 0), routing changes made by the upgrade (route versions
after the switch; goal 0), transitions made by the upgrade (Events of Started, Advanced, Promoted, RolledBack,
Halted after the switch; goal 0), gates that went on from their stored evidence (looked at by the new build
and stored in its format, with stage clock and carried evidence kept), and writes of the old build on statuses
of the new format after the rollback (goal 0).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gatekeeper.ops.actions import pause
from gatekeeper.spec.crd import gate_crd
from gatekeeper.spec.status import STATUS_FORMAT, GateStatus, Phase
from tests.controller_support import spawn_controller
from tests.fixtures.prometheus import current_step_ms
from tests.soak.world import KINDS, STAGE_WEIGHTS, Recorder, World

ROOT = Path(__file__).resolve().parents[2]
TRANSITIONS = ("Started", "Advanced", "Promoted", "RolledBack", "Halted", "Reverted")


@dataclass(frozen=True)
class UpgradePlan:
    gates: int = 500
    rate: float = 4.0  # gate seconds per real second
    interval: str = "30s"
    from_rev: str | None = None  # the old build; default: the parent of the commit that set STATUS_FORMAT
    downgrade_s: float = 60.0  # real seconds the old build may take to start again and read every gate
    seed: int = 1


def old_build_rev() -> str:
    """The parent of the commit that set ``STATUS_FORMAT`` to its current value (``HEAD`` if not committed)."""
    out = subprocess.run(
        ["git", "log", "--format=%H", f"-SSTATUS_FORMAT = {STATUS_FORMAT}\n", "--", "gatekeeper/spec/status.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return f"{out[-1]}^" if out else "HEAD"


def export_build(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "gatekeeper"], cwd=ROOT, capture_output=True,
                             check=True).stdout  # fmt: skip
    tar = into / "build.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    return into


def _env(build: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(build)}


def _apply_crd(api: Any, crd: dict[str, Any]) -> None:
    ext = client.ApiextensionsV1Api(api)
    try:
        old = ext.read_custom_resource_definition(crd["metadata"]["name"])
    except ApiException as e:
        if e.status != 404:
            raise
        ext.create_custom_resource_definition(crd)
    else:
        crd = {**crd, "metadata": {**crd["metadata"], "resourceVersion": old.metadata.resource_version}}
        ext.replace_custom_resource_definition(crd["metadata"]["name"], crd)
    time.sleep(2.0)  # the new schema is served after a moment


def run_upgrade(world: World, plan: UpgradePlan, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    t0 = time.monotonic()
    rev = plan.from_rev or old_build_rev()
    old_build = export_build(rev, world.workdir / "old-build")
    described = subprocess.run(["git", "log", "-1", "--format=%h %s", rev], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()  # fmt: skip
    say(f"  old build: {described}")
    old_crd = json.loads(subprocess.run([sys.executable, "-m", "gatekeeper.cli.main", "crd", "-o", "json"],
                                        env=_env(old_build), cwd=old_build, capture_output=True, text=True,
                                        check=True).stdout)  # fmt: skip
    _apply_crd(world.api, old_crd)
    ns = world.namespace("soak-upgrade")
    hours = 3.0
    end_ms = current_step_ms()
    sc = world.load(service=f"upgrade-{ns}", end_ms=end_ms, minutes=hours * 60, seed=plan.seed)
    origin, anchor = end_ms / 1000 - hours * 3600 + 120, time.time()
    target: dict[str, int] = {}
    for i in range(plan.gates):
        name, kind, k = f"u{i:03d}", KINDS[i % len(KINDS)], i % (len(STAGE_WEIGHTS) + 1)
        stages = [{"weight": w, "minDuration": "1m" if j < k else "1000h", "minSamples": 100}
                  for j, w in enumerate(STAGE_WEIGHTS)]  # fmt: skip
        world.route(kind, ns, name, owner=name)
        world.gate(ns, name, kind=kind, route=name, service=sc.service, stages=stages, interval=plan.interval)
        target[name] = k
        if (i + 1) % 100 == 0:
            say(f"  created {i + 1} gates and routes ({time.monotonic() - t0:.0f} s)")
    recorder = Recorder(world.api, ns)
    log = world.workdir / f"upgrade-{ns}.log"

    def run(build: Path | None, identity: str) -> Any:
        if build is None:
            return spawn_controller(world.kubeconfig, namespace=ns, prometheus=world.prometheus, identity=identity,
                                    origin=origin, anchor=anchor, rate=plan.rate, log=log)  # fmt: skip
        args = [sys.executable, "-m", "gatekeeper.cli.main", "controller", "run", "--kubeconfig", str(world.kubeconfig),
                "--namespace", ns, "--prometheus", world.prometheus, "--identity", identity, "--lease-name", identity,
                "--health-port", "0", "--clock-origin", f"{origin:.3f}", "--clock-anchor", f"{anchor:.3f}",
                "--clock-rate", str(plan.rate), "--workers", "8"]  # fmt: skip
        with log.open("ab") as out:
            return _Proc(
                subprocess.Popen(args, env=_env(build), cwd=build, stdout=out, stderr=subprocess.STDOUT)
            )

    old = run(old_build, "old-build")
    paused: set[str] = set()
    try:
        _until(lambda: _settled(world, ns, target, paused) == len(target), timeout=1800, every=2.0, say=say,
               what=lambda: f"{_settled(world, ns, target, paused)}/{len(target)} gates settled")  # fmt: skip
        for i, name in enumerate(sorted(target)):
            if i % 10 == 3 and target[name] < len(STAGE_WEIGHTS):
                pause(
                    world.api,
                    namespace=ns,
                    name=name,
                    reason="soak: paused across the upgrade",
                    by="soak-operator",
                )
                paused.add(name)
        _until(lambda: _settled(world, ns, target, paused) == len(target), timeout=600, every=2.0, say=say,
               what=lambda: f"{_settled(world, ns, target, paused)}/{len(target)} gates settled (with pauses)")  # fmt: skip
        before = {n: g.get("status") or {} for n, g in world.gates(ns).items()}
        (world.workdir / "statuses-before.json").write_text(json.dumps(before, indent=1))
        _apply_crd(world.api, gate_crd())
        if old.stop(60) != 0:
            say("  the old build did not stop cleanly")
        switch = time.time()
        say(f"  switched to the new build ({time.monotonic() - t0:.0f} s)")
        new = run(None, "new-build")
        try:
            unfinished = [n for n, k in target.items() if k < len(STAGE_WEIGHTS)]
            _until(lambda: _converted(world, ns, unfinished) == len(unfinished), timeout=1800, every=2.0, say=say,
                   what=lambda: f"{_converted(world, ns, unfinished)}/{len(unfinished)} gates in format {STATUS_FORMAT}")  # fmt: skip
            time.sleep(2 * 60 / plan.rate)  # two heartbeats more
        finally:
            new.stop(60)
        after = {n: g.get("status") or {} for n, g in world.gates(ns).items()}
        rolled_back_at, offset = time.time(), log.stat().st_size
        again = run(old_build, "old-build-again")
        unfinished = [n for n, k in target.items() if k < len(STAGE_WEIGHTS)]
        with contextlib.suppress(TimeoutError):  # how many it refused is the figure
            _until(lambda: len(_refused(log, offset)) >= len(unfinished), timeout=plan.downgrade_s, every=1.0,
                   say=say, what=lambda: f"the old build refused {len(_refused(log, offset))}/{len(unfinished)} gates")  # fmt: skip
        time.sleep(2 * 30 / plan.rate)  # and it keeps refusing
        again.stop(60)
        downgrade_end = time.time()
        refused = _refused(log, offset)
    finally:
        for p in (old,):
            p.stop(10)
        recorder.stop()
    events = client.CoreV1Api(world.api).list_namespaced_event(ns).items
    out = judge(before, after, recorder.log(), events, target, paused=paused, switch=switch,
                rollback=(rolled_back_at, downgrade_end), rev=described, seconds=time.monotonic() - t0)  # fmt: skip
    out["figures"]["gates_the_old_build_refused_after_rollback"] = len(refused)
    return out


def _refused(log: Path, offset: int) -> set[str]:
    """Gates the controller logged as not acted on (an unreadable status) after ``offset`` of its log."""
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return set(re.findall(r"Gate (\S+): not acted on: ", text))


class _Proc:
    """A ``subprocess.Popen`` with the ``stop`` of ``ControllerProcess``."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen

    def stop(self, timeout: float = 30.0) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(10)


def _settled(world: World, ns: str, target: dict[str, int], paused: set[str]) -> int:
    n = 0
    for name, g in world.gates(ns).items():
        s = g.get("status") or {}
        k = target[name]
        done = (s.get("intent") or {}).get("done", False)
        if k == len(STAGE_WEIGHTS):
            n += s.get("phase") == "Promoted"
        elif (
            s.get("stage") == k and done and s.get("phase") == ("Paused" if name in paused else "Progressing")
        ):
            n += 1
    return n


def _converted(world: World, ns: str, names: list[str]) -> int:
    gates = world.gates(ns)
    return sum((gates[n].get("status") or {}).get("formatVersion") == STATUS_FORMAT for n in names)


def _until(predicate: Callable[[], bool], *, timeout: float, every: float, say: Callable[[str], None],
           what: Callable[[], str]) -> None:  # fmt: skip
    deadline, next_say = time.monotonic() + timeout, time.monotonic() + 15
    while time.monotonic() < deadline:
        if predicate():
            return
        if time.monotonic() >= next_say:
            say(f"  {what()}")
            next_say = time.monotonic() + 15
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s: {what()}")


def judge(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], log: list[Any], events: list[Any],
          target: dict[str, int], *, paused: set[str], switch: float, rollback: tuple[float, float], rev: str,
          seconds: float) -> dict[str, Any]:  # fmt: skip
    restarted: list[dict[str, Any]] = []
    went_on = 0
    for name, raw in before.items():
        a = GateStatus.read(raw)
        b = GateStatus.read(after[name])
        moves_a = [(h.time, h.action) for h in a.history if h.action in ("start", "advance", "promote")]
        moves_b = [(h.time, h.action) for h in b.history if h.action in ("start", "advance", "promote")]
        why = [w for w, bad in (
            ("stage", a.stage != b.stage), ("stage clock", a.stage_started_at != b.stage_started_at),
            ("carried evidence", a.carried != b.carried), ("transitions in the history", moves_a != moves_b),
            ("phase", a.phase != b.phase), ("started again", sum(m == "start" for _, m in moves_b) > 1),
        ) if bad]  # fmt: skip
        if why:
            restarted.append({"gate": name, "what": why, "before": _brief(a), "after": _brief(b)})
        looked = (b.last_evaluated_at or 0) > (a.last_evaluated_at or 0) or b.phase == Phase.PROMOTED
        if not why and looked and after[name].get("formatVersion") == STATUS_FORMAT:
            went_on += 1
    routes_after = [x for x in log if x.what != "gate" and x.event == "MODIFIED" and x.seen > switch]
    statuses_rollback = [x for x in log if x.what == "gate" and rollback[0] < x.seen <= rollback[1]]
    moved = [e for e in events if e.reason in TRANSITIONS and _when(e) > switch]
    return {
        "figures": {
            "gates": len(before),
            "by_stage": {
                str(k + 1) if k < len(STAGE_WEIGHTS) else "promoted": sum(v == k for v in target.values())
                for k in range(len(STAGE_WEIGHTS) + 1)
            },
            "paused": len(paused),
            "analyses_restarted": len(restarted),
            "routing_changes_by_the_upgrade": len(routes_after),
            "transitions_by_the_upgrade": len(moved),
            "gates_continued_from_stored_evidence": went_on,
            "writes_by_the_old_build_after_rollback": len(statuses_rollback),
        },
        "old_build": rev,
        "status_format": {"old": 0 if STATUS_FORMAT == 1 else STATUS_FORMAT - 1, "new": STATUS_FORMAT},
        "restarted": restarted[:50],
        "route_writes_after_switch": [f"{x.what} {x.name} rv {x.rv}" for x in routes_after[:20]],
        "transition_events_after_switch": [f"{e.involved_object.name}: {e.reason}" for e in moved[:20]],
        "seconds": round(seconds, 1),
    }


def _brief(s: GateStatus) -> dict[str, Any]:
    return {"phase": s.phase.value, "stage": s.stage, "stageStartedAt": s.stage_started_at,
            "carried": None if s.carried is None else s.carried.stage}  # fmt: skip


def _when(e: Any) -> float:
    t = e.last_timestamp or e.event_time or e.first_timestamp
    return t.timestamp() if t is not None else 0.0
