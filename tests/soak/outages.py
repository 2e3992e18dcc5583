"""Part 3, monitoring outages: hundreds of Prometheus outages from seconds to half an hour of gate time, while
rollouts go on, with the gates' answer to each checked against what the spec says.

One controller process reads Prometheus through ``PromProxy``. ``gates`` Gates (all four router kinds) roll
out over healthy data, so every revert is the outage's doing; a finished gate is replaced by a fresh one. Each
gate's scopes carry a matcher that selects nothing away (``gate!="<name>"``), so the proxy can tell whose
query each request is. Outages, one after another with a healthy gap: the kind (``refused``, ``error`` (503),
``slow`` (an answer after the gate's timeout), ``flapping`` (every other answer of each gate a 503),
``partial`` (the canary's series missing from every answer)) and a log-uniform duration from ``min_s`` to
``max_s`` of gate time. In each gap the harness resumes every gate held for a human, as an operator would.

Figures, from the API server's record of every Gate version and the proxy's log of every request:

* advances on missing evidence: an advance or promotion decided by a look whose query failed, was refused or
  answered without the canary (a look of these gates asks one query: the look's request is the gate's last
  one in the half second before the decision; a refused connection never reaches the proxy, so a look
  without a request inside a ``refused`` outage counts too). Goal 0. Advances during a flapping outage on a look whose answer was complete are evidence,
  counted apart;
* rollbacks: the data is healthy, so every revert is caused by an outage; by the outage's length against the
  gate's ``outageBudget``. Goal 0 (an outage is never evidence against the canary);
* pages and holds as the spec says: a gate that was progressing when an outage began must be held for a
  human and page its owners (one ``Held`` notification, severity critical) once the outage outlasts the spec:
  more than ``consecutiveErrorLimit`` failed looks in a row (``refused``, ``error``, ``slow``) or
  ``outageBudget`` without usable data (``partial``); and must not for an outage too short to get there.
  Counted in the looks the gate made (the proxy's failed answers; for ``refused``, the Gate's status
  versions), not in looks that would fit in the outage's gate time: a loaded machine looks less often than
  the compressed clock asks. A count one look either side of the limit is not judged. Goal 0 mismatches.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gatekeeper.ops.actions import resume
from gatekeeper.spec.status import GateStatus, Phase
from tests.controller_support import HookServer, spawn_controller
from tests.fixtures.prometheus import current_step_ms
from tests.soak.promproxy import PromProxy
from tests.soak.world import KINDS, Recorder, World

OUTAGE_KINDS = ("refused", "error", "slow", "flapping", "partial")
INTERVAL = 15.0  # gate seconds between looks
BUDGET = 300.0  # outageBudget, gate seconds
LIMIT = 4  # consecutiveErrorLimit
TIMEOUT = 1.0  # the gates' Prometheus timeout, real seconds
_GATE = re.compile(r'gate!="([^"]+)"')


@dataclass(frozen=True)
class OutagePlan:
    outages: int = 200
    min_s: float = 5.0  # gate seconds
    max_s: float = 1800.0
    gap_s: tuple[float, float] = (90.0, 180.0)
    gates: int = 8
    rate: float = 30.0
    seed: int = 1
    script: tuple[tuple[str, float], ...] = ()  # (kind, gate seconds) to run instead of random outages


@dataclass
class Episode:
    kind: str
    seconds: float  # gate seconds
    start: float  # wall
    end: float


class Pager(HookServer):
    """The gates' notification webhook: every POST with its wall time, per gate (the URL path)."""

    def __init__(self) -> None:
        super().__init__({})

    @property
    def pages(self) -> list[tuple[float, str, dict[str, Any]]]:
        return [
            (t, path.strip("/"), body)
            for t, (path, body, _) in zip(self.received_at, self.calls, strict=True)
        ]


def run_outages(world: World, plan: OutagePlan, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    rng = random.Random(plan.seed)
    t0 = time.monotonic()
    ns = world.namespace("soak-outage")
    mean = (plan.max_s - plan.min_s) / math.log(plan.max_s / plan.min_s)
    if plan.script:
        plan = replace(plan, outages=len(plan.script))
        mean = sum(s for _, s in plan.script) / len(plan.script)
    hours = plan.outages * (mean + sum(plan.gap_s) / 2) / 3600 * 1.3 + 1
    end_ms = current_step_ms()
    say(f"  loading {hours:.1f} h of data")
    sc = world.load(service=f"outage-{ns}", end_ms=end_ms, minutes=hours * 60, seed=plan.seed)
    origin, anchor = end_ms / 1000 - hours * 3600 + 120, time.time()
    proxy = PromProxy(
        world.prometheus, delay=TIMEOUT * 3, flap_by=lambda q: (_GATE.search(q) or [None, q])[1]
    )
    pager = Pager()
    recorder = Recorder(world.api, ns)
    gates: dict[str, str] = {}  # name -> kind
    log = world.workdir / f"outage-{ns}.log"

    def add_gate() -> None:
        name = f"o{len(gates)}"
        kind = KINDS[len(gates) % len(KINDS)]
        world.route(kind, ns, name, owner=name)
        scopes = {
            arm: {"service": sc.service, "track": arm, "gate": f"!={name}"} for arm in ("canary", "baseline")
        }
        world.gate(ns, name, kind=kind, route=name, service=sc.service, scopes=scopes,
                   source={"prometheus": {"timeout": f"{TIMEOUT:g}s", "retries": 0, "step": "15s", "maxStaleness": "2m"}},
                   outageBudget=f"{BUDGET:g}s", consecutiveErrorLimit=LIMIT,
                   notify=[{"name": "pager", "url": f"{pager.url}/{name}", "severity": "critical"}])  # fmt: skip
        gates[name] = kind

    for _ in range(plan.gates):
        add_gate()

    def spawn() -> Any:
        return spawn_controller(world.kubeconfig, namespace=ns, prometheus=proxy.url, identity="soak-outage",
                                origin=origin, anchor=anchor, rate=plan.rate, log=log)  # fmt: skip

    ctl = spawn()
    episodes: list[Episode] = []
    restarts: list[str] = []
    resumed = 0
    try:
        for i in range(plan.outages):
            gap_end = time.time() + rng.uniform(*plan.gap_s) / plan.rate
            while time.time() < gap_end:
                resumed += _tend(world, ns, recorder, gates, add_gate, keep=plan.gates)
                if ctl.poll() is not None:
                    restarts.append(f"the controller exited {ctl.poll()} before outage {i + 1}; see {log}")
                    ctl = spawn()
                time.sleep(0.05)
            kind = rng.choice(OUTAGE_KINDS)
            seconds = math.exp(rng.uniform(math.log(plan.min_s), math.log(plan.max_s)))
            if plan.script:
                kind, seconds = plan.script[i]
            proxy.mode = kind
            start = time.time()
            time.sleep(seconds / plan.rate)
            proxy.mode = "up"
            episodes.append(Episode(kind, seconds, start, time.time()))
            if (i + 1) % 10 == 0:
                say(f"  outage {i + 1:3d}/{plan.outages}: {kind} {seconds:6.0f} s ({len(gates)} gates so far, "
                    f"{time.monotonic() - t0:.0f} s)")  # fmt: skip
        time.sleep(3 * INTERVAL / plan.rate)
    finally:
        ctl.stop(20)
        recorder.stop()
        proxy.close()
        pager.close()
    clock = (origin, anchor, plan.rate)
    out = judge(recorder.log(), episodes, proxy.log, pager.pages, gates, clock=clock)
    return {**out, "episodes": len(episodes), "gates": len(gates), "resumed_by_harness": resumed,
            "controller_restarts": restarts, "seconds": round(time.monotonic() - t0, 1), "gate_clock_rate": plan.rate,
            "by_kind": {k: sum(e.kind == k for e in episodes) for k in OUTAGE_KINDS},
            "durations_s": sorted(round(e.seconds, 1) for e in episodes)}  # fmt: skip


def _tend(world: World, ns: str, recorder: Recorder, gates: dict[str, str], add: Callable[[], None], *,
          keep: int) -> int:  # fmt: skip
    """As an operator: resume every gate held for a human; replace finished gates. Returns gates resumed."""
    n = 0
    latest = recorder.latest("gate")
    active = 0
    for name in list(gates):
        item = latest.get(name)
        phase = (item.status.get("phase") if item else None) or "Pending"
        if phase == Phase.PAUSED.value and not _pending_resume(item.obj):
            resume(world.api, namespace=ns, name=name, reason="soak: the outage is over", by="soak-operator")
            n += 1
        if phase not in ("Promoted", "RolledBack", "Aborted", "Halted"):
            active += 1
    for _ in range(keep - active):
        add()
    return n


def _pending_resume(obj: dict[str, Any]) -> bool:
    return "gatekeeper.dev/pause" in ((obj.get("metadata") or {}).get("annotations") or {})


# -- judging --------------------------------------------------------------------------------------------------
def judge(log: list[Any], episodes: list[Episode], requests: list[tuple[float, float, str, str]],
          pages: list[tuple[float, str, dict[str, Any]]], gates: dict[str, str], *,
          clock: tuple[float, float, float]) -> dict[str, Any]:  # fmt: skip
    origin, anchor, rate = clock

    def wall(t: float) -> float:
        return anchor + (t - origin) / rate

    by_gate: dict[str, list[tuple[float, str]]] = {}
    for arrived, _done, query, served in requests:
        m = _GATE.search(query)
        if m:
            by_gate.setdefault(m[1], []).append((arrived, served))
    statuses: dict[str, list[tuple[float, GateStatus]]] = {}
    for item in log:
        if item.what == "gate":
            statuses.setdefault(item.name, []).append((item.seen, GateStatus.model_validate(item.status)))
    missing_adv, flapping_adv, reverts, mismatches = [], [], [], []
    advances = 0
    judged = {"must_page": 0, "must_not_page": 0, "either": 0, "not_progressing": 0}
    for name, seq in statuses.items():
        entries = {(h.time, h.action): h for _, s in seq for h in s.history}
        reqs = by_gate.get(name, [])
        for (t, action), h in sorted(entries.items()):
            w = wall(t)
            inside = [e for e in episodes if e.start - 0.05 <= w <= e.end + 0.5]
            if action in ("advance", "promote"):
                advances += 1
                look = [served for arrived, served in reqs if w - 0.45 <= arrived <= w + 0.02][-1:]
                refused = any(e.kind == "refused" for e in inside) and not look
                if refused or any(s != "up" for s in look):
                    missing_adv.append({"gate": name, "time": t, "action": action, "served": look,
                                        "outages": [e.kind for e in inside], "reason": h.reason})  # fmt: skip
                elif any(e.kind == "flapping" for e in inside):
                    flapping_adv.append({"gate": name, "time": t, "verdict": h.verdict})
            if action == "revert":
                last = max((e for e in episodes if e.start <= w), key=lambda e: e.start, default=None)
                reverts.append({"gate": name, "time": t, "reason": h.reason,
                                "outage": None if last is None else {"kind": last.kind, "seconds": round(last.seconds),
                                                                     "within_budget": last.seconds < BUDGET}})  # fmt: skip
        gate_pages = [(t, b) for t, g, b in pages if g == name and b.get("event") == "Held"]
        for e in episodes:
            before = [s for seen, s in seq if seen <= e.start]
            if not before or before[-1].phase != Phase.PROGRESSING or before[-1].stage_started_at is None:
                judged["not_progressing"] += 1
                continue
            until = e.end + 2 * INTERVAL / rate + 1.0
            # a refused look never reaches the proxy: the Gate's status versions, one per failed look
            if e.kind == "refused":
                times = sorted({wall(x.last_evaluated_at) for seen, x in seq
                                if e.start <= seen <= until and x.consecutive_errors and x.last_evaluated_at
                                and wall(x.last_evaluated_at) >= e.start - 0.05})  # fmt: skip
            else:
                times = [arrived for arrived, x in reqs if e.start <= arrived <= until and x != "up"]
            failed = len(times) + before[-1].consecutive_errors  # failures in a row from before it count
            # the budget runs from the first look without usable evidence: one before the outage (a failed
            # look of the last outage with no good look since) or the outage's first failed look
            carried = None if before[-1].nodata_since is None else wall(before[-1].nodata_since)
            since = carried if carried is not None else (times[0] if times else None)
            late = near = 0
            if since is not None:
                late = sum(t >= since + (BUDGET + INTERVAL) / rate for t in times if t <= e.end + 0.5)
                near = sum(t >= since + (BUDGET - INTERVAL) / rate for t in times)
            expect = _expect(e, failed=failed, late_looks=late, near_looks=near, carried=carried is not None)
            judged[{True: "must_page", False: "must_not_page", None: "either"}[expect]] += 1
            if expect is None:
                continue
            paged = any(e.start <= t <= e.end + 2 * INTERVAL / rate + 1.0 for t, _ in gate_pages)
            if paged != expect:  # what the gate did meanwhile says why (a starved look, a late page)
                during = [served for arrived, served in reqs if e.start <= arrived <= e.end]
                mismatches.append({"gate": name, "outage": e.kind, "seconds": round(e.seconds, 1),
                                   "expected_page": expect, "paged": paged, "real_s": round(e.end - e.start, 2),
                                   "requests_during": len(during), "failed_during": sum(x != "up" for x in during),
                                   "pages_from_start_s": [round(t - e.start, 2) for t, _ in gate_pages
                                                          if e.start - 5 <= t <= e.end + 30],
                                   "statuses_during": [f"{x.phase.value}:{x.consecutive_errors}"
                                                       for seen, x in seq if e.start <= seen <= e.end + 2][:12]})  # fmt: skip
    short = [r for r in reverts if r["outage"] and r["outage"]["within_budget"]]
    return {
        "figures": {
            "advances": advances,
            "advances_on_missing_evidence": len(missing_adv),
            "advances_during_flapping_on_complete_answers": len(flapping_adv),
            "rollbacks": len(reverts),
            "rollbacks_after_outages_shorter_than_budget": len(short),
            "pages": sum(1 for _, _, b in pages if b.get("event") == "Held"),
            "outage_gate_pairs_judged": judged["must_page"] + judged["must_not_page"],
            "page_or_hold_not_as_spec": len(mismatches),
        },
        "judged": judged,
        "advances_on_missing_evidence": missing_adv[:50],
        "rollbacks": reverts[:50],
        "page_mismatches": mismatches[:50],
    }


def _expect(e: Episode, *, failed: int, late_looks: int, near_looks: int, carried: bool) -> bool | None:
    """Must the outage page (True), must it not (False), or is it too close to a limit to say (None)?

    The spec holds a gate on either limit: more than ``consecutiveErrorLimit`` failed looks in a row, or
    ``outageBudget`` without usable evidence (any failed or incomplete look), counted from the first such
    look, which may precede the outage. Judged on the looks the gate made, not on how many would fit in the
    outage's gate time: on a loaded machine a controller looks less often than the compressed clock asks (a
    look every ~150 gate seconds instead of 15, seen at load 7-8 on 2 cores), so three failed looks
    can outlast the budget. ``failed``: looks that failed during the outage (the proxy's failed answers; for
    a refused outage, which never reaches the proxy, the Gate's status versions), plus the failed looks in a
    row it began with; ``late_looks``: failed looks a whole interval past the budget's end; ``near_looks``:
    failed looks less than an interval before it or later; ``carried``: the budget started before the
    outage."""
    if e.kind == "flapping":  # every other answer fails: a good look in between clears both counters
        return False if not carried or near_looks == 0 else None
    if late_looks >= 1:
        return True
    if e.kind != "partial" and failed >= LIMIT + 2:
        return True
    if (e.kind == "partial" or failed <= LIMIT - 1) and near_looks == 0:
        return False
    return None  # a look at a limit: the last failure may be the hold itself, or return after the outage
