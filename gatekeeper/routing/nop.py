"""``nop``: an in-memory router. LOCAL STAND-IN: it changes no traffic anywhere.

For dry runs of a gate without a cluster and for the demo: it keeps a split (and an A/B match and a mirror)
in memory, behaves like the real routers (weight checks, the ``maxWeight`` cap, idempotence, one saved
original, a revert that never raises the canary's share, no mirror while the canary takes live traffic) and
logs every "write" with a ``[nop]`` marker so nobody mistakes it for a routing change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from gatekeeper.routing.base import (
    Change,
    RouteTarget,
    RoutingError,
    Split,
    cap_weight,
    check_max_weight,
    check_mirror,
    check_weight,
)
from gatekeeper.routing.match import Match

__all__ = ["NopRouter"]

log = logging.getLogger("gatekeeper.routing")


@dataclass(frozen=True)
class _State:
    canary: int
    mirror: float = 0.0
    match: Match | None = None


class NopRouter:
    """Keeps canary/stable weights in memory, starting at ``initial`` canary percent (default 0)."""

    def __init__(
        self,
        target: RouteTarget,
        api_client: Any = None,
        *,
        fence: Callable[[], None] | None = None,
        max_attempts: int = 1,
        max_weight: float | None = None,
        initial: int = 0,
        writer: str = "",
    ) -> None:
        if target.kind != "nop":
            raise RoutingError(f"NopRouter handles kind 'nop', not {target.kind!r}")
        del api_client, max_attempts, writer  # nothing to talk to, nothing to race with
        self.target = target
        self.max_weight = check_max_weight(max_weight)
        self._fence = fence
        self._state = _State(check_weight(initial))
        self._original: _State | None = None
        self._version = 1

    def read(self) -> Split:
        s = self._state
        return Split(
            s.canary,
            100 - s.canary,
            self.target.owner,
            str(self._version),
            self._original is not None,
            mirror_percent=s.mirror,
            match=s.match,
        )

    def set_weight(self, weight: int, *, dry_run: bool = False) -> Change:
        w = cap_weight(check_weight(weight), self.max_weight, self.target)
        if w > 0 and self._state.mirror > 0:
            raise RoutingError(
                f"{self.target.describe()}: the gate mirrors {self._state.mirror:g}% to the canary (a shadow "
                "stage); remove the mirror first (set_mirror(0)), then set the weight"
            )
        return self._move("set", replace(self._state, canary=w), dry_run=dry_run)

    def set_match(self, match: Match | None, *, dry_run: bool = False) -> Change:
        if match is not None and not isinstance(match, Match):
            raise RoutingError(f"match must be a Match or None, got {type(match).__name__}")
        return self._move("match", replace(self._state, match=match), dry_run=dry_run)

    def set_mirror(self, percent: float, *, dry_run: bool = False) -> Change:
        p = check_mirror(percent)
        if p > 0 and self._state.canary > 0:
            raise RoutingError(
                f"{self.target.describe()}: the canary takes live traffic (weight {self._state.canary}); a mirror "
                "is for a shadow stage. Set the weight to 0 first"
            )
        return self._move("mirror", replace(self._state, mirror=p), dry_run=dry_run)

    def revert(self, *, dry_run: bool = False) -> Change:
        if self._original is None:
            return self._move("revert", None, dry_run=dry_run)
        canary = min(self._original.canary, self._state.canary)  # a revert never raises the canary's share
        return self._move("revert", replace(self._original, canary=canary), dry_run=dry_run)

    def _move(
        self, action: Literal["set", "revert", "match", "mirror"], state: _State | None, *, dry_run: bool
    ) -> Change:
        before = self.read()
        if state is None or (state == self._state and not (action == "revert" and self._original)):
            return Change(self.target, action, before, before, written=False, dry_run=dry_run, attempts=1)
        if self._fence is not None:
            self._fence()
        kept, cur, ver = self._original, self._state, self._version
        self._original = None if action == "revert" else (self._original or self._state)
        self._state, self._version = state, self._version + 1
        after = self.read()
        if dry_run:
            self._original, self._state, self._version = kept, cur, ver
        log.info(
            "routing write %s [nop] %s%s: canary %d -> %d, mirror %g%% -> %g%%, match %s -> %s "
            "(local stand-in, no traffic moved)",
            action, self.target.describe(), " [dry run]" if dry_run else "", before.canary_weight,
            state.canary, before.mirror_percent, state.mirror,
            before.match.describe() if before.match else "none", state.match.describe() if state.match else "none",
        )  # fmt: skip
        return Change(self.target, action, before, after, written=True, dry_run=dry_run, attempts=1)
