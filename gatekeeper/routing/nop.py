"""``nop``: an in-memory router. LOCAL STAND-IN: it changes no traffic anywhere.

For dry runs of a gate without a cluster and for the demo: it keeps a split in memory, behaves like the
real routers (weight checks, idempotence, one saved original, revert) and logs every "write" with a
``[nop]`` marker so nobody mistakes it for a routing change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from gatekeeper.routing.base import Change, RouteTarget, RoutingError, Split, check_weight

__all__ = ["NopRouter"]

log = logging.getLogger("gatekeeper.routing")


class NopRouter:
    """Keeps canary/stable weights in memory, starting at ``initial`` canary percent (default 0)."""

    def __init__(
        self,
        target: RouteTarget,
        api_client: Any = None,
        *,
        fence: Callable[[], None] | None = None,
        max_attempts: int = 1,
        initial: int = 0,
    ) -> None:
        if target.kind != "nop":
            raise RoutingError(f"NopRouter handles kind 'nop', not {target.kind!r}")
        del api_client, max_attempts  # nothing to talk to, nothing to race with
        self.target = target
        self._fence = fence
        self._canary = check_weight(initial)
        self._original: int | None = None
        self._version = 1

    def read(self) -> Split:
        return Split(
            self._canary,
            100 - self._canary,
            self.target.owner,
            str(self._version),
            self._original is not None,
        )

    def set_weight(self, weight: int, *, dry_run: bool = False) -> Change:
        return self._move("set", check_weight(weight), dry_run=dry_run)

    def revert(self, *, dry_run: bool = False) -> Change:
        return self._move("revert", self._original, dry_run=dry_run)

    def _move(self, action: Literal["set", "revert"], weight: int | None, *, dry_run: bool) -> Change:
        before = self.read()
        if weight is None or weight == self._canary:
            return Change(self.target, action, before, before, written=False, dry_run=dry_run, attempts=1)
        if self._fence is not None:
            self._fence()
        after = Split(weight, 100 - weight, self.target.owner, str(self._version + 1), action == "set")
        if not dry_run:
            if action == "set" and self._original is None:
                self._original = self._canary
            elif action == "revert":
                self._original = None
            self._canary, self._version = weight, self._version + 1
            after = self.read()
        log.info(
            "routing write %s [nop] %s%s: canary %d -> %d (local stand-in, no traffic moved)",
            action, self.target.describe(), " [dry run]" if dry_run else "", before.canary_weight, weight,
        )  # fmt: skip
        return Change(self.target, action, before, after, written=True, dry_run=dry_run, attempts=1)
