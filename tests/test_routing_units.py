"""Routing without a cluster: input checks, the registry, the in-memory ``nop`` router and backend matching
on plain objects (the same shapes the API server returns)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from kubernetes import client

from gatekeeper.routing import (
    AboveMaxWeight,
    Change,
    Match,
    MatchRouter,
    MirrorRouter,
    NotOwned,
    Router,
    RouteTarget,
    RoutingError,
    make_router,
)
from gatekeeper.routing.base import KINDS, check_weight, parse_kind
from gatekeeper.routing.kube_router import KubeRouter
from gatekeeper.routing.nginx import NginxRouter
from gatekeeper.routing.nop import NopRouter


def t(kind: str = "nop", **kw: str) -> RouteTarget:
    return RouteTarget(
        **{"kind": kind, "namespace": "ns", "name": "web", "canary": "c", "stable": "s", "owner": "g", **kw}
    )


@pytest.mark.parametrize(
    ("text", "kind"),
    [("HTTPRoute", "gateway-api"), ("vs", "istio"), ("ts", "smi"), ("ing", "nginx"), ("nop", "nop")],
)
def test_kind_aliases_resolve_to_registered_routers(text: str, kind: str) -> None:
    assert parse_kind(text) == kind


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(RoutingError, match="gateway-api"):
        parse_kind("linkerd")


@pytest.mark.parametrize("field", ["namespace", "name", "canary", "stable", "owner"])
def test_an_empty_target_field_is_named_in_the_error(field: str) -> None:
    with pytest.raises(RoutingError, match=field):
        t(**{field: " "})


def test_the_same_backend_for_canary_and_stable_is_refused() -> None:
    with pytest.raises(RoutingError, match="two different backends"):
        t(canary="x", stable="x")


@pytest.mark.parametrize(("good", "want"), [(0, 0), (100, 100), (42.0, 42)])
def test_whole_percents_from_0_to_100_are_weights(good: Any, want: int) -> None:
    assert check_weight(good) == want


@pytest.mark.parametrize("bad", [-1, 101, 0.5, float("nan"), True, None, "10"])
def test_anything_else_is_not_a_weight(bad: Any) -> None:
    with pytest.raises(RoutingError):
        check_weight(bad)


def test_every_registered_kind_builds_a_router() -> None:
    for kind in KINDS:
        assert isinstance(make_router(t(kind), client.ApiClient()), Router)


def test_the_nop_router_sets_reverts_and_labels_itself(caplog: pytest.LogCaptureFixture) -> None:
    router = make_router(t(), None)
    with caplog.at_level(logging.INFO, logger="gatekeeper.routing"):
        first = router.set_weight(30)
        again = router.set_weight(30)
        dry = router.set_weight(80, dry_run=True)
        back = router.revert()
    assert isinstance(first, Change) and first.written and first.after.canary_weight == 30
    assert not again.written
    assert dry.written and dry.after.canary_weight == 80 and router.read().canary_weight == 0
    assert back.after.canary_weight == 0 and not back.after.has_original
    assert not router.revert().written
    assert (
        sum("[nop]" in r.getMessage() and "no traffic moved" in r.getMessage() for r in caplog.records) == 3
    )


def test_the_fence_runs_before_each_write_and_can_stop_it() -> None:
    def fence() -> None:
        raise NotOwned("lease lost")

    router = make_router(t(), None, fence=fence)
    with pytest.raises(NotOwned, match="lease lost"):
        router.set_weight(10)
    assert router.read().canary_weight == 0


def slots_of(kind: str, spec: dict[str, Any], **kw: str) -> list[tuple[str, str, Any]]:
    """The weight slots (mirror fields left out) of ``spec``."""
    router = make_router(t(kind, **kw), client.ApiClient())
    assert isinstance(router, KubeRouter)
    slots = router.slots({"metadata": {}, "spec": spec})
    return [(s.path, s.role, s.value) for s in slots if s.role in ("canary", "stable", "flag", "total")]


def test_gateway_api_rules_naming_only_one_backend_are_left_alone() -> None:
    spec = {
        "rules": [
            {"matches": [{"headers": [{"name": "x-canary", "value": "1"}]}], "backendRefs": [{"name": "c"}]},
            {"backendRefs": [{"name": "s", "weight": 9}, {"name": "c", "kind": "Service"}]},
        ]
    }
    slots = slots_of("gateway-api", spec)
    assert [p for p, _, _ in slots] == [
        "/spec/rules/1/backendRefs/1/weight",
        "/spec/rules/1/backendRefs/0/weight",
    ]
    router = make_router(t("gateway-api"), client.ApiClient())
    assert isinstance(router, KubeRouter)
    assert router.weights(router.slots({"metadata": {}, "spec": spec})) == (1, 9)  # absent = CRD default 1


def test_a_backend_named_twice_in_one_list_is_ambiguous() -> None:
    with pytest.raises(RoutingError, match="more than once"):
        slots_of("smi", {"backends": [{"service": "c"}, {"service": "c"}, {"service": "s"}]})


def test_istio_matches_short_and_fully_qualified_hosts_in_the_namespace() -> None:
    route = [
        {"destination": {"host": "s.ns.svc.cluster.local"}, "weight": 100},
        {"destination": {"host": "c.ns"}},
    ]
    assert [r for _, r, _ in slots_of("istio", {"http": [{"route": route}]})] == ["canary", "stable"]
    other = [{"destination": {"host": "s.elsewhere.svc.cluster.local"}}, {"destination": {"host": "c"}}]
    with pytest.raises(RoutingError, match="'s'"):
        slots_of("istio", {"http": [{"route": other}]})


def test_nginx_refuses_the_primary_ingress_and_scales_to_the_weight_total() -> None:
    primary = {
        "rules": [
            {
                "http": {
                    "paths": [
                        {"backend": {"service": {"name": "s"}}},
                        {"backend": {"service": {"name": "c"}}},
                    ]
                }
            }
        ]
    }
    with pytest.raises(RoutingError, match="primary Ingress"):
        slots_of("nginx", primary)
    router = make_router(t("nginx"), client.ApiClient())
    assert isinstance(router, NginxRouter)
    ann = {
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight-total": "1000",
    }
    obj = {"metadata": {"annotations": ann}, "spec": {"defaultBackend": {"service": {"name": "c"}}}}
    slots = router.slots(obj)
    assert router.weights(slots) == (0, 1000)
    assert (
        router.desired(slots, 25)["/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight"] == "250"
    )


# -- parity: A/B match, mirror, maxWeight, capabilities ---------------------------------------------------------
def test_a_match_parses_name_value_texts_and_lowercases_header_names() -> None:
    m = Match.parse(headers=["X-Canary=always", "x-tier: gold"], cookie="canary=always")
    assert m.headers == (("x-canary", "always"), ("x-tier", "gold")) and m.cookie == ("canary", "always")
    assert m == Match.parse(headers=["x-tier=gold", "x-canary=always"], cookie="canary=always")  # order-free
    assert m.describe() == "x-canary=always and x-tier=gold and cookie canary=always"


@pytest.mark.parametrize(
    ("headers", "cookie", "needle"),
    [
        ([], None, "at least one"),
        (["x-canary"], None, "NAME=VALUE"),
        (["x canary=1"], None, "NAME=VALUE"),
        (["x(canary)=1"], None, "not a valid HTTP header name"),
        (["cookie=a"], None, "--cookie"),
        (["x-a=1", "X-A=2"], None, "more than once"),
        (["x-a=\x01"], None, "control character"),
        ([], "canary=a;b", "cookie value"),
        ([], "canary=a b", "cookie value"),
        ([], "ca(nary=1", "cookie name"),
    ],
)
def test_a_bad_match_names_what_is_wrong(headers: list[str], cookie: str | None, needle: str) -> None:
    with pytest.raises(RoutingError, match=re.escape(needle)):
        Match.parse(headers=headers, cookie=cookie)


# Cookie header strings as RFC 6265 section 4.2.1 defines them: cookie-pairs joined by "; ".
@pytest.mark.parametrize(
    ("header", "hit"),
    [
        ("canary=a.b-1", True),
        ("sid=1; canary=a.b-1", True),
        ("canary=a.b-1; sid=1", True),
        ("a=1;canary=a.b-1;b=2", True),
        ("sid=1; canary=a.b-12", False),
        ("sid=1; xcanary=a.b-1", False),
        ("canary=aXb-1", False),  # the dot is literal, not "any character"
        ("sid=1", False),
    ],
)
def test_the_cookie_pattern_finds_the_cookie_anywhere_in_the_header(header: str, hit: bool) -> None:
    pattern = Match(cookie=("canary", "a.b-1")).cookie_regex()
    assert pattern is not None and bool(re.fullmatch(pattern, header)) is hit
    assert Match.from_headers({}, {"cookie": pattern}) == Match(cookie=("canary", "a.b-1"))


def test_the_router_protocol_stays_small_and_capabilities_are_separate() -> None:
    methods = {n for n in vars(Router) if not n.startswith("_") and callable(getattr(Router, n))}
    assert methods == {"read", "set_weight", "revert"}
    api = client.ApiClient()
    routers = {k: make_router(t(k), api) for k in KINDS}
    assert {k for k, r in routers.items() if isinstance(r, MatchRouter)} == {
        "gateway-api",
        "istio",
        "nginx",
        "nop",
    }
    assert {k for k, r in routers.items() if isinstance(r, MirrorRouter)} == {"gateway-api", "istio", "nop"}


def test_max_weight_caps_every_router_and_is_itself_checked() -> None:
    router = make_router(t(), None, max_weight=25)
    with pytest.raises(AboveMaxWeight, match="maxWeight 25"):
        router.set_weight(30)
    assert router.read().canary_weight == 0 and router.set_weight(25).written
    for bad in (0, 101, -5, True, "50"):
        with pytest.raises(RoutingError, match="maxWeight"):
            make_router(t("smi"), client.ApiClient(), max_weight=bad)  # type: ignore[arg-type]


def test_the_nop_router_keeps_a_shadow_and_an_ab_stage_and_reverts_them() -> None:
    router = make_router(t(), None, fence=None)
    assert isinstance(router, MatchRouter) and isinstance(router, MirrorRouter)
    ab = Match((("x-canary", "always"),))
    assert router.set_mirror(10).after.mirror_percent == 10
    with pytest.raises(RoutingError, match="mirror first"):
        router.set_weight(5)
    router.set_mirror(0)
    router.set_weight(5)
    with pytest.raises(RoutingError, match="live traffic"):
        router.set_mirror(10)
    assert router.set_match(ab).after.match == ab
    back = router.revert()
    assert (back.after.canary_weight, back.after.match, back.after.mirror_percent) == (0, None, 0.0)


def test_the_nop_revert_never_raises_the_canary() -> None:
    router = make_router(t(), None)
    assert isinstance(router, NopRouter)
    lifted = NopRouter(t(), initial=40)
    lifted.set_weight(10)
    assert lifted.revert().after.canary_weight == 10  # the original 40 would raise it: stay at 10
    assert router.revert().written is False


def test_nginx_rounds_a_weight_down_so_the_canary_never_gets_more_than_asked() -> None:
    router = make_router(t("nginx"), client.ApiClient())
    assert isinstance(router, NginxRouter)
    ann = {"nginx.ingress.kubernetes.io/canary-weight-total": "3"}
    obj = {"metadata": {"annotations": ann}, "spec": {"defaultBackend": {"service": {"name": "c"}}}}
    want = router.desired(router.slots(obj), 50)
    assert want["/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight"] == "1"  # 33%, not 67%
