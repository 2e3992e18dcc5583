"""What the Keptn v1 and v2 importers share: the gate in `mode: keptn`, threshold bounds from absolute
criteria, whether a value meets criteria, and percentages as Keptn writes them."""

from __future__ import annotations

import math
from typing import Any

from gatekeeper.importers.common import FAIL_CLOSED_BOUND, bounds, slug
from gatekeeper.judge.keptn import parse_criterion


def absolute_bounds(entries: list[str]) -> dict[str, float]:
    """min/max from single absolute criteria (what a threshold can say); the placeholder bound otherwise."""
    lo, hi, lo_c, hi_c = -math.inf, math.inf, True, True
    for e in entries:
        if "||" in e:
            continue
        c = parse_criterion(e)
        if c.relative:
            continue
        if c.op in (">", ">=", "=") and (c.value > lo or (c.value == lo and c.op == ">")):
            lo, lo_c = c.value, c.op != ">"
        if c.op in ("<", "<=", "=") and (c.value < hi or (c.value == hi and c.op == "<")):
            hi, hi_c = c.value, c.op != "<"
    b = bounds(lo, hi, lo_closed=lo_c, hi_closed=hi_c)
    return b if b and b.get("min", -math.inf) <= b.get("max", math.inf) else dict(FAIL_CLOSED_BOUND)


def keptn_gate(
    name: str,
    description: str,
    signals: list,
    scoring: dict,
    args: dict[str, str | None],
    scopes: dict | None,
) -> dict[str, Any]:
    gate: dict[str, Any] = {
        "apiVersion": "gatekeeper.dev/v1alpha1",
        "kind": "Gate",
        "name": slug(name),
        "description": description,
        "mode": "keptn",
    }
    if args:
        gate["args"] = [
            {"name": k, **({"value": v} if v is not None else {})} for k, v in sorted(args.items())
        ]
    gate["scopes"] = scopes or {"canary": {"deployment": "canary"}, "baseline": {"deployment": "primary"}}
    gate["scoring"] = scoring
    gate["signals"] = signals
    return gate


def meets(entries: list[str], value: float) -> bool:
    """Whether an absolute value meets the criteria when the baseline is the same value (the fallback case)."""
    return (
        all(any(parse_criterion(a).holds(value, value) for a in e.split("||")) for e in entries)
        if entries
        else True
    )


def percent(value: Any) -> float | None:
    try:
        return float(str(value).strip().rstrip("%"))
    except ValueError:
        return None
