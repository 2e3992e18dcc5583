"""The Gate CustomResourceDefinition, generated from the pydantic models.

`gate_crd()` turns `GateSpec` / `GateStatus` JSON Schemas into a *structural* OpenAPI v3 schema the API server
accepts (checked against a real kube-apiserver in tests/test_crd.py):

* `$ref`s are inlined; `anyOf [X, null]` becomes `X` with `nullable: true`; `const` becomes a one-value `enum`;
  JSON-Schema-2020 `exclusiveMinimum: 0` becomes OpenAPI 3.0 `minimum: 0, exclusiveMinimum: true`.
* The signal union (`oneOf` + `discriminator: kind`) becomes one object holding every kind's properties, plus a
  `oneOf` of value-only branches (`kind` enum, that kind's required fields, none of the other kinds' fields):
  structural, and the server still rejects a `ratio` signal without `bad`.
* Durations (`30s`, `5m`, or a bare number of seconds) are `x-kubernetes-int-or-string` with the duration
  pattern: fractional bare seconds (`0.5`) are refused by the server; write `500ms`.
* No `default`s: defaults live in the pydantic models only. A CRD default would be written into every stored
  object by the API server, so upgrading the chart would change users' specs (and their hashes).
* `additionalProperties: false` is dropped (the server prunes unknown fields and reports them as warnings, or
  errors with `fieldValidation=Strict`); free-form maps keep `x-kubernetes-preserve-unknown-fields`.
* A construct the converter does not know raises `CrdSchemaError` naming the path, so a model change that the
  CRD cannot express fails the golden test instead of shipping a schema that lets anything through.

The operator-request codec is `gatekeeper.spec.requests`, the spec hash `gatekeeper.spec.fingerprint`.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from gatekeeper.spec.durations import parse_duration
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.status import GateStatus

__all__ = [
    "CRD_NAME",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAMES",
    "VERSION",
    "CrdSchemaError",
    "gate_crd",
    "spec_schema",
    "status_schema",
]

GROUP = "gatekeeper.dev"
VERSION = "v1alpha1"
KIND = "Gate"
PLURAL = "gates"
SINGULAR = "gate"
SHORT_NAMES = ("gk",)
CRD_NAME = f"{PLURAL}.{GROUP}"

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$|^[0-9]+(\.[0-9]+)?$"
_DURATION_MARK = "x-gatekeeper-duration"
_NOT_SPEC = ("apiVersion", "kind", "name")  # resource fields, not the spec (see fingerprint.py too)
# Keys of the resource, not of the spec: they live at the top level / in metadata.
_KEEP = (
    "description", "enum", "pattern", "format", "minimum", "maximum", "minLength", "maxLength",
    "minItems", "maxItems", "minProperties", "maxProperties", "uniqueItems", "multipleOf",
)  # fmt: skip
_DROP = ("title", "default", "examples", "discriminator", "additionalProperties", "$defs", "readOnly")


class CrdSchemaError(ValueError):
    """The models hold a construct the CRD converter cannot express; the message names the path."""


class _MarkDurations(GenerateJsonSchema):
    """Pydantic sees `Duration` as a float; mark it so the converter can accept '5m' as well as 300."""

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> JsonSchemaValue:
        if schema["function"].get("function") is parse_duration:
            return {_DURATION_MARK: True}
        return super().function_before_schema(schema)


# -- public ---------------------------------------------------------------------------------------------------
def spec_schema() -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a Gate's `.spec`."""
    raw = GateSpec.model_json_schema(by_alias=True, schema_generator=_MarkDurations)
    out = _convert(raw, raw.get("$defs", {}), "spec")
    for key in _NOT_SPEC[:2]:
        out["properties"].pop(key, None)
    out["properties"]["name"]["description"] = "Defaults to metadata.name."
    out["required"] = [r for r in out.get("required", []) if r not in _NOT_SPEC]
    return out


def status_schema() -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a Gate's `.status` (written by the controller only)."""
    raw = GateStatus.model_json_schema(by_alias=True, schema_generator=_MarkDurations)
    out = _convert(raw, raw.get("$defs", {}), "status")
    conditions = out["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"  # one entry per type; server-side apply merges by type
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return out


def gate_crd() -> dict[str, Any]:
    """The `gates.gatekeeper.dev` CustomResourceDefinition (apiextensions.k8s.io/v1) as plain data."""
    name_rule = GateSpec.model_fields["name"].metadata
    pattern = next(m.pattern for m in name_rule if getattr(m, "pattern", None))
    schema = {
        "type": "object",
        "description": "A gate: walks a canary through its stages on evidence from metrics and traces.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {
                "type": "object",
                "properties": {"name": {"type": "string", "maxLength": 63, "pattern": pattern}},
            },
            "spec": spec_schema(),
            "status": status_schema(),
        },
    }
    columns = [
        ("Stage", "integer", ".status.stage", "Index of the current stage (0 = first)."),
        ("Weight", "number", ".status.weight", "Canary traffic percent now."),
        ("Verdict", "string", ".status.verdict", "The last judgement."),
        ("Phase", "string", ".status.phase", "Where the rollout is."),
        ("Age", "date", ".metadata.creationTimestamp", ""),
    ]
    printer: list[dict[str, Any]] = [
        {"name": n, "type": t, "jsonPath": p, **({"description": d} if d else {})} for n, t, p, d in columns
    ]
    printer.insert(4, {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1})
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "gatekeeper", "app.kubernetes.io/part-of": "gatekeeper"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["gatekeeper"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


# -- conversion -----------------------------------------------------------------------------------------------
def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs)
    if node.get(_DURATION_MARK):
        return _duration(node)
    if "anyOf" in node:
        return _any_of(node, defs, path)
    if "oneOf" in node:
        return _one_of(node, defs, path)
    if "allOf" in node:
        if len(node["allOf"]) != 1:
            raise CrdSchemaError(f"{path}: allOf with {len(node['allOf'])} members is not supported")
        inner = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        return _convert(inner, defs, path)
    if "const" in node:
        const = node["const"]
        node = {k: v for k, v in node.items() if k != "const"}
        node.update(enum=[const], type=node.get("type") or _json_type(const, path))
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        return _object(node, defs, path)
    if kind == "array":
        out = _scalar(node, path)
        out["items"] = _convert(node.get("items", {}), defs, f"{path}[]")
        return out
    if kind in ("string", "number", "integer", "boolean"):
        return _scalar(node, path)
    raise CrdSchemaError(f"{path}: cannot express {sorted(node)} in a structural schema")


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = {**copy.deepcopy(defs[name]), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _duration(node: dict[str, Any]) -> dict[str, Any]:
    text = "A duration: '30s', '5m', '1h30m', '250ms', or whole seconds."
    desc = node.get("description")
    return {
        "description": f"{desc} {text}" if desc else text,
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": DURATION_PATTERN,  # applies to strings only
        "minimum": 0,  # applies to integers only
    }


def _scalar(node: dict[str, Any], path: str) -> dict[str, Any]:
    if node.get("type") not in ("string", "number", "integer", "boolean", "array"):
        raise CrdSchemaError(f"{path}: unexpected type {node.get('type')!r}")
    out: dict[str, Any] = {"type": node["type"]}
    out.update({k: node[k] for k in _KEEP if k in node})
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
            out[limit] = node[bound]
            out[bound] = True
    unknown = set(node) - set(_KEEP) - set(_DROP) - {"type", "items", "exclusiveMinimum", "exclusiveMaximum"}
    if unknown:
        raise CrdSchemaError(f"{path}: unsupported keywords {sorted(unknown)}")
    return out


def _object(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object"}
    out.update({k: node[k] for k in _KEEP if k in node})
    props = node.get("properties")
    extra = node.get("additionalProperties")
    if props:
        out["properties"] = {k: _convert(v, defs, f"{path}.{k}") for k, v in props.items()}
        if node.get("required"):
            out["required"] = list(node["required"])
    elif isinstance(extra, dict) and extra:
        out["additionalProperties"] = _convert(extra, defs, f"{path}.*")
    else:  # dict[str, Any]: free-form by design
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _any_of(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    members = [_resolve(m, defs) for m in node["anyOf"]]
    real = [m for m in members if m.get("type") != "null"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if len(real) != 1:
        raise CrdSchemaError(f"{path}: a union of {len(real)} non-null types is not structural")
    out = _convert({**real[0], **rest}, defs, path)
    if len(real) < len(members):
        out["nullable"] = True
    return out


def _one_of(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """A tagged union: every kind's properties on one object, one value-only branch per kind."""
    tag = (node.get("discriminator") or {}).get("propertyName")
    if not tag:
        raise CrdSchemaError(f"{path}: oneOf without a discriminator cannot be made structural")
    variants = [_convert(m, defs, f"{path}<{i}>") for i, m in enumerate(node["oneOf"])]
    merged: dict[str, Any] = {}
    for v in variants:
        for key, schema in v["properties"].items():
            if key == tag:
                continue
            if key in merged and _shape(merged[key]) != _shape(schema):
                raise CrdSchemaError(f"{path}.{key}: kinds disagree on its type; rename one of them")
            merged.setdefault(key, schema)
    values = [v["properties"][tag]["enum"][0] for v in variants]
    common = set.intersection(*(set(v.get("required", [])) for v in variants))
    branches = []
    for value, v in zip(values, variants, strict=True):
        own = set(v["properties"])
        branch: dict[str, Any] = {
            "properties": {tag: {"enum": [value]}},
            "required": sorted(set(v.get("required", [])) - common) or [tag],
        }
        foreign = sorted(set(merged) - own)
        if foreign:
            branch["not"] = {"anyOf": [{"required": [f]} for f in foreign]}
        branches.append(branch)
    out: dict[str, Any] = {
        "type": "object",
        "description": f"One of: {', '.join(values)} (chosen by '{tag}').",
        "properties": {tag: {"type": "string", "enum": values}, **merged},
        "required": sorted(common),
        "oneOf": branches,
    }
    if node.get("description"):
        out["description"] = node["description"]
    return out


def _shape(schema: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def _json_type(value: Any, path: str) -> str:
    for kind, py in (("boolean", bool), ("integer", int), ("number", float), ("string", str)):
        if isinstance(value, py):
            return kind
    raise CrdSchemaError(f"{path}: const {value!r} has no JSON type")
