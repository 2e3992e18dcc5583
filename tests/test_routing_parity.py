"""Routing parity with Flagger/Argo Rollouts on the real kube-apiserver: A/B match rules, mirroring (shadow
stages), the ``maxWeight`` cap, a revert that never raises exposure, Istio subset splits and the NGINX primary
Ingress check.

Expected shapes are written here from the Gateway API and Istio CRD schemas and the ingress-nginx canary
annotation docs, and read back with plain GETs, never through the router under test.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gatekeeper.routing import (
    AboveMaxWeight,
    Match,
    MirrorRouter,
    NotOwned,
    RoutingError,
    make_router,
)
from gatekeeper.routing.base import ORIGINAL_ANNOTATION, OWNER_ANNOTATION
from gatekeeper.routing.rbac import role_rules
from gatekeeper.sim.kube import KubeCluster, crd_documents
from tests.test_routing_kube import (
    CANARY,
    GATE,
    NG,
    Kube,
    expect,
    primary_ingress,
    raw_weights,
    sample,
    target,
)
from tests.test_routing_rbac import service_account_client

pytestmark = pytest.mark.k8s

AB = Match((("x-canary", "always"),), ("canary", "always"))
RULE = f"gatekeeper-ab-{GATE}"
COOKIE_RE = r"^(.*?;\s*)?(canary=always)(;.*)?$"  # the cookie anywhere in the Cookie header (RE2 syntax)


def router(kind: str, ns: str, **kw: Any) -> Any:
    return make_router(target(kind, ns), kw.pop("api"), **kw)


def same_bytes(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Spec and annotations serialised exactly as the server returned them."""
    return json.dumps(a["spec"]) == json.dumps(b["spec"]) and json.dumps(
        a["metadata"].get("annotations")
    ) == json.dumps(b["metadata"].get("annotations"))


# -- A/B match rules -------------------------------------------------------------------------------------------
def test_a_gateway_api_ab_rule_precedes_the_split_with_the_headers_and_the_canary_only(
    kube_admin: Any, kube_namespace: str
) -> None:
    kube = Kube(kube_admin, "gateway-api", kube_namespace)
    kube.create(sample("gateway-api", canary=10))
    managed = kube.get()["spec"]["rules"][0]
    change = router("gateway-api", kube.ns, api=kube_admin).set_match(AB)
    rules = kube.get()["spec"]["rules"]
    assert change.written and change.action == "match" and change.after.match == AB
    assert len(rules) == 2 and rules[1] == managed  # the weighted rule is untouched
    ab = rules[0]
    assert ab["name"] == RULE
    assert ab["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [
                {"name": "x-canary", "type": "Exact", "value": "always"},
                {"name": "cookie", "type": "RegularExpression", "value": COOKIE_RE},
            ],
        }
    ]
    assert [(r["name"], r["weight"]) for r in ab["backendRefs"]] == [(CANARY, 1)]
    assert raw_weights("gateway-api", {"spec": {"rules": rules[1:]}}) == (10, 90)


def test_an_istio_ab_route_comes_first_and_keeps_the_managed_uri_condition(
    kube_admin: Any, kube_namespace: str
) -> None:
    kube = Kube(kube_admin, "istio", kube_namespace)
    body = sample("istio")
    body["spec"]["http"][0]["match"] = [{"uri": {"prefix": "/api"}}]
    body["spec"]["http"][0]["timeout"] = "5s"
    kube.create(body)
    router("istio", kube.ns, api=kube_admin).set_match(AB)
    http = kube.get()["spec"]["http"]
    assert [r.get("name") for r in http] == [RULE, "primary"]
    assert http[0]["match"] == [
        {
            "uri": {"prefix": "/api"},
            "headers": {"x-canary": {"exact": "always"}, "cookie": {"regex": COOKIE_RE}},
        }
    ]
    assert http[0]["route"] == [{"destination": {"host": CANARY, "port": {"number": 80}}}]
    assert http[0]["timeout"] == "5s"  # the route's own policy comes along


def test_nginx_ab_uses_the_canary_by_header_and_cookie_annotations(
    kube_admin: Any, kube_namespace: str
) -> None:
    kube = Kube(kube_admin, "nginx", kube_namespace)
    kube.create(sample("nginx"))
    r = router("nginx", kube.ns, api=kube_admin)
    assert r.set_match(AB).after.match == AB
    ann = kube.get()["metadata"]["annotations"]
    assert (ann[NG + "canary-by-header"], ann[NG + "canary-by-header-value"]) == ("x-canary", "always")
    assert ann[NG + "canary-by-cookie"] == "canary" and ann[NG + "canary-weight"] == "0"
    with pytest.raises(RoutingError, match="'always'"):
        r.set_match(Match(cookie=("canary", "yes")))
    with pytest.raises(RoutingError, match="one canary header"):
        r.set_match(Match((("a", "1"), ("b", "2"))))


@pytest.mark.parametrize("kind", ["gateway-api", "istio", "nginx"])
def test_removing_the_match_leaves_the_spec_as_it_was(
    kube_admin: Any, kube_namespace: str, kind: str
) -> None:
    kube = Kube(kube_admin, kind, kube_namespace)
    kube.create(sample(kind, canary=5))
    original = kube.get()
    r = router(kind, kube.ns, api=kube_admin)
    r.set_match(AB)
    assert not r.set_match(AB).written  # already there: nothing to do
    gone = r.set_match(None)
    after = kube.get()
    assert gone.written and gone.after.match is None
    assert json.dumps(after["spec"]) == json.dumps(original["spec"])
    assert ORIGINAL_ANNOTATION in after["metadata"]["annotations"]  # revert still has it to restore
    r.revert()
    assert same_bytes(kube.get(), original)


@pytest.mark.parametrize("kind", ["gateway-api", "istio"])
def test_revert_after_a_shadow_an_ab_and_a_weighted_stage_restores_the_bytes(
    kube_admin: Any, kube_namespace: str, kind: str
) -> None:
    kube = Kube(kube_admin, kind, kube_namespace)
    kube.create(sample(kind))
    original = kube.get()
    r = router(kind, kube.ns, api=kube_admin)
    assert r.set_mirror(25).after.mirror_percent == 25
    r.set_match(AB)
    r.set_mirror(0)
    assert r.set_weight(40).after.match == AB
    change = r.revert()
    assert change.written and change.after.match is None and change.after.mirror_percent == 0
    assert same_bytes(kube.get(), original)


@pytest.mark.parametrize("kind", ["gateway-api", "istio"])
@pytest.mark.parametrize("write", ["match", "mirror"])
def test_a_match_or_mirror_lost_to_a_concurrent_writer_is_retried_and_keeps_their_change(
    kube_admin: Any, kube_namespace: str, kind: str, write: str
) -> None:
    kube = Kube(kube_admin, kind, kube_namespace)
    kube.create(sample(kind))
    calls: list[int] = []

    def rival() -> None:
        calls.append(1)
        if len(calls) == 1:
            kube.patch([{"op": "add", "path": "/metadata/labels/rival", "value": "x"}])

    r = router(kind, kube.ns, api=kube_admin, fence=rival)
    change = r.set_match(AB) if write == "match" else r.set_mirror(30)
    after = kube.get()
    assert change.attempts == 2 and after["metadata"]["labels"] == {"app": "web", "rival": "x"}
    assert (change.after.match, change.after.mirror_percent) == (
        (AB, 0.0) if write == "match" else (None, 30.0)
    )


@pytest.mark.parametrize("kind", ["gateway-api", "istio", "nginx"])
def test_match_and_mirror_refuse_a_resource_the_gate_does_not_own(
    kube_admin: Any, kube_namespace: str, kind: str
) -> None:
    kube = Kube(kube_admin, kind, kube_namespace)
    kube.create(sample(kind, owner="someone-else"))
    before = kube.get()
    r = router(kind, kube.ns, api=kube_admin)
    with pytest.raises(NotOwned, match="someone-else"):
        r.set_match(AB)
    if isinstance(r, MirrorRouter):
        with pytest.raises(NotOwned):
            r.set_mirror(10)
    assert kube.get() == before


def test_an_ab_header_the_managed_rule_already_matches_on_is_a_clear_error(
    kube_admin: Any, kube_namespace: str
) -> None:
    kube = Kube(kube_admin, "gateway-api", kube_namespace)
    body = sample("gateway-api")
    body["spec"]["rules"][0]["matches"] = [{"headers": [{"name": "X-Canary", "value": "no"}]}]
    kube.create(body)
    rv = kube.get()["metadata"]["resourceVersion"]
    with pytest.raises(RoutingError, match="already matches on header x-canary"):
        router("gateway-api", kube.ns, api=kube_admin).set_match(AB)
    assert kube.get()["metadata"]["resourceVersion"] == rv


def test_a_dry_run_match_is_checked_by_the_server_and_persists_nothing(
    kube_admin: Any, kube_namespace: str
) -> None:
    kube = Kube(kube_admin, "gateway-api", kube_namespace)
    kube.create(sample("gateway-api"))
    before = kube.get()
    change = router("gateway-api", kube.ns, api=kube_admin).set_match(AB, dry_run=True)
    assert change.written and change.dry_run and change.after.match == AB
    assert kube.get() == before


# -- mirroring ---------------------------------------------------------------------------------------------
def test_a_gateway_api_mirror_is_a_request_mirror_filter_beside_the_others(
    kube_admin: Any, kube_namespace: str
) -> None:
    kube = Kube(kube_admin, "gateway-api", kube_namespace)
    body = sample("gateway-api")
    header = {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]},
    }
    body["spec"]["rules"][0]["filters"] = [header]
    kube.create(body)
    original = kube.get()
    r = router("gateway-api", kube.ns, api=kube_admin)
    r.set_mirror(10)
    filters = kube.get()["spec"]["rules"][0]["filters"]
    assert filters[0] == header
    assert filters[1] == {
        "type": "RequestMirror",
        "requestMirror": {
            "backendRef": {"group": "", "kind": "Service", "name": CANARY, "port": 80},
            "percent": 10,
        },
    }
    assert r.set_mirror(0.5).after.mirror_percent == 0.5  # a non-whole percent as a fraction of 10000
    assert kube.get()["spec"]["rules"][0]["filters"][1]["requestMirror"]["fraction"] == {
        "numerator": 50,
        "denominator": 10000,
    }
    r.revert()
    assert same_bytes(kube.get(), original)


def test_an_istio_mirror_names_the_canary_and_a_percentage(kube_admin: Any, kube_namespace: str) -> None:
    kube = Kube(kube_admin, "istio", kube_namespace)
    kube.create(sample("istio"))
    original = kube.get()
    r = router("istio", kube.ns, api=kube_admin)
    assert r.set_mirror(12.5).after.mirror_percent == 12.5
    route = kube.get()["spec"]["http"][0]
    assert route["mirror"] == {"host": CANARY, "port": {"number": 80}}
    assert route["mirrorPercentage"] == {"value": 12.5}
    assert raw_weights("istio", kube.get()) == (0, 100)  # a shadow: no live traffic
    r.set_mirror(0)
    assert json.dumps(kube.get()["spec"]) == json.dumps(original["spec"])


@pytest.mark.parametrize("kind", ["gateway-api", "istio"])
def test_a_mirror_needs_a_canary_without_live_traffic_and_blocks_weights_until_removed(
    kube_admin: Any, kube_namespace: str, kind: str
) -> None:
    kube = Kube(kube_admin, kind, kube_namespace)
    kube.create(sample(kind, canary=5))
    r = router(kind, kube.ns, api=kube_admin)
    with pytest.raises(RoutingError, match="live traffic"):
        r.set_mirror(10)
    r.set_weight(0)
    r.set_mirror(10)
    rv = kube.get()["metadata"]["resourceVersion"]
    with pytest.raises(RoutingError, match="mirror first"):
        r.set_weight(10)
    assert kube.get()["metadata"]["resourceVersion"] == rv
    r.set_mirror(0)
    assert r.set_weight(10).after.canary_weight == 10
    for bad in (-1, 101, 0.001, float("nan"), True):
        with pytest.raises(RoutingError, match="mirror"):
            r.set_mirror(bad)


def test_an_istio_route_mirroring_elsewhere_is_left_alone(kube_admin: Any, kube_namespace: str) -> None:
    kube = Kube(kube_admin, "istio", kube_namespace)
    body = sample("istio")
    body["spec"]["http"][0]["mirror"] = {"host": "shadow-db"}
    kube.create(body)
    with pytest.raises(RoutingError, match="already mirrors to 'shadow-db'"):
        router("istio", kube.ns, api=kube_admin).set_mirror(10)


# -- exposure ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gateway-api", "istio", "smi", "nginx"])
def test_max_weight_refuses_a_higher_canary_weight_and_writes_nothing(
    kube_admin: Any, kube_namespace: str, kind: str
) -> None:
    kube = Kube(kube_admin, kind, kube_namespace)
    kube.create(sample(kind))
    rv = kube.get()["metadata"]["resourceVersion"]
    r = router(kind, kube.ns, api=kube_admin, max_weight=50)
    with pytest.raises(AboveMaxWeight, match="above the gate's maxWeight 50"):
        r.set_weight(60)
    assert kube.get()["metadata"]["resourceVersion"] == rv
    assert r.set_weight(50).after.canary_weight == 50
    assert raw_weights(kind, kube.get()) == expect(kind, 50)


@pytest.mark.parametrize("kind", ["gateway-api", "istio", "smi", "nginx"])
def test_a_revert_never_raises_the_canary_above_where_it_is(
    kube_admin: Any, kube_namespace: str, kind: str
) -> None:
    kube = Kube(kube_admin, kind, kube_namespace)
    kube.create(sample(kind, canary=50))  # the route already sent 50% to the canary before the gate
    r = router(kind, kube.ns, api=kube_admin)
    r.set_weight(10)
    change = r.revert()
    after = kube.get()
    assert change.written and change.after.canary_weight == 0
    assert raw_weights(kind, after) == expect(kind, 0)
    assert ORIGINAL_ANNOTATION in after["metadata"]["annotations"]  # the 50% original stays for a human
    assert not r.revert().written  # and a second revert has nothing left to lower


# -- Istio subsets -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def destination_rules(kube_admin: Any) -> None:
    """Install the pinned DestinationRule CRD (not among the default routing CRDs) and wait until it serves."""
    ext = client.ApiextensionsV1Api(kube_admin)
    doc = next(
        d for d in crd_documents(related=True) if d["metadata"]["name"].startswith("destinationrules.")
    )
    try:
        ext.create_custom_resource_definition(doc)
    except ApiException as exc:
        if exc.status != 409:
            raise
    deadline = time.monotonic() + 30
    while True:
        try:
            client.CustomObjectsApi(kube_admin).list_cluster_custom_object(
                "networking.istio.io", "v1", "destinationrules", limit=1
            )
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def subset_service(ns: str, admin: Any, *, subsets: tuple[str, ...] = ("stable", "canary")) -> Kube:
    """A VirtualService splitting host ``web`` between subsets, and a DestinationRule defining ``subsets``."""
    route = [
        {"destination": {"host": "web", "subset": "stable"}, "weight": 100},
        {"destination": {"host": "web", "subset": "canary"}, "weight": 0},
    ]
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "web", "annotations": {OWNER_ANNOTATION: GATE}},
        "spec": {"hosts": ["web"], "http": [{"route": route}]},
    }
    dr = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "web"},
        "spec": {
            "host": f"web.{ns}.svc.cluster.local",
            "subsets": [{"name": s, "labels": {"v": s}} for s in subsets],
        },
    }
    client.CustomObjectsApi(admin).create_namespaced_custom_object(
        "networking.istio.io", "v1", ns, "destinationrules", dr
    )
    kube = Kube(admin, "istio", ns)
    kube.create(vs)
    return kube


def subset_router(ns: str, api: Any, **kw: Any) -> Any:
    return make_router(target("istio", ns, canary="canary", stable="stable", host="web"), api, **kw)


@pytest.mark.usefixtures("destination_rules")
def test_an_istio_subset_split_moves_weights_mirrors_and_reverts_to_the_bytes(
    kube_cluster: KubeCluster, kube_admin: Any, kube_namespace: str
) -> None:
    kube = subset_service(kube_namespace, kube_admin)
    original = kube.get()
    sa = service_account_client(kube_cluster, kube_admin, kube_namespace, role_rules(["istio"]))
    r = subset_router(kube_namespace, sa)  # exactly the shipped Role: it may read the DestinationRule
    r.set_mirror(20)
    assert kube.get()["spec"]["http"][0]["mirror"] == {"host": "web", "subset": "canary"}
    r.set_mirror(0)
    assert r.set_weight(30).after.canary_weight == 30
    route = kube.get()["spec"]["http"][0]["route"]
    assert [(d["destination"]["subset"], d["weight"]) for d in route] == [("stable", 70), ("canary", 30)]
    r.revert()
    assert same_bytes(kube.get(), original)


@pytest.mark.usefixtures("destination_rules")
def test_a_subset_no_destination_rule_defines_is_refused_before_any_write(
    kube_admin: Any, kube_namespace: str
) -> None:
    kube = subset_service(kube_namespace, kube_admin, subsets=("stable",))
    rv = kube.get()["metadata"]["resourceVersion"]
    with pytest.raises(RoutingError, match=r"defines subset 'canary'.*defines stable"):
        subset_router(kube_namespace, kube_admin).set_weight(10)
    assert kube.get()["metadata"]["resourceVersion"] == rv
    wrong_host = make_router(
        target("istio", kube_namespace, canary="canary", stable="stable", host="api"), kube_admin
    )
    with pytest.raises(RoutingError, match="does not reference backend"):
        wrong_host.set_weight(10)


# -- NGINX primary -----------------------------------------------------------------------------------------
def test_nginx_refuses_a_canary_without_a_primary_for_its_host_and_path(
    kube_admin: Any, kube_namespace: str
) -> None:
    kube = Kube(kube_admin, "nginx", kube_namespace)
    kube.create(sample("nginx"), primary=False)
    r = router("nginx", kube.ns, api=kube_admin)
    with pytest.raises(RoutingError, match=r"no primary Ingress .* web\.example\.com/ .*'web-stable'.*none"):
        r.set_weight(10)
    other = primary_ingress(path="/other")
    kube.co.create_namespaced_custom_object("networking.k8s.io", "v1", kube.ns, "ingresses", other)
    with pytest.raises(RoutingError, match=r"web-primary \(web\.example\.com/other\)"):
        r.set_weight(10)
    assert raw_weights("nginx", kube.get()) == ("0", None)


def test_nginx_lowering_needs_no_primary(kube_admin: Any, kube_namespace: str) -> None:
    kube = Kube(kube_admin, "nginx", kube_namespace)
    kube.create(sample("nginx"))
    original = kube.get()
    r = router("nginx", kube.ns, api=kube_admin)
    r.set_weight(30)
    kube.co.delete_namespaced_custom_object("networking.k8s.io", "v1", kube.ns, "ingresses", "web-primary")
    assert r.set_weight(10).written  # lowering is never blocked by a missing primary
    r.revert()
    assert same_bytes(kube.get(), original)
