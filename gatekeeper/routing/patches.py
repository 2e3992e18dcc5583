"""JSON values gatekeeper owns in a routing resource (``Slot``), one write (``Plan``) and the JSON patch ops
between them (RFC 6902 with ``test`` ops before every change, JSON pointers per RFC 6901)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ABSENT", "Plan", "Slot", "canonical", "diff", "pointer"]


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Slot:
    """One JSON value gatekeeper owns: its JSON pointer, its role and its current value (or ABSENT)."""

    path: str
    role: str  # canary | stable | flag | total | mirror | mirror-percent | a kind's own (nginx match keys)
    value: Any


@dataclass(frozen=True)
class Plan:
    """One write: the JSON patch ``ops`` and what reading back must show (slot values, gate rules)."""

    ops: list[dict[str, Any]]
    want: dict[str, Any] = field(default_factory=dict)
    rules: list[dict[str, Any]] | None = None  # the gate's A/B rules after the write; None: not checked


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def diff(slots: Sequence[Slot], want: dict[str, Any]) -> list[dict[str, Any]]:
    """JSON patch ops turning the slots' values into ``want`` (ABSENT in ``want`` removes), with tests first."""
    ops: list[dict[str, Any]] = []
    for s in slots:
        if s.path not in want or want[s.path] == s.value:
            continue
        new = want[s.path]
        if s.value is not ABSENT:
            ops.append({"op": "test", "path": s.path, "value": s.value})
            ops.append(
                {"op": "remove", "path": s.path}
                if new is ABSENT
                else {"op": "replace", "path": s.path, "value": new}
            )
        elif new is not ABSENT:
            ops.append({"op": "add", "path": s.path, "value": new})
    return ops
