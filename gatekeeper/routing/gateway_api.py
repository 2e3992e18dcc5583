"""Gateway API ``HTTPRoute``: the weights of the canary and stable ``backendRefs``.

Every rule whose ``backendRefs`` name both Services is managed (all get the same weights); rules naming
neither, or only one of them (e.g. a header match sent to the canary), are left alone. A backendRef matches a
backend when its ``name`` is the Service name and its ``kind``/``group`` are absent or ``Service``/core.
Weights are relative; gatekeeper writes canary W and stable 100 - W. The CRD defaults an absent weight to 1.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.routing.engine import ABSENT, KubeRouter, Slot, pointer
from gatekeeper.routing.groups import managed_groups

__all__ = ["GatewayApiRouter"]


def _is_service(ref: dict[str, Any], name: str) -> bool:
    return bool(
        ref.get("name") == name
        and ref.get("kind", "Service") == "Service"
        and ref.get("group", "") in ("", "core")
    )


class GatewayApiRouter(KubeRouter):
    kind = "gateway-api"
    absent_weight = 1  # the CRD default

    def slots(self, obj: dict[str, Any]) -> list[Slot]:
        rules = (obj.get("spec") or {}).get("rules") or []
        lists = [(i, r.get("backendRefs") or []) for i, r in enumerate(rules)]
        return managed_groups(
            self.target,
            lists,
            match=_is_service,
            path=lambda i, j: pointer("spec", "rules", i, "backendRefs", j, "weight"),
            value=lambda ref: ref.get("weight", ABSENT),
            where="spec.rules[].backendRefs",
        )
