"""Istio ``VirtualService``: the weights of the canary and stable destinations of each ``http`` route.

A destination matches a backend when ``destination.host`` is the backend name, or its short name expanded in
the resource's namespace (``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.cluster.local``). Subset-based splits (one
host, two subsets) are not handled yet. An absent weight reads as 0; gatekeeper writes W and 100 - W, so with
only the two managed destinations the sum stays 100 as Istio requires.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.routing.engine import ABSENT, KubeRouter, Slot, pointer
from gatekeeper.routing.groups import managed_groups

__all__ = ["IstioRouter"]


class IstioRouter(KubeRouter):
    kind = "istio"

    def slots(self, obj: dict[str, Any]) -> list[Slot]:
        ns = self.target.namespace

        def match(dest: dict[str, Any], name: str) -> bool:
            host = (dest.get("destination") or {}).get("host")
            return host == name or (
                "." not in name
                and host in (f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local")
            )

        http = (obj.get("spec") or {}).get("http") or []
        return managed_groups(
            self.target,
            [(i, r.get("route") or []) for i, r in enumerate(http)],
            match=match,
            path=lambda i, j: pointer("spec", "http", i, "route", j, "weight"),
            value=lambda d: d.get("weight", ABSENT),
            where="spec.http[].route",
        )
