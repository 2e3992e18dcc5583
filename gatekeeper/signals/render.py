"""Render queries: add an arm's scope to a selector, fill reserved variables. Unknown variables are errors."""

from __future__ import annotations

import re

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


def increase(selector: str, scope: dict[str, str], step: float, *, by: str = "", suffix: str = "") -> str:
    """`sum(increase(sel{scope}[step]))`: per-step event counts from a counter (resets handled by Prometheus)."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping}(increase({scoped(selector, scope, suffix=suffix)}[{format_duration(step)}]))"
