"""A ServiceAccount bound to exactly the Role rules of ``gatekeeper/routing/rbac.py`` can patch its routing
kind and nothing else (real RBAC on the real API server: SelfSubjectAccessReview and real writes)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from gatekeeper.routing import NotAccepted, make_router
from gatekeeper.routing.base import APIS
from gatekeeper.routing.rbac import ROUTER_VERBS, role_rules, rules_for
from gatekeeper.sim.kube import KubeCluster
from tests.test_routing_kube import KUBE_KINDS, Kube, expect, raw_weights, sample, target

pytestmark = pytest.mark.k8s


def service_account_client(cluster: KubeCluster, admin: Any, ns: str, rules: list[dict[str, Any]]) -> Any:
    """An ApiClient with a real ServiceAccount token (TokenRequest) bound to a Role with ``rules``."""
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespaced_service_account(ns, {"metadata": {"name": "gatekeeper"}})
    rbac.create_namespaced_role(ns, {"metadata": {"name": "gatekeeper"}, "rules": rules})
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "gatekeeper"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gatekeeper"},
            "subjects": [{"kind": "ServiceAccount", "name": "gatekeeper", "namespace": ns}],
        },
    )
    token = core.create_namespaced_service_account_token(
        "gatekeeper", ns, {"spec": {"expirationSeconds": 600}}
    )
    return cluster.api_client(token.status.token)


def allowed(api: Any, ns: str, *, group: str, resource: str, verb: str) -> bool:
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {"namespace": ns, "group": group, "resource": resource, "verb": verb}
            }
        }
    )
    return bool(review.status.allowed)


@pytest.mark.parametrize("kind", KUBE_KINDS)
def test_the_role_rules_allow_patching_its_own_kind_and_nothing_else(
    kind: str, kube_cluster: KubeCluster, kube_admin: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    sa = service_account_client(kube_cluster, kube_admin, ns, role_rules([kind]))
    me = client.AuthenticationV1Api(sa).create_self_subject_review({}).status.user_info.username
    assert me == f"system:serviceaccount:{ns}:gatekeeper"
    own = APIS[kind]
    for verb in ROUTER_VERBS:
        assert allowed(sa, ns, group=own.group, resource=own.plural, verb=verb), verb
    for verb in ("create", "update", "delete", "deletecollection"):
        assert not allowed(sa, ns, group=own.group, resource=own.plural, verb=verb), verb
    for other in (k for k in KUBE_KINDS if k != kind):
        a = APIS[other]
        assert not allowed(sa, ns, group=a.group, resource=a.plural, verb="patch"), other
    for group, resource in (("", "secrets"), ("", "services"), ("apps", "deployments"), ("", "configmaps")):
        assert not allowed(sa, ns, group=group, resource=resource, verb="patch"), resource
    assert not allowed(sa, "kube-system", group=own.group, resource=own.plural, verb="patch")

    # and by trying: its own kind moves, another kind is refused by the server
    Kube(kube_admin, kind, ns).create(sample(kind))
    make_router(target(kind, ns), sa).set_weight(20)
    assert raw_weights(kind, Kube(kube_admin, kind, ns).get()) == expect(kind, 20)
    other = next(k for k in KUBE_KINDS if k != kind)
    Kube(kube_admin, other, ns).create(sample(other))
    with pytest.raises(NotAccepted, match="forbidden"):
        make_router(target(other, ns), sa).set_weight(20)


def test_the_gatekeeper_user_without_a_binding_cannot_read_or_write(
    kube_cluster: KubeCluster, kube_admin: Any, kube_namespace: str
) -> None:
    Kube(kube_admin, "gateway-api", kube_namespace).create(sample("gateway-api"))
    api = kube_cluster.api_client(kube_cluster.gatekeeper_token)
    with pytest.raises(NotAccepted, match=r"forbidden.*rbac\.py"):
        make_router(target("gateway-api", kube_namespace), api).read()


def test_the_rules_are_one_patchable_resource_per_router_and_none_for_nop() -> None:
    assert rules_for("nop") == ()
    rules = role_rules()
    patchable = [r for r in rules if "patch" in r["verbs"]]
    assert len(patchable) == len(KUBE_KINDS)
    assert {(r["apiGroups"][0], r["resources"][0]) for r in patchable} == {
        (APIS[k].group, APIS[k].plural) for k in KUBE_KINDS
    }
    assert all("update" not in r["verbs"] and "delete" not in r["verbs"] for r in rules)
    # the only other rule: Istio reads DestinationRules (subset splits), never writes them
    assert [r for r in rules if r not in patchable] == [
        {
            "apiGroups": ["networking.istio.io"],
            "resources": ["destinationrules"],
            "verbs": ["get", "list", "watch"],
        }
    ]
