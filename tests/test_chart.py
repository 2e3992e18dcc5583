"""The Helm chart, rendered by a real helm (built by `scripts/kube-apiserver.sh --with-helm`), linted, applied to
the real API server, and its RBAC checked there: the controller's ServiceAccount can do what it needs and no more.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.cli.commands.crd import CRD_FILE, RBAC_FILE, routing_rbac
from gatekeeper.routing.base import APIS
from gatekeeper.routing.rbac import role_rules
from gatekeeper.sim.kube import KubeCluster, cache_dir
from gatekeeper.spec.models import SourceSettings
from tests.test_crd import example_spec, gate_resource

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "gatekeeper"
ROUTERS = ("gateway-api", "istio", "nginx", "smi")
# The controller's own rules besides routing (what the chart grants on top of gatekeeper/routing/rbac.py).
BASE_RULES = [
    {"apiGroups": ["gatekeeper.dev"], "resources": ["gates"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["gatekeeper.dev"], "resources": ["gates/status"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]},
]
# Flags the chart passes that `gatekeeper controller run` does not take yet (none: every flag is real).
PENDING_FLAGS: frozenset[str] = frozenset()


def helm_binary() -> Path:
    """The helm the build script installs (its pinned version read from the script), or $GATEKEEPER_HELM."""
    if os.environ.get("GATEKEEPER_HELM"):
        return Path(os.environ["GATEKEEPER_HELM"])
    script = (ROOT / "scripts" / "kube-apiserver.sh").read_text()
    version = re.search(r"^HELM_VERSION=(\S+)", script, re.M)
    assert version, "scripts/kube-apiserver.sh no longer pins HELM_VERSION"
    return cache_dir() / f"helm-{version.group(1)}" / "helm"


@pytest.fixture(scope="session")
def helm() -> Path:
    path = helm_binary()
    if not os.access(path, os.X_OK):
        reason = f"helm is not built at {path}: run scripts/kube-apiserver.sh --with-helm"
        if os.environ.get("GATEKEEPER_REQUIRE_KUBE", "") not in ("", "0"):
            pytest.fail(f"GATEKEEPER_REQUIRE_KUBE is set but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60, check=False)


Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRD is 44 KB of YAML
_RENDERED: dict[tuple[Any, ...], str] = {}


def render(
    helm: Path, *sets: str, release: str = "gk", namespace: str = "gatekeeper-system", crds: bool = False
) -> list[dict[str, Any]]:
    """`helm template` with --set pairs; the rendered objects (with the crds/ directory when `crds`)."""
    key = (sets, release, namespace, crds)
    if key not in _RENDERED:
        flags = [f for s in sets for f in ("--set", s)] + (["--include-crds"] if crds else [])
        done = run_helm(
            helm, "template", release, str(CHART), "-n", namespace, "--kube-version", "v1.35.4", *flags
        )
        assert done.returncode == 0, done.stderr
        _RENDERED[key] = done.stdout
    return [d for d in yaml.load_all(_RENDERED[key], Loader=Loader) if d]


def one(
    objs: list[dict[str, Any]], kind: str, suffix: str = "", *, component: str = "controller"
) -> dict[str, Any]:
    """The one object of `kind` named *`suffix` of `component` (objects without a component label count for
    every component: RBAC, ConfigMaps)."""
    found = [
        o
        for o in objs
        if o["kind"] == kind
        and o["metadata"]["name"].endswith(suffix)
        and (o["metadata"].get("labels") or {}).get("app.kubernetes.io/component", component) == component
    ]
    assert len(found) == 1, f"{len(found)} {kind} named *{suffix} of {component}"
    return found[0]


def canonical(rules: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rules)


# -- rendering (helm, no cluster) -----------------------------------------------------------------------------
VALUE_COMBOS = [
    (),
    ("routers.gateway-api=false",),
    ("routers.istio=true", "routers.smi=true", "routers.nginx=true"),
    ("watchNamespace=shop", "serviceMonitor.enabled=true", "sources.prometheus.headersSecret=prom-auth"),
    ("rbac.operatorRoles=false", "grafanaDashboards.enabled=false", "serviceAccount.name=gk-sa"),
    ("admissionPolicy.enabled=false", "replicaCount=2"),
]


def test_helm_lint_passes_strictly_for_each_values_combination(helm: Path) -> None:
    for combo in VALUE_COMBOS:
        flags = [f for s in combo for f in ("--set", s)]
        done = run_helm(helm, "lint", "--strict", str(CHART), "--kube-version", "v1.35.4", *flags)
        assert done.returncode == 0, (combo, done.stdout, done.stderr)


def test_bad_values_fail_naming_the_key(helm: Path) -> None:
    for bad, named in (
        ("routers.linkerd=true", "additional properties 'linkerd' not allowed"),
        ("sources.prometheus.url=prometheus:9090", "/sources/prometheus/url"),
        ("watchNamespace=Not_A_Namespace", "/watchNamespace"),
    ):
        done = run_helm(helm, "template", "gk", str(CHART), "--kube-version", "v1.35.4", "--set", bad)
        assert done.returncode != 0 and named in done.stderr, (bad, done.stderr)


def test_the_generated_chart_files_match_the_models_and_the_routers(helm: Path) -> None:
    assert json.loads((CHART / RBAC_FILE).read_text()) == routing_rbac(), (
        "regenerate: gatekeeper crd --chart charts/gatekeeper"
    )
    crd = one(render(helm, crds=True), "CustomResourceDefinition")
    assert crd == yaml.load((CHART / CRD_FILE).read_text(), Loader=Loader)


@pytest.mark.parametrize(
    "enabled",
    [(), ("gateway-api",), ROUTERS, ("istio", "smi")],
    ids=["none", "gateway-api", "all", "istio+smi"],
)
def test_the_controller_role_grants_exactly_the_enabled_routers_rules(
    helm: Path, enabled: tuple[str, ...]
) -> None:
    sets = [f"routers.{k}={'true' if k in enabled else 'false'}" for k in ROUTERS]
    objs = render(helm, *sets)
    role = one(objs, "ClusterRole", "-controller")
    assert canonical(role["rules"]) == canonical(BASE_RULES + role_rules(enabled))
    config = yaml.safe_load(one(objs, "ConfigMap", "-config")["data"]["config.yaml"])
    assert config["routers"] == sorted(enabled)


def test_the_deployment_is_hardened_and_probed(helm: Path) -> None:
    objs = render(helm)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["command"] == ["gatekeeper", "controller", "run"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert f"--health-port={ports['health']}" in c["args"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/tmp", "/etc/gatekeeper"}  # writable /tmp only
    service = one(objs, "Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"metrics", "dashboard"}
    assert service["spec"]["selector"].items() <= pod_labels(objs).items()


def pod_labels(objs: list[dict[str, Any]]) -> dict[str, str]:
    return dict(one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"])


def test_every_flag_the_chart_passes_is_one_the_controller_takes(helm: Path) -> None:
    pytest.importorskip("gatekeeper.cli.commands.controller")
    from typer.main import get_command

    from gatekeeper.cli.main import app

    run = get_command(app).commands["controller"].commands["run"]  # type: ignore[attr-defined]
    known = {opt for p in run.params for opt in p.opts}
    args = one(render(helm, "watchNamespace=shop"), "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]["args"]
    flags = {a.split("=", 1)[0] for a in args}
    assert flags - known <= PENDING_FLAGS, sorted(flags - known - PENDING_FLAGS)


def test_the_config_holds_a_valid_gate_source_and_the_header_secret_is_mounted(helm: Path) -> None:
    objs = render(helm, "sources.prometheus.url=http://thanos:10902", "sources.prometheus.timeout=15s",
                  "sources.prometheus.headers.X-Scope-OrgID=shop", "sources.prometheus.headersSecret=prom-auth")  # fmt: skip
    config = yaml.safe_load(one(objs, "ConfigMap", "-config")["data"]["config.yaml"])
    source = SourceSettings.model_validate(config["source"])
    assert (source.prometheus.url, source.prometheus.timeout) == ("http://thanos:10902", 15.0)
    assert source.prometheus.headers == {"X-Scope-OrgID": "shop"}
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    secret = next(v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "prom-auth")
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == secret["name"])
    assert mount["mountPath"] == config["prometheusHeadersDir"]


def test_the_dashboards_configmap_carries_every_dashboard_file(helm: Path) -> None:
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert files, "charts/gatekeeper/dashboards/ has no dashboard"
    data = one(render(helm), "ConfigMap", "-dashboards")["data"]
    assert sorted(data) == [f.name for f in files]
    for f in files:
        assert json.loads(data[f.name]) == json.loads(f.read_text())
    assert not [
        o
        for o in render(helm, "grafanaDashboards.enabled=false")
        if o["metadata"]["name"].endswith("-dashboards")
    ]


def test_the_service_monitor_is_off_by_default_and_scrapes_the_metrics_port(helm: Path) -> None:
    assert not [o for o in render(helm) if o["kind"] == "ServiceMonitor"]
    objs = render(helm, "serviceMonitor.enabled=true", "ports.metrics=9999")
    monitor = one(objs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    service = one(objs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # the Service's "metrics" port leads to the container port the controller serves /metrics on
    (svc_port,) = [p for p in service["spec"]["ports"] if p["name"] == "metrics"]
    (c,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    (container_port,) = [p["containerPort"] for p in c["ports"] if p["name"] == svc_port["targetPort"]]
    assert container_port == 9999 and "--metrics-port=9999" in c["args"]
    dashboard = next(p["containerPort"] for p in c["ports"] if p["name"] == "dashboard")
    assert f"--dashboard-port={dashboard}" in c["args"]


class RecordingPrometheus:
    """A real HTTP server on 127.0.0.1 answering every query with an empty vector and recording what came."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        requests: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                requests.append({"path": self.path, "headers": dict(self.headers)})
                body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.requests = requests
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RecordingPrometheus:
        import threading

        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_the_controller_reads_the_config_the_chart_writes_and_its_defaults_reach_prometheus(
    helm: Path, tmp_path: Path
) -> None:
    """The chart's ConfigMap through `controller run --config`'s reader; the defaults it sets (URL, timeout,
    headers, the mounted header Secret) reach the Prometheus a gate without its own `source` queries, and a
    gate's own settings win."""
    from gatekeeper.cli.commands.controller import _load_config, _source_factory
    from gatekeeper.spec.models import PrometheusSettings

    with RecordingPrometheus() as prom:
        objs = render(helm, f"sources.prometheus.url={prom.url}", "sources.prometheus.timeout=7s",
                      "sources.prometheus.headers.X-Scope-OrgID=shop", "sources.prometheus.headersSecret=prom-auth")  # fmt: skip
        text = one(objs, "ConfigMap", "-config")["data"]["config.yaml"]
        secret = tmp_path / "prometheus-headers"  # what the kubelet mounts: key files, its own dot-entries
        (secret / "..2026_01_01").mkdir(parents=True)
        (secret / "Authorization").write_text("Bearer s3cret\n")
        config = tmp_path / "config.yaml"
        config.write_text(text.replace("/etc/gatekeeper/prometheus-headers", str(secret)))
        defaults = _load_config(config)
        assert defaults.routers == ("gateway-api",)
        make = _source_factory(defaults, override=None)
        unset = PrometheusSettings.model_validate({"step": "15s"})
        make(unset, unset.url).instant("up", at=1000.0)
        own = PrometheusSettings.model_validate(
            {"url": prom.url + "/own", "headers": {"X-Scope-OrgID": "mine"}}
        )
        make(own, own.url).instant("up", at=1000.0)
    (first, second) = prom.requests
    assert first["path"].startswith("/api/v1/query")
    assert first["headers"]["Authorization"] == "Bearer s3cret"
    assert first["headers"]["X-Scope-OrgID"] == "shop"
    assert second["path"].startswith("/own/api/v1/query")
    assert (
        second["headers"]["X-Scope-OrgID"] == "mine" and second["headers"]["Authorization"] == "Bearer s3cret"
    )
    for bad, named in (("{routers: [linkerd]}", "linkerd"), ("{sources: {}}", "unknown key(s) sources"),
                       ("{source: {prometheus: {step: 15s}}}", "source.prometheus.step cannot be a default")):  # fmt: skip
        config.write_text(bad)
        with pytest.raises(ValueError, match=re.escape(named)):
            _load_config(config)


# -- on the real API server -----------------------------------------------------------------------------------
def apply(admin: Any, objs: list[dict[str, Any]]) -> None:
    """Server-side apply every object (as `kubectl apply --server-side` would), CRDs first."""
    from kubernetes import dynamic

    dyn = dynamic.DynamicClient(admin)
    for obj in sorted(objs, key=lambda o: o["kind"] != "CustomResourceDefinition"):
        res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        ns = obj["metadata"].get("namespace")
        res.server_side_apply(body=obj, name=obj["metadata"]["name"], namespace=ns, field_manager="helm-test",
                              force_conflicts=True)  # fmt: skip


def installed(helm: Path, admin: Any, ns: str, *sets: str) -> tuple[str, list[dict[str, Any]]]:
    """Render a release into `ns` with a unique name (ClusterRoles are cluster-wide) and apply it."""
    from tests.test_crd import install_gate_crd

    release = f"r{secrets.token_hex(3)}"
    if not any(s.startswith("watchNamespace=") for s in sets):  # a cluster-wide policy would bind other tests
        sets = (*sets, "admissionPolicy.enabled=false")
    objs = [
        o
        for o in render(helm, *sets, release=release, namespace=ns, crds=True)
        if o["kind"] != "ServiceMonitor"
    ]
    apply(admin, objs)
    install_gate_crd(admin)  # the same CRD: waits until it serves
    return release, objs


def sa_client(cluster: KubeCluster, admin: Any, ns: str, sa: str) -> Any:
    from kubernetes import client

    token = client.CoreV1Api(admin).create_namespaced_service_account_token(
        sa, ns, {"spec": {"expirationSeconds": 600}}
    )
    return cluster.api_client(token.status.token)


def can(api: Any, verb: str, group: str, resource: str, ns: str | None, name: str = "") -> bool:
    from kubernetes import client

    attrs = {"verb": verb, "group": group, "resource": resource, "namespace": ns or "", "name": name}
    if "/" in resource:
        attrs["resource"], attrs["subresource"] = resource.split("/")
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {"spec": {"resourceAttributes": attrs}}
    )
    return bool(review.status.allowed)


@pytest.mark.k8s
def test_the_rendered_chart_applies_and_the_controller_can_do_exactly_its_job(
    helm: Path, kube_cluster: KubeCluster, kube_admin: Any, kube_namespace: str
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ns = kube_namespace
    release, objs = installed(helm, kube_admin, ns)  # routers: gateway-api only (the default)
    sa_name = one(objs, "ServiceAccount")["metadata"]["name"]
    sa = sa_client(kube_cluster, kube_admin, ns, sa_name)
    other = "elsewhere"
    lease = "gatekeeper-controller"
    gw = APIS["gateway-api"]
    allowed = [
        *[(v, "gatekeeper.dev", "gates", other) for v in ("get", "list", "watch", "patch")],
        *[(v, "gatekeeper.dev", "gates/status", other) for v in ("get", "patch", "update")],
        ("create", "", "events", other), ("patch", "", "events", other),
        *[(v, "", "configmaps", other) for v in ("get", "create", "update")],  # decision records
        *[(v, gw.group, gw.plural, other) for v in ("get", "list", "watch", "patch")],
        ("create", "coordination.k8s.io", "leases", ns),
        *[(v, "coordination.k8s.io", "leases", ns, lease) for v in ("get", "update", "patch")],
    ]  # fmt: skip
    denied = [
        *[(v, gw.group, gw.plural, other) for v in ("create", "update", "delete", "deletecollection")],
        *[("patch", APIS[k].group, APIS[k].plural, other) for k in ("istio", "smi", "nginx")],
        ("get", "", "secrets", ns), ("list", "", "secrets", other),
        *[(v, "", "configmaps", other) for v in ("list", "watch", "delete", "patch")],
        ("create", "gatekeeper.dev", "gates", other), ("delete", "gatekeeper.dev", "gates", other),
        ("get", "coordination.k8s.io", "leases", ns, "someone-elses"),
        ("create", "coordination.k8s.io", "leases", other), ("list", "", "pods", ns),
        ("patch", "apps", "deployments", ns), ("create", "rbac.authorization.k8s.io", "rolebindings", ns),
    ]  # fmt: skip
    wrong = [a for a in allowed if not can(sa, *a)] + [d for d in denied if can(sa, *d)]
    assert not wrong, f"{release}: wrong permissions for {wrong}"

    # and by doing: it writes a Gate's status, but cannot delete a route
    custom = client.CustomObjectsApi(sa)
    client.CustomObjectsApi(kube_admin).create_namespaced_custom_object(
        "gatekeeper.dev", "v1alpha1", ns, "gates", gate_resource("web", example_spec())
    )
    custom.patch_namespaced_custom_object_status(
        "gatekeeper.dev", "v1alpha1", ns, "gates", "web", {"status": {"phase": "Progressing"}}
    )
    from gatekeeper.controller.decision_store import DecisionStore

    gate = custom.get_namespaced_custom_object("gatekeeper.dev", "v1alpha1", ns, "gates", "web")
    record = {"version": 1, "time": 1.0, "action": "advance", "stage": 0, "weight": 1.0, "notes": []}
    DecisionStore(sa).write(gate, record)  # its decision records: created, then updated
    DecisionStore(sa).write(gate, {**record, "time": 2.0})
    assert [s.seq for s in DecisionStore(sa).index(ns, "web")] == [1, 2]
    with pytest.raises(ApiException) as refused:
        custom.delete_namespaced_custom_object(gw.group, gw.versions[0], ns, gw.plural, "any-route")
    assert refused.value.status == 403


@pytest.mark.k8s
def test_a_namespaced_install_grants_nothing_outside_its_namespace(
    helm: Path, kube_cluster: KubeCluster, kube_admin: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    _, objs = installed(helm, kube_admin, ns, f"watchNamespace={ns}", "routers.istio=true")
    assert not [o for o in objs if o["kind"] == "ClusterRoleBinding"]
    sa = sa_client(kube_cluster, kube_admin, ns, one(objs, "ServiceAccount")["metadata"]["name"])
    vs = APIS["istio"]
    assert can(sa, "patch", vs.group, vs.plural, ns) and can(
        sa, "patch", "gatekeeper.dev", "gates/status", ns
    )
    for verb, group, resource in (("patch", vs.group, vs.plural), ("list", "gatekeeper.dev", "gates")):
        assert not can(sa, verb, group, resource, "default"), resource
        assert not can(sa, verb, group, resource, None), f"{resource} cluster-wide"


@pytest.mark.k8s
def test_the_pod_template_passes_the_restricted_pod_security_standard(
    helm: Path, kube_admin: Any, kube_namespace: str
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ns = kube_namespace
    core = client.CoreV1Api(kube_admin)
    core.patch_namespace(ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    _, objs = installed(helm, kube_admin, ns)
    template = one(objs, "Deployment")["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "gk", **template["metadata"]},
        "spec": template["spec"],
    }
    core.create_namespaced_pod(ns, pod)  # admitted: no kubelet runs it, but admission judged it
    weak = json.loads(json.dumps(pod))
    weak["metadata"]["name"] = "gk-weak"
    del weak["spec"]["containers"][0]["securityContext"]["capabilities"]
    with pytest.raises(ApiException) as refused:  # the control: the namespace does enforce
        core.create_namespaced_pod(ns, weak)
    assert refused.value.status == 403 and "restricted" in refused.value.body


@pytest.mark.k8s
def test_the_admission_policy_makes_requests_name_their_author_and_approvals_come_from_the_group(
    helm: Path, kube_cluster: KubeCluster, kube_admin: Any, kube_namespace: str
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from gatekeeper.ops import actions

    ns = kube_namespace
    _, objs = installed(helm, kube_admin, ns, f"watchNamespace={ns}")
    operator = one(objs, "ClusterRole", "-operator")["metadata"]["name"]
    client.RbacAuthorizationV1Api(kube_admin).create_namespaced_role_binding(ns, {
        "metadata": {"name": "operators"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": operator},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u} for u in ("alice", "bob")],
    })  # fmt: skip
    spec = example_spec()
    spec["stages"][1]["authority"] = {"mode": "approval", "group": "release-managers"}
    custom = client.CustomObjectsApi(kube_admin)
    custom.create_namespaced_custom_object(
        "gatekeeper.dev", "v1alpha1", ns, "gates", gate_resource("web", spec)
    )
    custom.patch_namespaced_custom_object_status(
        "gatekeeper.dev",
        "v1alpha1",
        ns,
        "gates",
        "web",
        {"status": {"phase": "AwaitingApproval", "stage": 1}},
    )

    def user(name: str, group: str | None = None) -> Any:
        api = kube_cluster.api_client()
        api.set_default_header("Impersonate-User", name)
        if group:
            api.set_default_header("Impersonate-Group", group)
        return api

    def write(api: Any, key: str, value: str, *, dry_run: bool = False) -> str:
        body = {"metadata": {"annotations": {f"gatekeeper.dev/{key}": value}}}
        try:
            client.CustomObjectsApi(api).patch_namespaced_custom_object(
                "gatekeeper.dev",
                "v1alpha1",
                ns,
                "gates",
                "web",
                body,
                **({"dry_run": "All"} if dry_run else {}),
            )
        except ApiException as exc:
            return str(json.loads(exc.body)["message"])
        return "ok"

    bob, alice = user("bob"), user("alice", "release-managers")
    forged = '{"action":"pause","by":"alice","at":"t"}'
    deadline = time.monotonic() + 15  # a new policy takes effect within a second or two
    while write(bob, "pause", forged, dry_run=True) == "ok":
        assert time.monotonic() < deadline, "the admission policy never took effect"
        time.sleep(0.2)
    assert '"by" must be "bob"' in write(bob, "pause", forged)
    assert 'needs membership in group "release-managers"; bob is not a member' in write(
        bob, "approve", '{"action":"approve","by":"bob","at":"t","stage":1}'
    )
    assert "names no stage that needs one" in write(
        alice, "approve", '{"action":"approve","by":"alice","at":"t","stage":0}'
    )
    with pytest.raises(actions.Refused, match=r'admission policy said.*"by" must be "bob"'):
        actions.pause(bob, namespace=ns, name="web", by="alice")  # a shell claiming someone else
    assert actions.pause(bob, namespace=ns, name="web").changed  # through the CLI's path: accepted
    assert actions.approve(alice, namespace=ns, name="web").changed


# -- the intake, the token Secret, shards -------------------------------------------------------------------------
def intake_pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(one(objs, "Deployment", "-intake", component="intake")["spec"]["template"]["spec"])


def test_the_intake_renders_with_its_services_the_token_secret_and_the_controllers_hardening(
    helm: Path,
) -> None:
    objs = render(helm)
    pod = intake_pod(objs)
    (c,) = pod["containers"]
    assert c["command"] == ["gatekeeper", "intake"]
    assert {"--in-cluster", "--host=0.0.0.0", "--token-file=/etc/gatekeeper/token/token"} <= set(c["args"])
    assert not [a for a in c["args"] if a.startswith("--peers")]  # one replica: no peers to ask
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsNonRoot"]
    secret = one(objs, "Secret", "-token")
    assert len(secret["data"]["token"]) >= 40  # base64 of 40 random characters
    for p in (pod, one(objs, "Deployment")["spec"]["template"]["spec"]):
        token = next(v for v in p["volumes"] if v["name"] == "token")
        assert token["secret"]["secretName"] == secret["metadata"]["name"]
        mount = next(m for m in p["containers"][0]["volumeMounts"] if m["name"] == "token")
        assert mount["mountPath"] == "/etc/gatekeeper/token" and mount["readOnly"]
    assert (
        "--token-file=/etc/gatekeeper/token/token"
        in one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    service = one(objs, "Service", "-intake", component="intake")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {"otlp-http": 4318, "otlp-grpc": 4317}
    peers = one(objs, "Service", "-intake-peers", component="intake")
    assert peers["spec"]["clusterIP"] == "None"
    labels = one(objs, "Deployment", "-intake", component="intake")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    controller_service = one(objs, "Service")  # the controller's Service never selects intake pods
    assert not controller_service["spec"]["selector"].items() <= labels.items()
    role = one(objs, "ClusterRole", "-intake")
    assert role["rules"] == [
        {"apiGroups": ["gatekeeper.dev"], "resources": ["gates"], "verbs": ["get", "list", "watch"]}
    ]


def test_several_intakes_ask_each_other_through_the_headless_service(helm: Path) -> None:
    objs = render(helm, "intake.replicaCount=3")
    (c,) = intake_pod(objs)["containers"]
    peers = one(objs, "Service", "-intake-peers", component="intake")["metadata"]["name"]
    assert (
        f"--peers-dns={peers}.gatekeeper-system.svc:4318" in c["args"] and "--self-ip=$(POD_IP)" in c["args"]
    )
    assert one(objs, "Deployment", "-intake", component="intake")["spec"]["replicas"] == 3


def test_every_flag_the_chart_passes_the_intake_is_one_it_takes(helm: Path) -> None:
    from typer.main import get_command

    from gatekeeper.cli.main import app

    command = get_command(app).commands["intake"]  # type: ignore[attr-defined]
    known = {opt for p in command.params for opt in p.opts}
    for sets in ((), ("intake.replicaCount=2", "watchNamespace=shop"), ("auth.insecureNoAuth=true",)):
        (c,) = intake_pod(render(helm, *sets))["containers"]
        flags = {a.split("=", 1)[0] for a in c["args"]}
        assert flags <= known, sorted(flags - known)


def test_an_existing_secret_or_insecure_no_auth_replace_the_generated_token(helm: Path) -> None:
    objs = render(helm, "auth.existingSecret=my-token")
    assert not [o for o in objs if o["kind"] == "Secret"]
    token = next(v for v in intake_pod(objs)["volumes"] if v["name"] == "token")
    assert token["secret"]["secretName"] == "my-token"
    objs = render(helm, "auth.insecureNoAuth=true")
    for pod in (intake_pod(objs), one(objs, "Deployment")["spec"]["template"]["spec"]):
        assert "--insecure-no-auth" in pod["containers"][0]["args"]
        assert not [v for v in pod["volumes"] if v["name"] == "token"]


def test_shards_render_one_controller_deployment_per_shard_each_with_its_lease(helm: Path) -> None:
    objs = render(helm, "shards=3", "replicaCount=2")
    shards = sorted(
        (o for o in objs if o["kind"] == "Deployment" and "-shard-" in o["metadata"]["name"]),
        key=lambda o: o["metadata"]["name"],
    )
    assert [o["metadata"]["name"] for o in shards] == [f"gk-gatekeeper-shard-{i}" for i in range(3)]
    selectors = [json.dumps(o["spec"]["selector"], sort_keys=True) for o in shards]
    assert len(set(selectors)) == 3  # no Deployment adopts another shard's pods
    for i, o in enumerate(shards):
        (c,) = o["spec"]["template"]["spec"]["containers"]
        assert f"--shard={i}/3" in c["args"] and o["spec"]["replicas"] == 2
    role = one(objs, "Role", "-leader-election")
    names = next(r["resourceNames"] for r in role["rules"] if "resourceNames" in r)
    assert names == [f"gatekeeper-controller-shard-{i}-of-3" for i in range(3)]
    service = one(objs, "Service")  # the dashboard Service spans every shard
    for o in shards:
        assert service["spec"]["selector"].items() <= o["spec"]["template"]["metadata"]["labels"].items()


def sa_kubeconfig(cluster: KubeCluster, admin: Any, ns: str, sa: str, path: Path) -> Path:
    from kubernetes import client

    token = client.CoreV1Api(admin).create_namespaced_service_account_token(
        sa, ns, {"spec": {"expirationSeconds": 3600}}
    )
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": cluster.server, "certificate-authority": str(cluster.ca_file)}}],
        "users": [{"name": "sa", "user": {"token": token.status.token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(cfg))
    return path


def invariant_gate(name: str, *, require: str) -> dict[str, Any]:
    spec = example_spec()
    spec["signals"] = [
        *spec["signals"],
        {"name": f"{name}-rule", "kind": "invariant", "root": "checkout",
         "when": {"span": "payment.capture"}, "require": {"span": require}, "within": "30s"},
    ]  # fmt: skip
    return gate_resource(name, spec)


@pytest.mark.k8s
def test_installed_with_shards_and_intakes_the_intake_learns_every_gates_rules_with_its_own_rbac(
    helm: Path, kube_cluster: KubeCluster, kube_admin: Any, kube_namespace: str, tmp_path: Path
) -> None:
    """The chart applied to the real API server with two shards and two intake replicas: RBAC lets each do its
    job only; then `gatekeeper intake`, as the intake's ServiceAccount with the chart's token Secret, learns the
    rules of the Gates that exist and of one created while it runs, and guards /v1/traces with that token."""
    import base64
    import subprocess
    import sys

    import httpx
    from kubernetes import client

    from gatekeeper.sim.prometheus import free_port
    from gatekeeper.sources.traces import Rule
    from gatekeeper.spec.signals import InvariantSignal
    from gatekeeper.web.intake import wait_ready

    ns = kube_namespace
    _, objs = installed(helm, kube_admin, ns, "shards=2", "intake.replicaCount=2")
    intake_sa = one(objs, "ServiceAccount", "-intake", component="intake")["metadata"]["name"]
    controller_sa = one(objs, "ServiceAccount")["metadata"]["name"]
    intake, controller = (sa_client(kube_cluster, kube_admin, ns, sa) for sa in (intake_sa, controller_sa))
    assert all(can(intake, v, "gatekeeper.dev", "gates", "elsewhere") for v in ("get", "list", "watch"))
    for denied in (("patch", "gatekeeper.dev", "gates"), ("patch", "gatekeeper.dev", "gates/status"),
                   ("get", "", "secrets"), ("create", "coordination.k8s.io", "leases")):  # fmt: skip
        assert not can(intake, *denied, ns), denied
    for shard in range(2):
        lease = f"gatekeeper-controller-shard-{shard}-of-2"
        assert can(controller, "update", "coordination.k8s.io", "leases", ns, lease)
    assert not can(controller, "update", "coordination.k8s.io", "leases", ns, "gatekeeper-controller")
    assert len([o for o in objs if o["kind"] == "Deployment" and "-shard-" in o["metadata"]["name"]]) == 2

    secret = client.CoreV1Api(kube_admin).read_namespaced_secret(
        one(objs, "Secret", "-token")["metadata"]["name"], ns
    )
    token = base64.b64decode(secret.data["token"]).decode()
    (tmp_path / "token").write_text(token)
    custom = client.CustomObjectsApi(kube_admin)
    custom.create_namespaced_custom_object(
        "gatekeeper.dev", "v1alpha1", ns, "gates", invariant_gate("before", require="order.create")
    )
    kubeconfig = sa_kubeconfig(kube_cluster, kube_admin, ns, intake_sa, tmp_path / "kubeconfig")
    port = free_port()
    (c,) = intake_pod(objs)["containers"]
    chart_args = [a for a in c["args"] if a.split("=")[0] in ("--version-attribute", "--completion-timeout",
                                                              "--max-open-traces", "--max-open-spans")]  # fmt: skip
    proc = subprocess.Popen([
        sys.executable, "-m", "gatekeeper.cli.main", "intake", "--kubeconfig", str(kubeconfig), "--namespace", ns,
        "--port", str(port), "--grpc-port", "0", "--token-file", str(tmp_path / "token"), *chart_args,
    ])  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        custom.create_namespaced_custom_object(
            "gatekeeper.dev", "v1alpha1", ns, "gates", invariant_gate("after", require="receipt.sent")
        )
        keys = {
            Rule.of(InvariantSignal.model_validate(s)).key
            for g in (invariant_gate("before", require="order.create"), invariant_gate("after", require="receipt.sent"))
            for s in g["spec"]["signals"] if s["kind"] == "invariant"
        }  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = httpx.get(f"{url}/metrics").text
            if all(f'rule="{k}"' in text for k in keys):
                break
            time.sleep(0.3)
        assert all(f'rule="{k}"' in text for k in keys), text
        assert httpx.get(f"{url}/readyz").status_code == 200
        body = {"resourceSpans": []}
        assert httpx.post(f"{url}/v1/traces", json=body).status_code == 401
        ok = httpx.post(f"{url}/v1/traces", json=body, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.k8s
def test_the_intake_pod_passes_the_restricted_pod_security_standard(
    helm: Path, kube_admin: Any, kube_namespace: str
) -> None:
    from kubernetes import client

    ns = kube_namespace
    core = client.CoreV1Api(kube_admin)
    core.patch_namespace(ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    _, objs = installed(helm, kube_admin, ns)
    template = one(objs, "Deployment", "-intake", component="intake")["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gk-intake", **template["metadata"]},
           "spec": template["spec"]}  # fmt: skip
    created = core.create_namespaced_pod(ns, pod)  # admitted by the API server's own admission
    assert created.metadata.name == "gk-intake"
    from kubernetes.client.exceptions import ApiException

    loose = {**pod, "metadata": {"name": "gk-loose"}, "spec": {**pod["spec"], "securityContext": {}}}
    loose["spec"]["containers"] = [{**c, "securityContext": {}} for c in pod["spec"]["containers"]]
    with pytest.raises(ApiException, match="restricted"):  # the same pod without its hardening is refused
        core.create_namespaced_pod(ns, loose)


def test_the_example_collector_config_routes_by_trace_id_to_the_charts_intake_peers_with_the_token(
    helm: Path,
) -> None:
    example = yaml.safe_load((CHART / "examples" / "otel-collector.yaml").read_text())
    lb = example["exporters"]["loadbalancing/gatekeeper"]
    assert lb["routing_key"] == "traceID"
    assert lb["protocol"]["otlp"]["headers"]["authorization"] == "Bearer ${env:GATEKEEPER_TOKEN}"
    objs = render(helm, release="release", namespace="namespace")  # the placeholders, as helm spells names
    peers = one(objs, "Service", "-intake-peers", component="intake")
    assert lb["resolver"]["k8s"]["service"].lower() == f"{peers['metadata']['name']}.namespace"
    grpc_port = next(p["port"] for p in peers["spec"]["ports"] if p["name"] == "otlp-grpc")
    assert lb["resolver"]["k8s"]["ports"] == [grpc_port]
    assert "loadbalancing/gatekeeper" in example["service"]["pipelines"]["traces/gatekeeper"]["exporters"]
    assert one(objs, "Secret", "-token")["metadata"]["name"] == "release-gatekeeper-token"


@pytest.mark.k8s
def test_helm_upgrade_keeps_the_generated_token_so_senders_keep_working(
    helm: Path, kube_cluster: KubeCluster, kube_admin: Any, kube_namespace: str, tmp_path: Path
) -> None:
    """A real `helm install` then `helm upgrade` against the test API server: the token Secret is generated once
    (the chart looks it up), so exporters and Argo templates holding it keep working across upgrades."""
    import base64

    from kubernetes import client

    ns = kube_namespace
    release = f"t{secrets.token_hex(3)}"
    env = {**os.environ, "KUBECONFIG": str(kube_cluster.kubeconfig),
           **{f"HELM_{k}_HOME": str(tmp_path / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}}  # fmt: skip

    def helm_run(*args: str) -> None:
        done = subprocess.run([str(helm), *args, str(CHART), "-n", ns, "--set", "admissionPolicy.enabled=false",
                               "--set", f"watchNamespace={ns}"],
                              capture_output=True, text=True, timeout=120, env=env, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr

    def token() -> str:
        secret = client.CoreV1Api(kube_admin).read_namespaced_secret(f"{release}-gatekeeper-token", ns)
        return base64.b64decode(secret.data["token"]).decode()

    helm_run("install", release)
    first = token()
    assert len(first) == 40
    helm_run("upgrade", release, "--set", "intake.replicaCount=2")
    assert token() == first
    apps = client.AppsV1Api(kube_admin)
    assert apps.read_namespaced_deployment(f"{release}-gatekeeper-intake", ns).spec.replicas == 2


@pytest.mark.k8s
def test_the_fence_policy_refuses_status_and_route_writes_of_a_replica_the_lease_does_not_name(
    helm: Path, kube_cluster: KubeCluster, kube_admin: Any, kube_namespace: str
) -> None:
    """A leader paused between its Lease check and a write wakes up deposed with the request in hand (found by
    ``bench/soak.py failover``); the API server refuses that write when the Lease names another replica."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from gatekeeper.controller.kube import ApiFailure, GateClient, GateRef
    from gatekeeper.routing import NotAccepted, RouteTarget, make_router
    from gatekeeper.spec.status import GateStatus, Phase
    from tests.controller_support import httproute

    ns = kube_namespace
    _, objs = installed(helm, kube_admin, ns, f"watchNamespace={ns}")
    sa = one(objs, "ServiceAccount")["metadata"]["name"]
    as_controller = sa_client(kube_cluster, kube_admin, ns, sa)
    client.CoordinationV1Api(kube_admin).create_namespaced_lease(ns, {
        "metadata": {"name": "gatekeeper-controller"},
        "spec": {"holderIdentity": "pod-b", "leaseDurationSeconds": 15},
    })  # fmt: skip
    custom = client.CustomObjectsApi(kube_admin)
    custom.create_namespaced_custom_object(
        "gatekeeper.dev", "v1alpha1", ns, "gates", gate_resource("web", example_spec())
    )
    httproute(kube_admin, ns, owner="web")
    ref = GateRef(ns, "web")
    status = GateStatus(phase=Phase.PROGRESSING, stage=0, weight=1.0)

    def write_status(writer: str) -> str:
        gates = GateClient(
            as_controller, field_manager=f"gatekeeper@{writer}", writer=f"gatekeeper-controller/{writer}"
        )
        try:
            gates.write_status(gates.get(ref), status)
        except ApiFailure as e:
            return str(e)
        return "ok"

    deadline = time.monotonic() + 15  # a new policy takes effect within a second or two
    while write_status("pod-a") == "ok":
        assert time.monotonic() < deadline, "the fence policy never took effect"
        time.sleep(0.2)
    assert "Lease gatekeeper-controller is held by pod-b" in write_status("pod-a")
    assert write_status("pod-b") == "ok"
    target = RouteTarget("gateway-api", ns, "web", "web-canary", "web-stable", "web")
    with pytest.raises(NotAccepted, match="held by pod-b"):
        make_router(target, as_controller, writer="gatekeeper-controller/pod-a").set_weight(5)
    assert make_router(target, as_controller, writer="gatekeeper-controller/pod-b").set_weight(5).written
    stale = GateClient(as_controller, field_manager="gatekeeper@pod-a", writer="gatekeeper-controller/pod-a")
    with pytest.raises(ApiFailure, match="held by pod-b"):  # metadata writes (finalizer, requests) too
        stale.set_finalizer(stale.get(ref), True)
    event = {"metadata": {"name": "web.stale"}, "involvedObject": {"kind": "Gate", "name": "web", "namespace": ns},
             "reason": "Advanced", "message": "m", "type": "Normal", "reportingComponent": "gatekeeper.dev/controller",
             "reportingInstance": "gatekeeper-controller/pod-a"}  # fmt: skip
    with pytest.raises(ApiException, match="held by pod-b"):  # and Events
        client.CoreV1Api(as_controller).create_namespaced_event(ns, event)
    from gatekeeper.controller.decision_store import DecisionStore  # and decision records
    from gatekeeper.routing.base import WRITER_ANNOTATION

    gate_obj = custom.get_namespaced_custom_object("gatekeeper.dev", "v1alpha1", ns, "gates", "web")
    for replica, refused in (("pod-a", True), ("pod-b", False)):
        store = DecisionStore(as_controller, field_manager=f"gatekeeper@{replica}",
                              writer=f"gatekeeper-controller/{replica}")  # fmt: skip
        body = store._body(gate_obj, None, [], {})
        assert body["metadata"]["annotations"][WRITER_ANNOTATION] == f"gatekeeper-controller/{replica}"
        if refused:
            with pytest.raises(ApiException, match="held by pod-b"):
                client.CoreV1Api(as_controller).create_namespaced_config_map(ns, body)
        else:
            client.CoreV1Api(as_controller).create_namespaced_config_map(ns, body)
    client.CoordinationV1Api(kube_admin).patch_namespaced_lease(
        "gatekeeper-controller", ns, {"spec": {"holderIdentity": ""}}
    )
    time.sleep(1.0)  # the policy reads the Lease from the API server's cache
    assert "held by nobody" in write_status("pod-b")  # released: nobody writes
    custom.patch_namespaced_custom_object_status(  # people and other writers are not fenced
        "gatekeeper.dev", "v1alpha1", ns, "gates", "web", {"status": {"reason": "set by hand"}}
    )
