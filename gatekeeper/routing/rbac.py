"""The Kubernetes RBAC rules each router needs: one truth for the Helm chart's Role and the RBAC tests.

gatekeeper reads and JSON-patches its routing resources and watches them; it never creates, updates (PUT)
or deletes them. It also reads (never writes) the objects a router checks before adding exposure: Istio
DestinationRules (subset splits) and, for NGINX, the primary Ingresses (covered by the Ingress rule). ``nop``
needs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gatekeeper.routing.base import APIS, KINDS, RoutingError

__all__ = ["READS", "READ_VERBS", "ROUTER_VERBS", "Rule", "role_rules", "rules_for"]

ROUTER_VERBS: tuple[str, ...] = ("get", "list", "watch", "patch")
READ_VERBS: tuple[str, ...] = ("get", "list", "watch")
# Read-only companions a router lists before a write (kind -> (group, plural)).
READS: dict[str, tuple[tuple[str, str], ...]] = {"istio": (("networking.istio.io", "destinationrules"),)}


@dataclass(frozen=True)
class Rule:
    """One RBAC PolicyRule."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }


def rules_for(kind: str) -> tuple[Rule, ...]:
    """The rules a router of ``kind`` needs (empty for ``nop``)."""
    if kind not in KINDS:
        raise RoutingError(f"routing kind {kind!r} is unknown; use one of: {', '.join(KINDS)}")
    api = APIS.get(kind)
    if api is None:
        return ()
    reads = tuple(Rule((g,), (p,), READ_VERBS) for g, p in READS.get(kind, ()))
    return (Rule((api.group,), (api.plural,), ROUTER_VERBS), *reads)


def role_rules(kinds: Iterable[str] = tuple(KINDS)) -> list[dict[str, Any]]:
    """``rules:`` of a Role for the given kinds, as plain data (chart templates and tests)."""
    return [r.as_dict() for k in dict.fromkeys(kinds) for r in rules_for(k)]
