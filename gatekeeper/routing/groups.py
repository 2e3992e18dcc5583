"""Finding the canary/stable pair in the lists of backends of a routing resource (shared by the CRD kinds)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gatekeeper.routing.base import RouteTarget, RoutingError
from gatekeeper.routing.kube_router import Slot

__all__ = ["managed_groups", "pair_indices"]


def managed_groups(
    target: RouteTarget,
    lists: Iterable[tuple[int, Sequence[dict[str, Any]]]],
    *,
    match: Callable[[dict[str, Any], str], bool],
    path: Callable[[int, int], str],
    value: Callable[[dict[str, Any]], Any],
    where: str,
) -> list[Slot]:
    """Weight slots of every list (rule/route) that references both backends exactly once.

    ``RoutingError`` when no list has both (naming which backend is missing and what was found) or when one
    list names a backend twice (ambiguous).
    """
    slots: list[Slot] = []
    seen: set[str] = set()
    found: list[str] = []
    for i, items in lists:
        canary = [j for j, it in enumerate(items) if match(it, target.canary)]
        stable = [j for j, it in enumerate(items) if match(it, target.stable)]
        found += [str(n) for n in _names(items)]
        seen |= {target.canary} if canary else set()
        seen |= {target.stable} if stable else set()
        if len(canary) > 1 or len(stable) > 1:
            raise RoutingError(
                f"{target.describe()}: {where} #{i} names the same backend more than once; "
                "gatekeeper cannot tell which entry to weigh, merge the duplicates"
            )
        if canary and stable:
            slots.append(Slot(path(i, canary[0]), "canary", value(items[canary[0]])))
            slots.append(Slot(path(i, stable[0]), "stable", value(items[stable[0]])))
    if not slots:
        missing = [b for b in (target.canary, target.stable) if b not in seen]
        what = (
            f"does not reference backend {' or '.join(repr(m) for m in missing)}"
            if missing
            else "has no single entry that references both backends"
        )
        have = ", ".join(sorted(set(found))) or "none"
        raise RoutingError(
            f"{target.describe()} {what} in {where} (it has: {have}); "
            "fix --canary/--stable or the resource so one list names both"
        )
    return slots


def pair_indices(
    target: RouteTarget,
    lists: Iterable[tuple[int, Sequence[dict[str, Any]]]],
    *,
    match: Callable[[dict[str, Any], str], bool],
) -> list[int]:
    """Indices of the lists that reference both backends (call ``managed_groups`` first for its errors)."""
    return [
        i
        for i, items in lists
        if any(match(it, target.canary) for it in items) and any(match(it, target.stable) for it in items)
    ]


def _names(items: Sequence[dict[str, Any]]) -> Iterable[Any]:
    for it in items:
        yield it.get("name") or it.get("service") or (it.get("destination") or {}).get("host")
