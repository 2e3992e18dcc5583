"""Part 2, failover: the leader of 2-3 replicas killed (kill -9), stopped gracefully (SIGTERM) and paused
(SIGSTOP ... SIGCONT), a hundred times each, with writes attributed from the API server's audit log.

Every replica is a real ``gatekeeper controller run`` process (forked from a preloaded server) with its own
identity, health and ``/metrics`` ports; a replica that died or was stopped is replaced by a fresh one (a new
identity, so it cannot simply renew its old Lease). ``gates`` Gates look every 15 s of gate time (a stage
lasts 1000 h, so they never finish) and write heartbeats and Events.

* kill -9 and graceful stop (the Lease settings under test, client-go's defaults unless told): the time from
  the signal to the next look by the new leader (its ``gatekeeper_evaluations_total`` counter moving, polled
  every 50 ms) and to its Lease acquisition (the Lease's holder, polled likewise);
* SIGSTOP/SIGCONT: the leader paused at a random moment until another replica leads and has looked, then
  resumed: it must write nothing and exit. The replicas run as the chart's ServiceAccount with its RBAC and
  its fence policy (a ValidatingAdmissionPolicy refusing a status or routing write whose writer the Lease
  does not name), rendered by a real helm: a request that passed the replica's own Lease check before the
  pause and leaves on waking is refused there (counted as refused by the fence). The API server's audit log (``--audit-log-path``; Metadata for every
  write, the request body for Leases) says who held the Lease at each moment (every successful Lease write
  with its ``holderIdentity``) and who made each accepted write (each replica's User-Agent names it): a write
  accepted from a replica while the Lease named another, or nobody, is a write from a deposed leader.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import random
import re
import signal
import statistics
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatekeeper.sim.prometheus import free_port
from tests.controller_support import ControllerProcess, lease_holder
from tests.fixtures.prometheus import current_step_ms
from tests.soak.world import KINDS, World

DEFAULT_LEASE = {"lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 2.0}  # client-go's
FAST_LEASE = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}
LEASE = "gatekeeper-controller"
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Request
    resources: [{group: coordination.k8s.io, resources: [leases]}]
    verbs: [create, update, patch]
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"""
_UA = re.compile(r"gatekeeper-controller/\S+ \((?P<identity>[^)]+)\)")


def audit_args(workdir: Path) -> list[str]:
    """kube-apiserver flags for the audit log this part reads."""
    policy = workdir / "audit-policy.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    policy.write_text(AUDIT_POLICY)
    return [f"--audit-policy-file={policy}", f"--audit-log-path={workdir / 'audit.log'}",
            "--audit-log-maxsize=2000", "--audit-log-format=json"]  # fmt: skip


@dataclass(frozen=True)
class FailoverPlan:
    kills: int = 100
    graceful: int = 100
    stops: int = 100
    replicas: int = 3
    lease: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LEASE))  # kills and graceful stops
    stop_lease: dict[str, float] = field(default_factory=lambda: dict(FAST_LEASE))  # SIGSTOP cycles
    gates: int = 8
    rate: float = 10.0
    seed: int = 1


@dataclass
class Replica:
    identity: str
    proc: ControllerProcess
    metrics: str

    def looks(self) -> float:
        try:
            with urllib.request.urlopen(self.metrics, timeout=1) as r:
                text = r.read().decode()
        except OSError:
            return -1.0
        return sum(
            float(m[1]) for m in re.finditer(r"^gatekeeper_evaluations_total\{[^}]*\} (\S+)$", text, re.M)
        )


class Pool:
    """``n`` live replicas on one Lease; ``replace`` swaps a dead one for a fresh identity."""

    def __init__(self, world: World, ns: str, *, n: int, lease: dict[str, float], origin: float, anchor: float,
                 rate: float, log: Path, kubeconfig: Path) -> None:  # fmt: skip
        self.world, self.ns, self.lease, self.log, self.kubeconfig = world, ns, lease, log, kubeconfig
        self.clock = (origin, anchor, rate)
        self._ids = itertools.count(1)
        self.live: list[Replica] = [self.spawn() for _ in range(n)]

    def spawn(self) -> Replica:
        identity = f"r{next(self._ids)}"
        port, health = free_port(), free_port()
        origin, anchor, rate = self.clock
        args = [
            "controller", "run", "--kubeconfig", str(self.kubeconfig), "--namespace", self.ns,
            "--prometheus", self.world.prometheus, "--identity", identity, "--lease-name", LEASE,
            "--lease-duration", str(self.lease["lease_duration"]), "--renew-deadline", str(self.lease["renew_deadline"]),
            "--retry-period", str(self.lease["retry_period"]), "--health-port", str(health),
            "--health-host", "127.0.0.1", "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
            "--clock-origin", f"{origin:.3f}", "--clock-anchor", f"{anchor:.3f}", "--clock-rate", str(rate),
            "--log-level", "info",
        ]  # fmt: skip
        proc = ControllerProcess(args, log=self.log, cli=False)
        return Replica(identity, proc, f"http://127.0.0.1:{port}/metrics")

    def leader(self, timeout: float = 60.0) -> Replica:
        """The live replica that holds the Lease and has looked."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            holder = lease_holder(self.world.api, self.ns, LEASE)
            for r in self.live:
                if r.identity == holder and r.looks() > 0:
                    return r
            time.sleep(0.1)
        raise TimeoutError(
            f"no replica of {[r.identity for r in self.live]} led and looked within {timeout:g}s"
        )

    def replace(self, old: Replica) -> Replica:
        self.live.remove(old)
        new = self.spawn()
        self.live.append(new)
        deadline = time.monotonic() + 30
        while new.looks() < 0 and time.monotonic() < deadline:  # its /metrics answers: it runs
            time.sleep(0.1)
        return new

    def stop_all(self) -> None:
        for r in self.live:
            r.proc.signal(signal.SIGCONT)
            r.proc.stop(20)


@contextlib.contextmanager
def _pool(
    world: World, plan: FailoverPlan, *, lease: dict[str, float], name: str, hours: float
) -> Iterator[Pool]:
    ns = world.namespace(f"soak-failover-{name}")
    end_ms = current_step_ms()
    sc = world.load(service=f"failover-{ns}", end_ms=end_ms, minutes=hours * 60, seed=plan.seed)
    forever = [{"weight": w, "minDuration": "1000h", "minSamples": 500} for w in (1, 100)]
    for i in range(plan.gates):
        kind = KINDS[i % len(KINDS)]
        world.route(kind, ns, f"g{i}", owner=f"g{i}")
        world.gate(ns, f"g{i}", kind=kind, route=f"g{i}", service=sc.service, stages=forever)
    kubeconfig = install_as_the_chart_does(world, ns)
    origin, anchor = end_ms / 1000 - hours * 3600 + 60, time.time()
    pool = Pool(world, ns, n=plan.replicas, lease=lease, origin=origin, anchor=anchor, rate=plan.rate,
                log=world.workdir / f"failover-{name}.log", kubeconfig=kubeconfig)  # fmt: skip
    try:
        yield pool
    finally:
        pool.stop_all()


def install_as_the_chart_does(world: World, ns: str) -> Path:
    """The chart's ServiceAccount, RBAC (every router on, namespaced) and fence policy in ``ns``, rendered by a
    real helm; returns a kubeconfig of that ServiceAccount, as the replicas run in a cluster."""
    import yaml
    from kubernetes import client as k8s

    from tests.test_chart import apply, helm_binary, render

    kinds = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
             "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")  # fmt: skip
    sets = (f"watchNamespace={ns}", "routers.istio=true", "routers.smi=true", "routers.nginx=true",
            f"leaderElection.leaseName={LEASE}", "admissionPolicy.enabled=false")  # fmt: skip
    objs = [
        o for o in render(helm_binary(), *sets, release=f"gk{ns[-6:]}", namespace=ns) if o["kind"] in kinds
    ]
    apply(world.api, objs)
    sa = next(o["metadata"]["name"] for o in objs
              if o["kind"] == "ServiceAccount" and not o["metadata"]["name"].endswith("-intake"))  # fmt: skip
    token = k8s.CoreV1Api(world.api).create_namespaced_service_account_token(
        sa, ns, {"spec": {"expirationSeconds": 86400}}
    )
    cfg = yaml.safe_load(world.kubeconfig.read_text())
    cfg["users"] = [{"name": "sa", "user": {"token": token.status.token}}]
    cfg["contexts"] = [{"name": "sa", "context": {"cluster": cfg["clusters"][0]["name"], "user": "sa"}}]
    cfg["current-context"] = "sa"
    path = world.workdir / f"sa-{ns}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    time.sleep(2.0)  # a new policy takes effect within a second or two
    return path


def _timed_failover(
    pool: Pool, old: Replica, act: Callable[[], None], *, timeout: float = 60.0
) -> dict[str, float]:
    """Apply ``act`` to the leader ``old``; seconds until another replica holds the Lease and until it looked."""
    others = [r for r in pool.live if r is not old]
    t0 = time.monotonic()
    act()
    acquired = looked = None
    while (acquired is None or looked is None) and time.monotonic() - t0 < timeout:
        now = time.monotonic() - t0
        if acquired is None and lease_holder(pool.world.api, pool.ns, LEASE) in {r.identity for r in others}:
            acquired = now
        if looked is None and any(r.looks() > 0 for r in others):
            looked = now
        time.sleep(0.05)
    if acquired is None or looked is None:
        raise TimeoutError(f"no replica took over from {old.identity} within {timeout:g}s")
    return {"lease": round(acquired, 3), "look": round(looked, 3)}


def run_failover(world: World, plan: FailoverPlan, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    rng = random.Random(plan.seed)
    t0 = time.monotonic()
    kill: list[dict[str, float]] = []
    graceful: list[dict[str, float]] = []
    exits: list[str] = []
    per_cycle = plan.lease["lease_duration"] + 10
    hours = max(1.0, (plan.kills + plan.graceful) * per_cycle * plan.rate / 3600 + 0.5)
    with _pool(world, plan, lease=plan.lease, name="timing", hours=hours) as pool:
        for i, how in enumerate(["kill"] * plan.kills + ["graceful"] * plan.graceful):
            old = pool.leader()
            time.sleep(rng.uniform(0, plan.lease["retry_period"]))  # any phase of the renewal cycle
            if how == "kill":
                t = _timed_failover(pool, old, lambda o=old: o.proc.signal(signal.SIGKILL))
                kill.append(t)
            else:
                t = _timed_failover(pool, old, lambda o=old: o.proc.signal(signal.SIGTERM))
                graceful.append(t)
            code = old.proc.wait(30)
            if code != (-signal.SIGKILL if how == "kill" else 0):
                exits.append(f"{how} of {old.identity}: exit {code}")
            pool.replace(old)
            if (i + 1) % 10 == 0:
                say(f"  {how} {len(kill if how == 'kill' else graceful):3d}: lease {t['lease']:.2f} s, first look "
                    f"{t['look']:.2f} s ({time.monotonic() - t0:.0f} s)")  # fmt: skip
    stops: list[dict[str, Any]] = []
    hours = max(1.0, plan.stops * 12 * plan.rate / 3600 + 0.5)
    with _pool(world, plan, lease=plan.stop_lease, name="sigstop", hours=hours) as pool:
        for i in range(plan.stops):
            old = pool.leader()
            time.sleep(rng.uniform(0.05, 2.0))
            paused = time.time()
            t = _timed_failover(pool, old, lambda o=old: o.proc.signal(signal.SIGSTOP))
            time.sleep(rng.uniform(0, 1.5))
            old.proc.signal(signal.SIGCONT)
            resumed = time.time()
            try:
                code: int | None = old.proc.wait(20)
            except (TimeoutError, Exception):
                code = None
                old.proc.signal(signal.SIGKILL)
                old.proc.wait(10)
            stops.append({"identity": old.identity, "paused": paused, "resumed": resumed, "exit": code, **t})
            if code != 1:
                exits.append(
                    f"paused {old.identity} exited {code} after SIGCONT (expected 1: lost the Lease)"
                )
            pool.replace(old)
            if (i + 1) % 10 == 0:
                say(f"  sigstop {i + 1:3d}: taken over in {t['lease']:.2f} s ({time.monotonic() - t0:.0f} s)")
    audit = read_audit(world.workdir / "audit.log")
    deposed = deposed_writes(audit)
    pauses = {s["identity"]: (s["paused"], s["resumed"]) for s in stops}  # identities are unique per pool
    for d in deposed:  # a request that had passed the fence when the process was paused goes out on waking
        p = pauses.get(d["identity"])
        d["in_flight_at_pause"] = p is not None and p[0] <= d["t"] <= p[1] + 1.0
    figures = {
        "kill9_failovers": len(kill),
        "kill9_next_look_p50_s": _pct(kill, "look", 50),
        "kill9_next_look_p99_s": _pct(kill, "look", 99),
        "kill9_lease_p50_s": _pct(kill, "lease", 50),
        "kill9_lease_p99_s": _pct(kill, "lease", 99),
        "graceful_failovers": len(graceful),
        "graceful_next_look_p50_s": _pct(graceful, "look", 50),
        "graceful_next_look_p99_s": _pct(graceful, "look", 99),
        "graceful_lease_p99_s": _pct(graceful, "lease", 99),
        "sigstop_cycles": len(stops),
        "sigstop_exited_deposed": sum(s["exit"] == 1 for s in stops),
        "writes_audited": sum(1 for e in audit if e["ok"] and e["identity"]),
        "writes_from_deposed_leaders": len(deposed),
        "of_which_in_flight_when_paused": sum(d["in_flight_at_pause"] for d in deposed),
        "late_writes_refused_by_the_fence": sum(
            1 for e in audit if e["identity"] and e["code"] in (403, 422) and e["verb"] in ("patch", "update")
        ),
    }
    return {
        "figures": figures,
        "lease_settings": {"kill_and_graceful": plan.lease, "sigstop": plan.stop_lease},
        "seconds": round(time.monotonic() - t0, 1),
        "unexpected_exits": exits,
        "deposed": deposed[:50],
        "kill9": kill,
        "graceful": graceful,
        "sigstop": stops,
    }


def _pct(rows: list[dict[str, float]], key: str, q: float) -> float | None:
    values = sorted(r[key] for r in rows)
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 3)


# -- the audit log ----------------------------------------------------------------------------------------------
def read_audit(path: Path) -> list[dict[str, Any]]:
    """Every audited write: time received, who (replica identity from the User-Agent, '' for others), what,
    accepted or not, and for Lease writes the holder the request wrote."""
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        e = json.loads(line)
        ref = e.get("objectRef") or {}
        m = _UA.search(e.get("userAgent") or "")
        holder = None
        if ref.get("resource") == "leases" and ref.get("name") == LEASE:
            holder = ((e.get("requestObject") or {}).get("spec") or {}).get("holderIdentity") or ""
        code = (e.get("responseStatus") or {}).get("code", 0)
        out.append({
            "t": _ts(e["requestReceivedTimestamp"]),
            "identity": m["identity"] if m else "",
            "verb": e.get("verb"),
            "what": "/".join(str(ref.get(k) or "") for k in ("resource", "subresource", "namespace", "name")),
            "ok": 200 <= code < 300,
            "code": code,
            "holder": holder,
        })  # fmt: skip
    return sorted(out, key=lambda e: e["t"])


def deposed_writes(audit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Accepted writes by a replica while the Lease (as last written before the write arrived) named another
    replica or nobody. Lease writes themselves are the election: not counted."""
    holder: dict[str, str] = {}  # lease namespace -> holder
    out = []
    for e in audit:
        if not e["ok"]:
            continue
        ns = e["what"].split("/")[2]
        if e["holder"] is not None:
            holder[ns] = e["holder"]
            continue
        if e["identity"] and holder.get(ns) != e["identity"]:
            out.append({**e, "lease_holder": holder.get(ns)})
    return out


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
