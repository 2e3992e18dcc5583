"""The Gate CRD: generated from the models, committed in the chart, accepted by a real kube-apiserver, and
strict enough there that a bad gate is refused naming its field; the spec hash pinned; the request codec."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.cli.commands.crd import CRD_FILE, crd_yaml
from gatekeeper.spec import GateSpec
from gatekeeper.spec.crd import CRD_NAME, GROUP, PLURAL, VERSION, CrdSchemaError, gate_crd
from gatekeeper.spec.fingerprint import spec_hash
from gatekeeper.spec.requests import BadRequestAnnotation, OperatorRequest, pending_requests
from gatekeeper.spec.status import GateStatus, HistoryEntry, Phase

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "gatekeeper"

# A gate spec frozen here (not read from gates/, which may evolve) and its hash, pinned: if this value changes,
# every running analysis in every cluster restarts on upgrade. Checked independently with jq (sorted keys,
# compact): python -c 'import json, tests.test_crd as t; print(json.dumps(t.PINNED_SPEC))' | jq -cjS . | sha256sum
PINNED_SPEC: dict[str, Any] = {
    "scopes": {"canary": {"track": "canary"}, "baseline": {"track": "baseline"}},
    "interval": "30s",
    "stages": [{"weight": 1, "minDuration": "2m"}, {"weight": 50, "minSamples": 2000}],
    "signals": [
        {"name": "error-rate", "kind": "ratio", "bad": 'http_requests_total{code=~"5.."}',
         "total": "http_requests_total", "tolerance": 0.2},
    ],
    "owners": ["team-checkout"],
}  # fmt: skip
PINNED_HASH = "ae653a8e7730c2fc4165f53129f830c16b99e098444ed09cfc58ec263ce689d0"


def _walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def example_spec() -> dict[str, Any]:
    """gates/http-canary.yaml as a Gate resource's spec (its one argument given a value)."""
    raw = yaml.safe_load((ROOT / "gates" / "http-canary.yaml").read_text())
    spec = {k: v for k, v in raw.items() if k not in ("apiVersion", "kind", "name")}
    for arg in spec.get("args", []):
        arg.setdefault("value", "checkout")
    return spec


def gate_resource(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Gate", "metadata": {"name": name}, "spec": spec}


def install_gate_crd(admin: Any, *, timeout: float = 20.0) -> None:
    """Create the Gate CRD on the session's API server (already there is fine) and wait until it serves."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ext = client.ApiextensionsV1Api(admin)
    try:
        ext.create_custom_resource_definition(gate_crd())
    except ApiException as exc:
        if exc.status != 409:
            raise
    deadline = time.monotonic() + timeout
    while True:  # Established, then the endpoint answers (it can 404 for ~2 s after Established)
        try:
            crd = ext.read_custom_resource_definition(CRD_NAME)
            if any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or []):
                client.CustomObjectsApi(admin).list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)
                return
        except ApiException as exc:
            if exc.status != 404:
                raise
        assert time.monotonic() < deadline, f"{CRD_NAME} not serving after {timeout} s"
        time.sleep(0.1)


# -- generation (no cluster) ----------------------------------------------------------------------------------
def test_the_chart_carries_exactly_the_crd_the_models_generate() -> None:
    committed = (CHART / CRD_FILE).read_text()
    assert yaml.load(committed, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) == gate_crd(), (
        "regenerate: gatekeeper crd --chart charts/gatekeeper"
    )
    assert committed == crd_yaml()


def test_the_crd_carries_no_defaults_refs_or_closed_objects() -> None:
    schema = gate_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    keys = {k for _, k, _ in _walk(schema)}
    assert not keys & {"default", "$ref", "$defs", "const", "discriminator", "title"}
    # every object either lists its properties, types its values, or is free-form on purpose
    for path, key, node in _walk(schema):
        if key in ("properties", "items") or not isinstance(node, dict) or node.get("type") != "object":
            continue
        assert {"properties", "additionalProperties", "x-kubernetes-preserve-unknown-fields"} & set(node), (
            path
        )


def test_the_crd_names_printer_columns_and_status_subresource() -> None:
    crd = gate_crd()["spec"]
    assert (crd["group"], crd["scope"], crd["names"]["plural"], crd["names"]["shortNames"]) == (
        "gatekeeper.dev", "Namespaced", "gates", ["gk"],
    )  # fmt: skip
    version = crd["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Stage", "Weight", "Verdict", "Phase", "Reason", "Age"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == [p.value for p in Phase]
    assert set(status) == {f.alias or n for n, f in GateStatus.model_fields.items()}


def test_the_signal_union_keeps_every_kinds_fields_and_requirements() -> None:
    spec = gate_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    item = spec["properties"]["signals"]["items"]
    kinds = item["properties"]["kind"]["enum"]
    assert {"ratio", "latency", "threshold", "health"} <= set(kinds)
    ratio = next(b for b in item["oneOf"] if b["properties"]["kind"]["enum"] == ["ratio"])
    assert set(ratio["required"]) == {"bad", "total"}
    assert {"required": ["histogram"]} in ratio["not"]["anyOf"]  # a latency field on a ratio is refused


def test_a_union_the_converter_cannot_express_is_an_error_naming_the_field() -> None:
    from pydantic import BaseModel

    from gatekeeper.spec import crd

    class Odd(BaseModel):
        either: int | list[str]

    raw = Odd.model_json_schema()
    with pytest.raises(CrdSchemaError, match=r"odd\.either"):
        crd._convert(raw, raw.get("$defs", {}), "odd")


# -- spec hash ------------------------------------------------------------------------------------------------
def test_the_spec_hash_is_pinned() -> None:
    assert spec_hash(PINNED_SPEC) == PINNED_HASH


def test_the_spec_hash_ignores_what_a_library_or_the_api_server_may_change() -> None:
    base = spec_hash(PINNED_SPEC)
    reordered = json.loads(json.dumps(PINNED_SPEC, sort_keys=True))
    assert spec_hash(dict(reversed(list(reordered.items())))) == base
    floats = copy.deepcopy(PINNED_SPEC)
    floats["stages"][0]["weight"] = 1.0  # the API server stores 1.0 as 1
    floats["stages"][1]["maxDuration"] = None  # and prunes nulls of non-nullable fields
    assert spec_hash(floats) == base
    assert (
        spec_hash({"apiVersion": "gatekeeper.dev/v1alpha1", "kind": "Gate", "name": "x", **PINNED_SPEC})
        == base
    )
    assert spec_hash(gate_resource("x", PINNED_SPEC)) == base
    # the models add defaults; the hash never sees them
    full = GateSpec.model_validate({"name": "x", **PINNED_SPEC}).model_dump(mode="json", by_alias=True)
    assert len(json.dumps(full)) > 2 * len(json.dumps(PINNED_SPEC))
    assert spec_hash(PINNED_SPEC) == base


def test_the_spec_hash_changes_with_any_value_the_user_changes() -> None:
    base = spec_hash(PINNED_SPEC)
    for edit in (("interval", "31s"), ("owners", ["team-other"]), ("stages", PINNED_SPEC["stages"][:1])):
        changed = {**PINNED_SPEC, edit[0]: edit[1]}
        assert spec_hash(changed) != base, edit[0]
    with pytest.raises(TypeError, match=r"spec\.interval"):
        spec_hash({**PINNED_SPEC, "interval": float("nan")})


# -- operator request codec -----------------------------------------------------------------------------------
def test_a_request_round_trips_through_its_annotation() -> None:
    req = OperatorRequest("approve", "alice@example.com", "2026-11-25T10:00:00.000000Z", 2, "dashboards ok")
    assert OperatorRequest.parse(req.key, req.value()) == req
    assert req.key == "gatekeeper.dev/approve"
    assert OperatorRequest("resume", "a", "t").key == OperatorRequest("pause", "a", "t").key


def test_pending_requests_come_in_the_order_to_apply_and_bad_ones_are_named() -> None:
    ann = {
        "gatekeeper.dev/approve": OperatorRequest("approve", "a", "t2", 0).value(),
        "gatekeeper.dev/pause": OperatorRequest("resume", "b", "t1").value(),
        "gatekeeper.dev/abort": "yes please",
        "other.io/x": "y",
    }
    found, bad = pending_requests(ann)
    assert [r.action for r in found] == ["resume", "approve"]
    assert len(bad) == 1 and "gatekeeper.dev/abort" in str(bad[0]) and "not JSON" in str(bad[0])
    for value, problem in (
        ('{"action":"abort","by":"a","at":"t"}', "'action' must be one of \\['approve'\\]"),
        ('{"action":"approve","by":"a","at":"t","stage":-1}', "stage index"),
        ('{"action":"approve","at":"t"}', "'by' is missing"),
        ('{"action":"approve","by":"bob","at":"t","by":"alice"}', "repeated key 'by'"),
        ('{"action":"approve","by":"bob","at":"t","note":{"by":"alice"}}', "unknown fields \\['note'\\]"),
        ('{"action":"approve","by":"bob","at":"t","reason":{"by":"alice"}}', "'reason' must be a string"),
    ):
        with pytest.raises(BadRequestAnnotation, match=problem):
            OperatorRequest.parse("gatekeeper.dev/approve", value)


# -- on the real API server -----------------------------------------------------------------------------------
@pytest.mark.k8s
def test_the_api_server_accepts_the_crd_and_the_example_gate_strictly(
    kube_admin: Any, kube_namespace: str
) -> None:
    from kubernetes import client

    install_gate_crd(kube_admin)
    custom = client.CustomObjectsApi(kube_admin)
    spec = example_spec()
    made = custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, gate_resource("http-canary", spec), field_validation="Strict"
    )
    assert made["spec"] == json.loads(json.dumps(spec))  # nothing pruned, nothing defaulted
    assert spec_hash(made["spec"]) == spec_hash(spec)  # the hash survives the round trip


BAD_GATES = [
    (
        "a ratio signal without 'bad'",
        lambda s: s["signals"][0].pop("bad"),
        "spec.signals[0].bad: Required value",
    ),
    ("a weight over 100", lambda s: s["stages"][0].update(weight=150), "spec.stages[0].weight"),
    ("a duration in words", lambda s: s.update(interval="5 minutes"), "spec.interval"),
    ("an unknown signal kind", lambda s: s["signals"][1].update(kind="magic"), 'Unsupported value: "magic"'),
    ("a ratio field on a latency signal", lambda s: s["signals"][1].update(bad="x"), "spec.signals[1]"),
    ("no signals", lambda s: s.pop("signals"), "spec.signals: Required value"),
    ("a misspelt field", lambda s: s["stages"][0].update(weigth=3), 'unknown field "spec.stages[0].weigth"'),
]


@pytest.mark.k8s
@pytest.mark.parametrize(("what", "edit", "named"), BAD_GATES, ids=[b[0] for b in BAD_GATES])
def test_the_api_server_refuses_a_bad_gate_naming_the_field(
    what: str, edit: Any, named: str, kube_admin: Any, kube_namespace: str
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    install_gate_crd(kube_admin)
    spec = example_spec()
    edit(spec)
    with pytest.raises(ApiException) as caught:
        client.CustomObjectsApi(kube_admin).create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, gate_resource("bad", spec), field_validation="Strict"
        )
    assert caught.value.status in (400, 422), what
    assert named in json.loads(caught.value.body)["message"], what


@pytest.mark.k8s
def test_the_status_subresource_holds_a_status_and_the_printer_columns_show_it(
    kube_admin: Any, kube_namespace: str
) -> None:
    from kubernetes import client

    install_gate_crd(kube_admin)
    custom = client.CustomObjectsApi(kube_admin)
    ns = kube_namespace
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, gate_resource("web", example_spec()))
    entry = HistoryEntry(time=1.0, stage=1, weight=5, verdict="pass", reason="ok", evidence={"e": {"x": 1.5}})
    status = GateStatus(
        phase=Phase.PROGRESSING, stage=1, weight=5, verdict="pass", reason="ok", history=[entry]
    )
    body = {"status": status.model_dump(mode="json", by_alias=True)}
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "web", body)
    back = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "web")
    assert GateStatus.model_validate(back["status"]) == status  # nothing pruned from the controller's status
    # what `kubectl get gates` prints: the server's Table rendering of the printer columns
    method, url, headers, body, _ = kube_admin.param_serialize(
        "GET", f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/web",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}, auth_settings=["BearerToken"],
    )  # fmt: skip
    raw = kube_admin.call_api(method, url, header_params=headers, body=body)
    raw.read()
    table = json.loads(raw.data)
    names = [c["name"] for c in table["columnDefinitions"]]
    row = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert (row["Stage"], row["Weight"], row["Verdict"], row["Phase"]) == (1, 5, "pass", "Progressing")
