"""The throwaway control plane itself: the pinned version, real RBAC, the upstream CRDs, watches, stop by PID."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from gatekeeper.sim.kube import KUBE_VERSION, ROUTING_CRDS, KubeCluster, crd_documents

pytestmark = pytest.mark.k8s


def test_the_server_is_the_pinned_kubernetes_release(kube_admin: Any) -> None:
    assert client.VersionApi(kube_admin).get_code().git_version == KUBE_VERSION


def test_the_written_kubeconfig_reaches_the_server_as_admin(kube_cluster: KubeCluster) -> None:
    api = config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
    assert "default" in names and "kube-system" in names


def test_the_gatekeeper_user_is_governed_by_rbac(kube_cluster: KubeCluster) -> None:
    api = kube_cluster.api_client(kube_cluster.gatekeeper_token)
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).list_namespaced_config_map("default")
    assert err.value.status == 403 and "gatekeeper" in err.value.body


def test_the_upstream_routing_crds_are_established_at_their_pinned_versions(
    kube_cluster: KubeCluster, kube_admin: Any
) -> None:
    served = {
        crd.metadata.name: {v.name for v in crd.spec.versions if v.served}
        for crd in client.ApiextensionsV1Api(kube_admin).list_custom_resource_definition().items
    }
    assert {"v1", "v1beta1"} <= served["httproutes.gateway.networking.k8s.io"]
    assert {"v1", "v1beta1", "v1alpha3"} <= served["virtualservices.networking.istio.io"]
    assert served["trafficsplits.split.smi-spec.io"] == {"v1alpha2"}
    sources = {p.parent.name: p.read_text().strip() for p in kube_cluster.crd_dir().glob("*/SOURCE")}
    assert sources == {
        "gateway-api": "sigs.k8s.io/gateway-api@v1.6.1",
        "istio": "istio.io/api@v1.30.3",
        "smi": "github.com/openservicemesh/osm@v1.2.4",
    }


def test_the_related_crds_are_offered_on_request(kube_cluster: KubeCluster) -> None:
    routing = {d["metadata"]["name"] for d in crd_documents()}
    everything = {d["metadata"]["name"] for d in crd_documents(related=True)}
    assert routing == set(ROUTING_CRDS)
    assert everything - routing == {
        "gatewayclasses.gateway.networking.k8s.io",
        "gateways.gateway.networking.k8s.io",
        "referencegrants.gateway.networking.k8s.io",
        "destinationrules.networking.istio.io",
    }


def test_the_crd_schema_rejects_a_negative_weight(kube_admin: Any, kube_namespace: str) -> None:
    body = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "bad"},
        "spec": {"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": -1}]}]},
    }
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(kube_admin).create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", kube_namespace, "httproutes", body
        )
    assert err.value.status == 422 and "weight" in err.value.body


def test_a_watch_with_bookmarks_streams_events(kube_admin: Any, kube_namespace: str) -> None:
    core = client.CoreV1Api(kube_admin)
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "seen"}})
    w = watch.Watch()
    events = []
    for ev in w.stream(
        core.list_namespaced_config_map, kube_namespace, allow_watch_bookmarks=True, timeout_seconds=5
    ):
        events.append((ev["type"], ev["object"].metadata.name))
        w.stop()
    assert events == [("ADDED", "seen")]


def test_a_second_cluster_runs_beside_the_first_and_stops_by_pid(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    assert KubeCluster.available()  # kube_cluster applied the skip/fail policy
    cluster = KubeCluster.start(tmp_path)
    pids = cluster.pids
    try:
        assert (
            len(pids) == 2 and (tmp_path / "kubeconfig").is_file() and cluster.server != kube_cluster.server
        )
        assert client.VersionApi(cluster.api_client()).get_code().git_version == KUBE_VERSION
    finally:
        cluster.stop()
    assert cluster.pids == ()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
