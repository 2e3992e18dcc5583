"""The spec hash: which spec the controller acted on.

`spec_hash(spec)` is the sha256 of the canonical JSON of the spec *as the user wrote it* (the resource's
`.spec`, or a gate file's mapping): keys sorted, `apiVersion`/`kind`/`name` left out, null-valued keys left out,
integral floats written as integers (the API server stores `1.0` as `1`). It never passes through the models,
so no default added by a pydantic or gatekeeper release changes it (Flagger #1799, Argo Rollouts #4696:
upgrades that restarted every running analysis).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from gatekeeper.spec.crd import KIND

__all__ = ["spec_hash"]

_NOT_SPEC = ("apiVersion", "kind", "name")


def spec_hash(spec: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of the user's spec; see the module docstring for the rules.

    `spec` is the `.spec` of a Gate resource, a whole Gate resource (its `.spec` is used), or the mapping of a
    gate file. `TypeError` names the path of a value JSON cannot hold.
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"spec_hash needs the spec mapping as written, not {type(spec).__name__}")
    if spec.get("kind") == KIND and isinstance(spec.get("spec"), Mapping):
        spec = spec["spec"]
    body = {k: v for k, v in spec.items() if k not in _NOT_SPEC}
    text = json.dumps(
        _canonical(body, "spec"), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any, path: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v, f"{path}.{k}") for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_canonical(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path}: {value} is not a finite number")
        return int(value) if value.is_integer() else value
    raise TypeError(f"{path}: a {type(value).__name__} cannot be hashed; use strings, numbers, lists, maps")
