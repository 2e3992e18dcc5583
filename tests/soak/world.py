"""The world a soak runs in: the real kube-apiserver + etcd, a real Prometheus, routes of all four kinds, Gates,
healthy or regressing data, and a recorder of every write the API server accepted.

``World.started(dir)`` starts its own cluster and Prometheus (bench/soak.py); the tests build one from the
session fixtures. ``Recorder`` watches the Gates and every route kind of a namespace and keeps each stored
version in one list ordered by ``resourceVersion`` (one etcd: versions are comparable across resources), so a
route change can be checked against the Gate status that was stored just before it.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from gatekeeper.routing.base import APIS, OWNER_ANNOTATION
from gatekeeper.sim.remote_write import RemoteWriteClient
from gatekeeper.sim.scenario import ArmProfile, Scenario, canary_scenario
from gatekeeper.spec.crd import GROUP, PLURAL, VERSION
from tests.controller_support import BUSY, install_gate_crd, regression_scenario

KINDS = ("gateway-api", "istio", "smi", "nginx")
CANARY, STABLE = "web-canary", "web-stable"
NG = "nginx.ingress.kubernetes.io/"
STAGE_WEIGHTS = (1, 5, 25, 50, 100)


def stages(min_duration: str = "1m") -> list[dict[str, Any]]:
    return [
        {
            "weight": w,
            "minDuration": min_duration,
            "minSamples": 500,
            "rollbackWindow": {"mode": "reversible"},
        }
        for w in STAGE_WEIGHTS
    ]


@dataclass
class World:
    api: Any  # admin ApiClient
    kubeconfig: Path
    prometheus: str
    remote_write: str
    workdir: Path
    _close: Callable[[], None] = field(default=lambda: None, repr=False)

    @classmethod
    @contextlib.contextmanager
    def started(cls, workdir: Path, *, kube_args: tuple[str, ...] = ()) -> Iterator[World]:
        """Start etcd + kube-apiserver (routing CRDs, the Gate CRD; ``kube_args``: more API server flags) and
        Prometheus under ``workdir``."""
        from gatekeeper.sim.kube import KubeCluster
        from gatekeeper.sim.prometheus import PrometheusServer

        workdir.mkdir(parents=True, exist_ok=True)
        with (
            KubeCluster.start(workdir / "kube", extra_args=kube_args) as cluster,
            PrometheusServer(out_of_order_time_window="1d") as prom,
        ):
            cluster.install_crds()
            api = cluster.api_client()
            install_gate_crd(api)
            try:
                yield cls(api, cluster.kubeconfig, prom.url, prom.remote_write_url, workdir)
            finally:
                api.close()

    # -- namespaces and data -----------------------------------------------------------------------------------
    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        client.CoreV1Api(self.api).create_namespace({"metadata": {"name": name}})
        return name

    def load(self, *, service: str, end_ms: int, minutes: float, bad_after_ms: int | None = None,
             seed: int = 0) -> Scenario:  # fmt: skip
        """Healthy data for both arms over ``minutes`` up to ``end_ms``; with ``bad_after_ms`` the canary's error
        ratio jumps 8-fold from then on (the gate must revert)."""
        if bad_after_ms is None:
            sc = canary_scenario(service=service, end_ms=end_ms, duration_seconds=minutes * 60,
                                 canary=ArmProfile(**BUSY), baseline=ArmProfile(**BUSY), seed=seed)  # fmt: skip
        else:
            bad = ArmProfile(**{**BUSY, "error_ratio": BUSY["error_ratio"] * 8})
            sc = regression_scenario(service=service, end_ms=end_ms, switch_ms=bad_after_ms, bad=bad, seed=seed,
                                     duration=minutes * 60)  # fmt: skip
        RemoteWriteClient(self.remote_write).write(sc.series)
        return sc

    # -- routes ----------------------------------------------------------------------------------------------
    def route(self, kind: str, ns: str, name: str, *, owner: str, canary: int = 0) -> None:
        a = APIS[kind]
        custom = client.CustomObjectsApi(self.api)
        custom.create_namespaced_custom_object(
            a.group, a.versions[0], ns, a.plural, route_body(kind, name, owner, canary)
        )
        if kind == "nginx":
            custom.create_namespaced_custom_object(
                a.group, a.versions[0], ns, a.plural, primary_ingress(name)
            )

    def read_route(self, kind: str, ns: str, name: str) -> dict[str, Any]:
        a = APIS[kind]
        out: dict[str, Any] = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            a.group, a.versions[0], ns, a.plural, name
        )
        return out

    # -- gates -------------------------------------------------------------------------------------------------
    def gate(self, ns: str, name: str, *, kind: str, route: str, service: str, **spec: Any) -> None:
        body = gate_body(name, kind=kind, route=route, service=service, **spec)
        client.CustomObjectsApi(self.api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)

    def gates(self, ns: str) -> dict[str, dict[str, Any]]:
        items = client.CustomObjectsApi(self.api).list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)[
            "items"
        ]
        return {g["metadata"]["name"]: g for g in items}


def route_body(kind: str, name: str, owner: str, canary: int = 0) -> dict[str, Any]:
    """A route of ``kind`` named ``name`` splitting ``canary``% to web-canary, owned by gate ``owner``."""
    a = APIS[kind]
    ann = {OWNER_ANNOTATION: owner}
    meta = {"name": name, "annotations": ann, "labels": {"app": "web", "team": "checkout"}}
    head = {"apiVersion": f"{a.group}/{a.versions[0]}", "kind": a.kind, "metadata": meta}
    if kind == "gateway-api":
        refs = [
            {"name": STABLE, "port": 80, "weight": 100 - canary},
            {"name": CANARY, "port": 80, "weight": canary},
        ]
        spec: dict[str, Any] = {"parentRefs": [{"name": "gw"}], "hostnames": [f"{name}.example.com"],
                                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                           "backendRefs": refs, "timeouts": {"request": "10s"}}]}  # fmt: skip
    elif kind == "istio":
        route = [{"destination": {"host": STABLE, "port": {"number": 80}}, "weight": 100 - canary},
                 {"destination": {"host": CANARY, "port": {"number": 80}}, "weight": canary}]  # fmt: skip
        spec = {"hosts": [name], "http": [{"name": "primary", "route": route, "timeout": "10s"}]}
    elif kind == "smi":
        spec = {"service": name, "backends": [{"service": STABLE, "weight": 100 - canary},
                                              {"service": CANARY, "weight": canary}]}  # fmt: skip
    else:
        ann.update(
            {NG + "canary": "true", NG + "canary-weight": str(canary), NG + "proxy-read-timeout": "10"}
        )
        backend = {"service": {"name": CANARY, "port": {"number": 80}}}
        spec = {"ingressClassName": "nginx", "rules": [{"host": f"{name}.example.com", "http": {
            "paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}  # fmt: skip
    return {**head, "spec": spec}


def primary_ingress(name: str) -> dict[str, Any]:
    backend = {"service": {"name": STABLE, "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": f"{name}-primary"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": f"{name}.example.com", "http": {
                "paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}  # fmt: skip


def canary_weight(kind: str, obj: dict[str, Any]) -> int | None:
    """The canary's weight as stored, read straight from the layout of ``route_body`` (not through a router)."""
    s = obj.get("spec") or {}
    try:
        if kind == "gateway-api":
            refs = s["rules"][-1]["backendRefs"]  # an A/B rule would come first
            return int(next(r.get("weight", 1) for r in refs if r["name"] == CANARY))
        if kind == "istio":
            route = s["http"][-1]["route"]
            return int(next(r.get("weight", 0) for r in route if r["destination"]["host"] == CANARY))
        if kind == "smi":
            return int(next(b.get("weight", 0) for b in s["backends"] if b["service"] == CANARY))
        return int((obj["metadata"].get("annotations") or {}).get(NG + "canary-weight", "0"))
    except (KeyError, IndexError, StopIteration, TypeError, ValueError):
        return None


def gate_body(name: str, *, kind: str, route: str | None, service: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "args": [{"name": "service", "value": service}],
        "source": {"prometheus": {"timeout": "5s", "retries": 0, "step": "15s", "maxStaleness": "2m"}},
        "scopes": {
            "canary": {"service": "${service}", "track": "canary"},
            "baseline": {"service": "${service}", "track": "baseline"},
        },
        "interval": "15s",
        "stages": stages(),
        "signals": [
            {
                "name": "error-rate",
                "kind": "ratio",
                "bad": 'http_requests_total{code=~"5.."}',
                "total": "http_requests_total",
                "tolerance": 0.5,
                "critical": True,
            }
        ],
        "owners": ["team-checkout"],
        "runbook": "https://runbooks.example/checkout",
        "forwardFix": "ship the fix behind the checkout-v2 flag",
        **extra,
    }
    if route is not None:
        spec["routing"] = {"kind": kind, "name": route, "canaryBackend": CANARY, "stableBackend": STABLE}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Gate", "metadata": {"name": name}, "spec": spec}


# -- the API server's view of every write --------------------------------------------------------------------
@dataclass(frozen=True)
class Stored:
    """One version of one object as the API server stored it."""

    rv: int
    seen: float  # wall time the watch delivered it
    what: str  # "gate" or a route kind
    name: str
    event: str  # ADDED | MODIFIED | DELETED
    obj: dict[str, Any]

    @property
    def status(self) -> dict[str, Any]:
        return self.obj.get("status") or {}

    @property
    def weight(self) -> int | None:
        return canary_weight(self.what, self.obj) if self.what != "gate" else None


class Recorder:
    """Watches the Gates and each route kind of ``ns``; ``log()`` is every stored version, in etcd order."""

    def __init__(self, api: Any, ns: str, *, kinds: tuple[str, ...] = KINDS) -> None:
        self.api, self.ns = api, ns
        self._log: list[Stored] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watches: list[watch.Watch] = []
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []
        sources = [("gate", GROUP, VERSION, PLURAL)] + [
            (k, APIS[k].group, APIS[k].versions[0], APIS[k].plural) for k in kinds
        ]
        ready = []
        for src in sources:
            ev = threading.Event()
            t = threading.Thread(target=self._run, args=(*src, ev), daemon=True, name=f"recorder {src[0]}")
            t.start()
            self._threads.append(t)
            ready.append(ev)
        for ev in ready:
            ev.wait(15)

    def _run(self, what: str, group: str, version: str, plural: str, ready: threading.Event) -> None:
        custom = client.CustomObjectsApi(self.api)
        rv = custom.list_namespaced_custom_object(group, version, self.ns, plural)["metadata"][
            "resourceVersion"
        ]
        ready.set()
        while not self._stop.is_set():
            w = watch.Watch()
            self._watches.append(w)
            try:
                for ev in w.stream(custom.list_namespaced_custom_object, group, version, self.ns, plural,
                                   resource_version=rv, timeout_seconds=300):  # fmt: skip
                    obj = ev["object"]
                    rv = obj["metadata"]["resourceVersion"]
                    if ev["type"] == "BOOKMARK":
                        continue
                    item = Stored(int(rv), time.time(), what, obj["metadata"]["name"], ev["type"], obj)
                    with self._lock:
                        self._log.append(item)
            except ApiException as e:
                if not self._stop.is_set():
                    self.errors.append(f"{what}: {e.status} {e.reason}")
                    time.sleep(0.5)
            except Exception as e:  # stop() closes the stream under the reader
                if not self._stop.is_set():
                    self.errors.append(f"{what}: {type(e).__name__}: {e}")
                    time.sleep(0.5)

    def log(self) -> list[Stored]:
        with self._lock:
            return sorted(self._log, key=lambda s: s.rv)

    def latest(self, what: str) -> dict[str, Stored]:
        """The newest stored version of each object of ``what`` ("gate" or a route kind)."""
        out: dict[str, Stored] = {}
        with self._lock:
            for item in self._log:
                if item.what == what and (item.name not in out or item.rv > out[item.name].rv):
                    out[item.name] = item
        return out

    def stop(self) -> None:
        time.sleep(0.3)  # the last changes reach the watches
        self._stop.set()
        for w in self._watches:
            w.stop()
