"""Trace rules: "in a trace rooted at `root`, if `when` happened then `require` must exist within `within`".

A rule is the hashable core of an `InvariantSignal` (two signals with the same rule share counts). Span
status follows OpenTelemetry: `ok` means "not an error" (status OK or UNSET, since most instrumentations
never set OK), `error` means STATUS_CODE_ERROR, `any` matches both.

Timing: the deadline is the end of the earliest matching `when` span plus `within`; a matching `require` span
must end by then (it may also end before `when`, as an order created before the payment is captured).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

__all__ = ["STATUS_ERROR", "Rule", "TraceView", "has_when", "judge"]

STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


@dataclass(frozen=True)
class Rule:
    root: str
    when_span: str
    when_status: str
    require_span: str
    require_status: str
    within: float

    @classmethod
    def of(cls, signal: Any) -> Rule:
        """From an `InvariantSignal` (or anything shaped like one)."""
        try:
            return cls(
                root=signal.root,
                when_span=signal.when.span,
                when_status=signal.when.status,
                require_span=signal.require.span,
                require_status=signal.require.status,
                within=float(signal.within),
            )
        except AttributeError as e:
            raise TypeError(f"not an invariant signal: {type(signal).__name__} has no {e.name!r}") from None

    @property
    def key(self) -> str:
        """A short stable id of the rule (the `rule` label of the intake's counters): equal rules in different
        Gates share it, and the controller computes the same one from its own copy of the signal."""
        text = "\x1f".join(
            (
                self.root,
                self.when_span,
                self.when_status,
                self.require_span,
                self.require_status,
                f"{self.within:g}",
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return (
            f"in traces rooted at {self.root}: {self.when_span}[{self.when_status}] requires "
            f"{self.require_span}[{self.require_status}] within {self.within:g}s"
        )


@dataclass(frozen=True)
class TraceView:
    """A completed trace as the store keeps it: its root (if it arrived) and a flat span list.

    `spans` is flat for memory: name, status code, end time (unix s), name, status, end, ...
    """

    root_name: str | None
    spans: list[Any]


def _matches(status: int, wanted: str) -> bool:
    if wanted == "any":
        return True
    return (status == STATUS_ERROR) == (wanted == "error")


def judge(rule: Rule, trace: TraceView) -> tuple[bool, bool]:
    """(applies, violated): applies when the trace is rooted at `rule.root` and a matching `when` span exists."""
    if trace.root_name != rule.root:
        return False, False
    spans = trace.spans
    first_when: float | None = None
    for i in range(0, len(spans), 3):
        if spans[i] == rule.when_span and _matches(spans[i + 1], rule.when_status):
            end = spans[i + 2]
            if first_when is None or end < first_when:
                first_when = end
    if first_when is None:
        return False, False
    deadline = first_when + rule.within
    for i in range(0, len(spans), 3):
        if (
            spans[i] == rule.require_span
            and _matches(spans[i + 1], rule.require_status)
            and spans[i + 2] <= deadline
        ):
            return True, False
    return True, True


def has_when(rule: Rule, spans: list[Any]) -> bool:
    """Whether a (flat) span list holds a span matching the rule's `when` check."""
    return any(
        spans[i] == rule.when_span and _matches(spans[i + 1], rule.when_status)
        for i in range(0, len(spans), 3)
    )
