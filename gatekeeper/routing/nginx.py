"""NGINX Ingress canary: the ``canary`` and ``canary-weight`` annotations of the *canary* Ingress.

ingress-nginx splits traffic between a primary Ingress (to the stable Service) and a second Ingress for the
same host annotated ``nginx.ingress.kubernetes.io/canary: "true"`` and ``canary-weight: "W"`` (out of
``canary-weight-total``, default 100). The target names the canary Ingress; it must route to the canary
Service and must not route to the stable one (that would be the primary). The original annotations are
saved with the spec; revert restores them exactly (removing ones that were absent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gatekeeper.routing.base import RoutingError
from gatekeeper.routing.engine import ABSENT, KubeRouter, Slot, pointer

__all__ = ["CANARY", "TOTAL", "WEIGHT", "NginxRouter"]

CANARY = "nginx.ingress.kubernetes.io/canary"
WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
TOTAL = "nginx.ingress.kubernetes.io/canary-weight-total"


def _services(spec: dict[str, Any]) -> set[str]:
    names = {((spec.get("defaultBackend") or {}).get("service") or {}).get("name")}
    for rule in spec.get("rules") or []:
        for p in (rule.get("http") or {}).get("paths") or []:
            names.add(((p.get("backend") or {}).get("service") or {}).get("name"))
    return {n for n in names if n}


def _int(value: Any, key: str, where: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise RoutingError(
            f"{where}: annotation {key} is {value!r}, not a whole number; fix the annotation"
        ) from None


class NginxRouter(KubeRouter):
    kind = "nginx"
    split_annotations = (CANARY, WEIGHT)

    def slots(self, obj: dict[str, Any]) -> list[Slot]:
        t = self.target
        services = _services(obj.get("spec") or {})
        if t.canary not in services:
            raise RoutingError(
                f"{t.describe()} does not route to the canary Service {t.canary!r} (it routes to: "
                f"{', '.join(sorted(services)) or 'none'}); name the canary Ingress or fix --canary"
            )
        if t.stable in services:
            raise RoutingError(
                f"{t.describe()} routes to the stable Service {t.stable!r}: that is the primary Ingress; "
                "name the separate canary Ingress of the same host instead"
            )
        ann = obj["metadata"].get("annotations") or {}
        return [
            Slot(pointer("metadata", "annotations", CANARY), "flag", ann.get(CANARY, ABSENT)),
            Slot(pointer("metadata", "annotations", WEIGHT), "canary", ann.get(WEIGHT, ABSENT)),
            Slot(pointer("metadata", "annotations", TOTAL), "total", ann.get(TOTAL, ABSENT)),
        ]

    def _total(self, slots: Sequence[Slot]) -> int:
        v = next(s.value for s in slots if s.role == "total")
        total = 100 if v is ABSENT else _int(v, TOTAL, self.target.describe())
        if total <= 0:
            raise RoutingError(f"{self.target.describe()}: annotation {TOTAL} must be positive, got {total}")
        return total

    def desired(self, slots: Sequence[Slot], weight: int) -> dict[str, Any]:
        total = self._total(slots)
        return {
            pointer("metadata", "annotations", CANARY): "true",
            pointer("metadata", "annotations", WEIGHT): str(round(weight * total / 100)),
        }

    def weights(self, slots: Sequence[Slot]) -> tuple[int, int]:
        total = self._total(slots)
        flag = next(s.value for s in slots if s.role == "flag")
        raw = next(s.value for s in slots if s.role == "canary")
        on = flag is not ABSENT and str(flag).strip().lower() == "true"
        canary = 0 if not on or raw is ABSENT else _int(raw, WEIGHT, self.target.describe())
        return canary, total - canary
