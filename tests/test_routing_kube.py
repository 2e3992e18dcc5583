"""Every Kubernetes router against the real kube-apiserver with the upstream CRDs.

The sample resources and the raw weight read-out below are written independently of the routers: the tests
read the objects with plain GETs, so a router that reads back its own mistake still fails.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from kubernetes import client

from gatekeeper.routing import Conflict, NotOwned, RouteTarget, RoutingError, make_router
from gatekeeper.routing.base import APIS, ORIGINAL_ANNOTATION, OWNER_ANNOTATION, Api

pytestmark = pytest.mark.k8s

KUBE_KINDS = ("gateway-api", "istio", "smi", "nginx")
GATE = "gate-web"
CANARY, STABLE = "web-canary", "web-stable"
NG = "nginx.ingress.kubernetes.io/"


# -- samples, written by hand from each project's docs ---------------------------------------------------------
def sample(kind: str, *, owner: str | None = GATE, canary: int = 0) -> dict[str, Any]:
    """A minimal resource of ``kind`` splitting ``canary``% to web-canary, named ``web``."""
    ann = {OWNER_ANNOTATION: owner} if owner else {}
    api = APIS[kind]
    meta = {"name": "web", "annotations": ann, "labels": {"app": "web"}}
    head = {"apiVersion": f"{api.group}/{api.versions[0]}", "kind": api.kind, "metadata": meta}
    if kind == "gateway-api":
        refs = [
            {"name": STABLE, "port": 80, "weight": 100 - canary},
            {"name": CANARY, "port": 80, "weight": canary},
        ]
        spec = {
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["web.example.com"],
            "rules": [{"backendRefs": refs}],
        }
    elif kind == "istio":
        route = [
            {"destination": {"host": STABLE, "port": {"number": 80}}, "weight": 100 - canary},
            {"destination": {"host": CANARY, "port": {"number": 80}}, "weight": canary},
        ]
        spec = {"hosts": ["web"], "http": [{"name": "primary", "route": route}]}
    elif kind == "smi":
        spec = {
            "service": "web",
            "backends": [{"service": STABLE, "weight": 100 - canary}, {"service": CANARY, "weight": canary}],
        }
    else:
        ann.update({NG + "canary": "true", NG + "canary-weight": str(canary)})
        backend = {"service": {"name": CANARY, "port": {"number": 80}}}
        path = {"path": "/", "pathType": "Prefix", "backend": backend}
        spec = {
            "ingressClassName": "nginx",
            "rules": [{"host": "web.example.com", "http": {"paths": [path]}}],
        }
    return {**head, "spec": spec}


def primary_ingress(
    *, host: str = "web.example.com", path: str = "/", service: str = STABLE
) -> dict[str, Any]:
    """The primary Ingress ingress-nginx needs beside a canary one: same host and path, to the stable Service."""
    backend = {"service": {"name": service, "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web-primary"},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {"host": host, "http": {"paths": [{"path": path, "pathType": "Prefix", "backend": backend}]}}
            ],
        },
    }


def raw_weights(kind: str, obj: dict[str, Any]) -> tuple[Any, Any]:
    """(canary, stable) straight from the sample's known layout."""
    s = obj["spec"]
    if kind == "gateway-api":
        refs = s["rules"][0]["backendRefs"]
        return refs[1].get("weight"), refs[0].get("weight")
    if kind == "istio":
        route = s["http"][0]["route"]
        return route[1].get("weight"), route[0].get("weight")
    if kind == "smi":
        return s["backends"][1].get("weight"), s["backends"][0].get("weight")
    ann = obj["metadata"].get("annotations", {})
    return ann.get(NG + "canary-weight"), None


def expect(kind: str, w: int) -> tuple[Any, Any]:
    return (str(w), None) if kind == "nginx" else (w, 100 - w)


def raw_set(kind: str, w: int) -> list[dict[str, Any]]:
    """A third party's JSON patch moving the sample to canary ``w`` (the concurrent writer)."""
    paths = {
        "gateway-api": ("/spec/rules/0/backendRefs/1/weight", "/spec/rules/0/backendRefs/0/weight"),
        "istio": ("/spec/http/0/route/1/weight", "/spec/http/0/route/0/weight"),
        "smi": ("/spec/backends/1/weight", "/spec/backends/0/weight"),
    }
    if kind == "nginx":
        return [
            {
                "op": "replace",
                "path": "/metadata/annotations/" + (NG + "canary-weight").replace("/", "~1"),
                "value": str(w),
            }
        ]
    c, s = paths[kind]
    return [{"op": "replace", "path": c, "value": w}, {"op": "replace", "path": s, "value": 100 - w}]


class Kube:
    """Plain GET/create/patch of the sample through the admin client."""

    def __init__(self, api: Any, kind: str, ns: str) -> None:
        self.co, self.kind, self.ns, self.api = client.CustomObjectsApi(api), kind, ns, APIS[kind]

    def create(self, body: dict[str, Any], *, primary: bool = True) -> dict[str, Any]:
        """Create ``body``; for NGINX also the primary Ingress it needs (unless ``primary=False``)."""
        a = self.api
        out: dict[str, Any] = self.co.create_namespaced_custom_object(
            a.group, a.versions[0], self.ns, a.plural, body
        )
        if self.kind == "nginx" and primary:
            self.co.create_namespaced_custom_object(
                a.group, a.versions[0], self.ns, a.plural, primary_ingress()
            )
        return out

    def get(self, name: str = "web") -> dict[str, Any]:
        a = self.api
        raw = self.co.get_namespaced_custom_object(
            a.group, a.versions[0], self.ns, a.plural, name, _preload_content=False
        )
        obj: dict[str, Any] = json.loads(raw.data)
        return obj

    def patch(self, ops: list[dict[str, Any]], name: str = "web") -> None:
        a = self.api
        self.co.patch_namespaced_custom_object(
            a.group, a.versions[0], self.ns, a.plural, name, ops, _content_type="application/json-patch+json"
        )


def target(kind: str, ns: str, **kw: str) -> RouteTarget:
    fields = {
        "kind": kind,
        "namespace": ns,
        "name": "web",
        "canary": CANARY,
        "stable": STABLE,
        "owner": GATE,
        **kw,
    }
    return RouteTarget(**fields)


@pytest.fixture(params=KUBE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def kube(kube_admin: Any, kube_namespace: str, kind: str) -> Kube:
    return Kube(kube_admin, kind, kube_namespace)


# -- the contract -------------------------------------------------------------------------------------------
def test_a_set_weight_is_stored_and_read_back(kube: Kube, kube_admin: Any, kind: str) -> None:
    kube.create(sample(kind))
    router = make_router(target(kind, kube.ns), kube_admin)
    change = router.set_weight(30)
    assert change.written and not change.dry_run and change.attempts == 1
    assert (change.before.canary_weight, change.after.canary_weight) == (0, 30)
    assert raw_weights(kind, kube.get()) == expect(kind, 30)
    assert router.read().canary_percent == pytest.approx(30.0)


def test_revert_restores_the_original_spec_byte_for_byte(kube: Kube, kube_admin: Any, kind: str) -> None:
    kube.create(sample(kind, canary=5))
    original = kube.get()
    router = make_router(target(kind, kube.ns), kube_admin)
    router.set_weight(40)
    router.set_weight(70)
    assert ORIGINAL_ANNOTATION in kube.get()["metadata"]["annotations"]
    change = router.revert()
    restored = kube.get()
    assert change.written and change.after.canary_weight == 5
    assert json.dumps(restored["spec"]) == json.dumps(original["spec"])
    assert restored["metadata"]["annotations"] == original["metadata"]["annotations"]


def test_revert_removes_split_annotations_that_were_absent(kube_admin: Any, kube_namespace: str) -> None:
    kube = Kube(kube_admin, "nginx", kube_namespace)
    body = sample("nginx")
    for key in ("canary", "canary-weight"):
        del body["metadata"]["annotations"][NG + key]
    kube.create(body)
    router = make_router(target("nginx", kube.ns), kube_admin)
    assert router.read().canary_weight == 0
    router.set_weight(20)
    assert kube.get()["metadata"]["annotations"][NG + "canary"] == "true"
    router.revert()
    assert kube.get()["metadata"]["annotations"] == {OWNER_ANNOTATION: GATE}


def test_nothing_is_written_when_the_weight_is_already_set(kube: Kube, kube_admin: Any, kind: str) -> None:
    kube.create(sample(kind, canary=25))
    rv = kube.get()["metadata"]["resourceVersion"]
    router = make_router(target(kind, kube.ns), kube_admin)
    assert not router.set_weight(25).written
    assert not router.revert().written  # nothing saved, nothing to revert
    after = kube.get()
    assert (
        after["metadata"]["resourceVersion"] == rv
        and ORIGINAL_ANNOTATION not in after["metadata"]["annotations"]
    )


def test_a_concurrent_writer_is_retried_on_a_fresh_read(kube: Kube, kube_admin: Any, kind: str) -> None:
    kube.create(sample(kind))
    calls: list[int] = []

    def rival() -> None:  # another writer wins the race between our read and our write, once
        calls.append(1)
        if len(calls) == 1:
            kube.patch([*raw_set(kind, 90), {"op": "add", "path": "/metadata/labels/rival", "value": "x"}])

    router = make_router(target(kind, kube.ns), kube_admin, fence=rival)
    change = router.set_weight(10)
    after = kube.get()
    assert change.attempts == 2 and len(calls) == 2
    assert change.before.canary_weight == 90  # recomputed from the fresh read
    assert raw_weights(kind, after) == expect(kind, 10)
    assert after["metadata"]["labels"] == {"app": "web", "rival": "x"}  # the rival's field is kept


def test_writers_that_always_win_end_in_a_conflict_with_nothing_written(
    kube: Kube, kube_admin: Any, kind: str
) -> None:
    kube.create(sample(kind))
    n: list[int] = []

    def rival() -> None:
        n.append(1)
        kube.patch([{"op": "add", "path": "/metadata/labels/rival", "value": str(len(n))}])

    router = make_router(target(kind, kube.ns), kube_admin, fence=rival, max_attempts=3)
    with pytest.raises(Conflict, match="3 attempts"):
        router.set_weight(50)
    after = kube.get()
    assert len(n) == 3
    assert (
        raw_weights(kind, after) == expect(kind, 0)
        and ORIGINAL_ANNOTATION not in after["metadata"]["annotations"]
    )


@pytest.mark.parametrize("owner", [None, "someone-else"])
def test_a_resource_the_gate_does_not_own_is_refused(
    kube: Kube, kube_admin: Any, kind: str, owner: str | None
) -> None:
    kube.create(sample(kind, owner=owner))
    before = kube.get()
    router = make_router(target(kind, kube.ns), kube_admin)
    with pytest.raises(NotOwned, match=OWNER_ANNOTATION if owner is None else "someone-else"):
        router.set_weight(50)
    with pytest.raises(NotOwned):
        router.revert()
    assert kube.get() == before
    assert router.read().canary_weight == 0  # reading needs no ownership


@pytest.mark.parametrize("bad", [-1, 101, 12.5, True, "50"])
def test_a_weight_outside_0_to_100_is_a_clear_error(kube: Kube, kube_admin: Any, kind: str, bad: Any) -> None:
    kube.create(sample(kind))
    rv = kube.get()["metadata"]["resourceVersion"]
    with pytest.raises(RoutingError, match=r"0\.\.100|0 to 100"):
        make_router(target(kind, kube.ns), kube_admin).set_weight(bad)
    assert kube.get()["metadata"]["resourceVersion"] == rv


def test_a_backend_the_resource_does_not_reference_is_a_clear_error(
    kube: Kube, kube_admin: Any, kind: str
) -> None:
    kube.create(sample(kind))
    router = make_router(target(kind, kube.ns, canary="web-nope"), kube_admin)
    with pytest.raises(RoutingError, match="web-nope"):
        router.set_weight(10)


def test_a_missing_resource_is_a_clear_error(kube: Kube, kube_admin: Any, kind: str) -> None:
    with pytest.raises(RoutingError, match="not found"):
        make_router(target(kind, kube.ns, name="absent"), kube_admin).read()


def test_a_dry_run_reports_the_result_and_persists_nothing(kube: Kube, kube_admin: Any, kind: str) -> None:
    kube.create(sample(kind))
    before = kube.get()
    change = make_router(target(kind, kube.ns), kube_admin).set_weight(35, dry_run=True)
    assert change.written and change.dry_run and change.after.canary_weight == 35
    assert change.after.has_original  # the server saw the whole write, annotation included
    assert kube.get() == before


def test_every_write_is_logged_with_before_and_after(
    kube: Kube, kube_admin: Any, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    kube.create(sample(kind))
    with caplog.at_level(logging.INFO, logger="gatekeeper.routing"):
        router = make_router(target(kind, kube.ns), kube_admin)
        router.set_weight(15)
        router.set_weight(15)
    writes = [r.getMessage() for r in caplog.records if "routing write" in r.getMessage()]
    assert len(writes) == 1 and "canary 0/100 -> 15/85" in writes[0] and "web" in writes[0]


UNRELATED = {  # a third party's edit of a spec field gatekeeper does not own
    "gateway-api": ({"op": "add", "path": "/spec/hostnames/-", "value": "b.example.com"}, ("hostnames",)),
    "istio": ({"op": "add", "path": "/spec/hosts/-", "value": "web2"}, ("hosts",)),
    "smi": ({"op": "replace", "path": "/spec/service", "value": "web2"}, ("service",)),
    "nginx": ({"op": "replace", "path": "/spec/rules/0/host", "value": "b.example.com"}, ("rules",)),
}


def test_a_revert_keeps_spec_fields_another_writer_changed(kube: Kube, kube_admin: Any, kind: str) -> None:
    kube.create(sample(kind))
    original = kube.get()["spec"]
    router = make_router(target(kind, kube.ns), kube_admin)
    router.set_weight(60)
    op, (field,) = UNRELATED[kind]
    kube.patch([op])
    edited = kube.get()["spec"][field]
    assert edited != original[field]
    router.revert()
    after = kube.get()["spec"]
    assert raw_weights(kind, {"spec": after, "metadata": kube.get()["metadata"]}) == expect(kind, 0)
    assert after[field] == edited
    assert {k: v for k, v in after.items() if k != field} == {k: v for k, v in original.items() if k != field}


def test_an_unserved_api_version_falls_back_to_the_next_in_the_table(
    kube_admin: Any, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Kube(kube_admin, "smi", kube_namespace).create(sample("smi", canary=7))
    smi = APIS["smi"]
    monkeypatch.setitem(APIS, "smi", Api(smi.group, ("v1alpha4", "v1alpha2"), smi.plural, smi.kind))
    router = make_router(target("smi", kube_namespace), kube_admin)
    assert router.read().canary_weight == 7 and router.set_weight(8).after.canary_weight == 8
    monkeypatch.setitem(APIS, "smi", Api(smi.group, ("v1alpha4",), smi.plural, smi.kind))
    with pytest.raises(RoutingError, match="serves none"):
        make_router(target("smi", kube_namespace), kube_admin).read()
