"""SMI ``TrafficSplit`` (``split.smi-spec.io``): the weights of the canary and stable ``spec.backends``.

Served versions differ by mesh (OSM serves only v1alpha2); the table in ``base.APIS`` lists them. The
backend shape ``{service, weight}`` with an integer weight is the same in v1alpha2..v1alpha4.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.routing.groups import managed_groups
from gatekeeper.routing.kube_router import ABSENT, KubeRouter, Slot, pointer

__all__ = ["SmiRouter"]


class SmiRouter(KubeRouter):
    kind = "smi"

    def slots(self, obj: dict[str, Any]) -> list[Slot]:
        backends = (obj.get("spec") or {}).get("backends") or []
        return managed_groups(
            self.target,
            [(0, backends)],
            match=lambda b, name: b.get("service") == name,
            path=lambda _i, j: pointer("spec", "backends", j, "weight"),
            value=lambda b: b.get("weight", ABSENT),
            where="spec.backends",
        )
