"""Operator requests on a Gate and their codec.

Operator requests (`gatekeeper approve|abort|pause|resume`) are annotations on the Gate, written through the
API server so RBAC decides who may make them. `OperatorRequest` is the one codec both sides use:

* keys: `gatekeeper.dev/approve`, `gatekeeper.dev/abort`, `gatekeeper.dev/pause` (pause *and* resume share
  this key, so the latest of the two wins and no ordering between keys is needed);
* value: compact JSON `{"action", "by", "at", "stage"?, "reason"?}`: `by` is the user the API server
  authenticated (SelfSubjectReview), `at` an RFC 3339 UTC time, `stage` (approve only) the 0-based stage;
* a present key is a pending request. The controller applies it (its machine's requests are idempotent),
  writes the status, then removes the key with a JSON patch whose `test` op carries the value it applied,
  so a newer request written meanwhile survives. Order: abort, then pause/resume, then approve. A value
  that does not parse is a `BadRequestAnnotation`: the controller records an Event and removes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from gatekeeper.spec.crd import GROUP

__all__ = ["ANNOTATION_KEYS", "Action", "BadRequestAnnotation", "OperatorRequest", "pending_requests"]

Action = Literal["approve", "abort", "pause", "resume"]
ANNOTATION_KEYS: dict[str, str] = {
    "abort": f"{GROUP}/abort",
    "pause": f"{GROUP}/pause",
    "resume": f"{GROUP}/pause",
    "approve": f"{GROUP}/approve",
}


class BadRequestAnnotation(ValueError):
    """A request annotation whose value cannot be read; the message says what is wrong and how to fix it."""

    def __init__(self, key: str, value: str, problem: str) -> None:
        self.key, self.value = key, value
        super().__init__(
            f"annotation {key}={value!r}: {problem}; remove it and run the gatekeeper command again"
        )


@dataclass(frozen=True)
class OperatorRequest:
    """One operator request, as stored in a Gate annotation (see the module docstring)."""

    action: Action
    by: str
    at: str
    stage: int | None = None
    reason: str = ""

    @property
    def key(self) -> str:
        return ANNOTATION_KEYS[self.action]

    @staticmethod
    def key_for(action: str) -> str:
        """The annotation key a request for `action` is stored under (pause and resume share one)."""
        return ANNOTATION_KEYS[action]

    def value(self) -> str:
        data: dict[str, Any] = {"action": self.action, "by": self.by, "at": self.at}
        if self.stage is not None:
            data["stage"] = self.stage
        if self.reason:
            data["reason"] = self.reason
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def parse(cls, key: str, value: str) -> OperatorRequest:
        """Read one annotation; `BadRequestAnnotation` names the problem."""
        try:  # strict: no repeated keys, so `"by":"<user>"` occurs once (the admission policy relies on it)
            data = json.loads(value, object_pairs_hook=_unique_keys)
        except ValueError as exc:
            raise BadRequestAnnotation(key, value, f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise BadRequestAnnotation(key, value, "not a JSON object")
        unknown = sorted(set(data) - {"action", "by", "at", "stage", "reason"})
        if unknown:
            raise BadRequestAnnotation(key, value, f"unknown fields {unknown}")
        action = data.get("action")
        if not isinstance(action, str) or ANNOTATION_KEYS.get(action) != key:
            allowed = sorted(a for a, k in ANNOTATION_KEYS.items() if k == key)
            raise BadRequestAnnotation(key, value, f"'action' must be one of {allowed} under this key")
        stage = data.get("stage")
        if stage is not None and (isinstance(stage, bool) or not isinstance(stage, int) or stage < 0):
            raise BadRequestAnnotation(key, value, "'stage' must be a stage index (0, 1, ...)")
        for field in ("by", "at"):
            if not isinstance(data.get(field), str) or not data[field]:
                raise BadRequestAnnotation(key, value, f"'{field}' is missing")
        if not isinstance(data.get("reason", ""), str):
            raise BadRequestAnnotation(key, value, "'reason' must be a string")
        return cls(cast(Action, action), data["by"], data["at"], stage, data.get("reason", ""))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"repeated key {sorted(k for k in keys if keys.count(k) > 1)[0]!r}")
    return dict(pairs)


def pending_requests(
    annotations: Mapping[str, str] | None,
) -> tuple[list[OperatorRequest], list[BadRequestAnnotation]]:
    """The pending requests of a Gate in the order to apply them (abort, pause/resume, approve)."""
    found: list[OperatorRequest] = []
    bad: list[BadRequestAnnotation] = []
    for key in dict.fromkeys(ANNOTATION_KEYS.values()):
        value = (annotations or {}).get(key)
        if value is None:
            continue
        try:
            found.append(OperatorRequest.parse(key, value))
        except BadRequestAnnotation as exc:
            bad.append(exc)
    return found, bad
