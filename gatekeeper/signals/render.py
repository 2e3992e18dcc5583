"""Render queries: add an arm's scope to a selector, fill reserved variables. Unknown variables are errors.

Folding: when the two arms' scopes have the same label keys and differ only in exact-valued labels, one query
over both arms (`label=~"canary|baseline"`, grouped `by (label)`) answers for both, and each arm's series are
picked from the answer by their exact label values (`ArmSplit`). Any other pair of scopes keeps one query per
arm. A folded query selects per arm exactly the series the arm's own query selects, and aggregates them the
same way, so the numbers do not change; only the number of round-trips does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gatekeeper.spec.durations import format_duration

_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*$", re.S)
_VAR = re.compile(r"\$\{([^}]*)\}")


class RenderError(ValueError):
    """A selector or template that cannot be rendered; the message names the fix."""


def matchers(scope: dict[str, str]) -> str:
    """`{track: canary, service: '=~checkout|cart'}` -> `track="canary",service=~"checkout|cart"`."""
    parts = []
    for label, raw in scope.items():
        op, value = "=", raw
        for candidate in ("=~", "!=", "!~"):
            if raw.startswith(candidate):
                op, value = candidate, raw[len(candidate) :]
                break
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'{label}{op}"{escaped}"')
    return ",".join(parts)


def scoped(selector: str, scope: dict[str, str], *, suffix: str = "") -> str:
    """Add the scope's matchers to a plain selector `name{...}`; `suffix` extends the metric name (`_bucket`)."""
    m = _SELECTOR.match(selector)
    if not m or not (m.group(1) or m.group(2)):
        raise RenderError(
            f"'{selector}' is not a plain selector like name{{label=\"value\"}}: "
            "use a threshold signal with ${selector} for arbitrary PromQL"
        )
    name, inner = m.group(1) or "", (m.group(2) or "").strip().rstrip(",")
    if suffix and not name:
        raise RenderError(f"'{selector}' needs a metric name to add '{suffix}' to")
    extra = matchers(scope)
    body = f"{inner},{extra}" if inner else extra
    return f"{name}{suffix}{{{body}}}"


def fill(template: str, *, scope: dict[str, str], arm: str, window: float, step: float) -> str:
    """Fill `${selector}`, `${arm}`, `${window}`, `${step}` in free-form PromQL."""
    values = {
        "selector": matchers(scope),
        "arm": arm,
        "window": format_duration(window),
        "step": format_duration(step),
    }

    def repl(m: re.Match[str]) -> str:
        key = m.group(1).strip()
        if key not in values:
            raise RenderError(
                f"unknown variable '${{{key}}}' in query: known are {', '.join(sorted(values))}"
            )
        return values[key]

    return _VAR.sub(repl, template)


_OPERATORS = ("=~", "!=", "!~")
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


@dataclass(frozen=True)
class ArmSplit:
    """How one query serves both arms: `scope` selects both, `labels` tell them apart by exact value."""

    scope: dict[str, str]
    labels: tuple[str, ...]
    values: dict[str, tuple[str, ...]]  # arm -> its values of `labels`

    def arm_of(self, labels: dict[str, str]) -> str | None:
        """The arm a series of the folded answer belongs to (None: neither, e.g. a cross combination)."""
        key = tuple(labels.get(label, "") for label in self.labels)
        for arm, values in self.values.items():
            if key == values:
                return arm
        return None


def split_arms(canary: dict[str, str], baseline: dict[str, str]) -> ArmSplit | None:
    """The fold of two scopes into one, or None when they must stay two queries: different label keys, a
    differing label that is a regex or negative matcher (its series cannot be told apart by value), an empty
    value (it also matches series without the label), or a reserved `__` label."""
    if canary.keys() != baseline.keys():
        return None
    differing = tuple(k for k in canary if canary[k] != baseline[k])
    if not differing:
        return None
    for key in differing:
        for value in (canary[key], baseline[key]):
            if not value or value.startswith(_OPERATORS) or key.startswith("__"):
                return None
    scope = dict(canary)
    for key in differing:
        scope[key] = "=~" + "|".join(_re2_literal(v) for v in (canary[key], baseline[key]))
    return ArmSplit(
        scope=scope,
        labels=differing,
        values={
            "canary": tuple(canary[k] for k in differing),
            "baseline": tuple(baseline[k] for k in differing),
        },
    )


def _re2_literal(value: str) -> str:
    """`value` as an RE2 pattern matching exactly it (Prometheus anchors label regexes)."""
    return _RE2_SPECIAL.sub(r"\\\1", value)


def increase(selector: str, scope: dict[str, str], step: float, *, by: str = "", suffix: str = "") -> str:
    """`sum(increase(sel{scope}[step]))`: per-step event counts from a counter (resets handled by Prometheus)."""
    return aggregate(
        "sum", f"increase({scoped(selector, scope, suffix=suffix)}[{format_duration(step)}])", by.split(",")
    )


def aggregate(op: str, expr: str, grouping: Sequence[str] = ()) -> str:
    """`op by (grouping)(expr)`, or `op(expr)` without grouping labels."""
    labels = ",".join(g for g in grouping if g)
    return f"{op} by ({labels})({expr})" if labels else f"{op}({expr})"
