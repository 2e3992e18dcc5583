"""NGINX Ingress canary: the ``canary`` and ``canary-weight`` annotations of the *canary* Ingress.

ingress-nginx splits traffic between a primary Ingress (to the stable Service) and a second Ingress for the
same host annotated ``nginx.ingress.kubernetes.io/canary: "true"`` and ``canary-weight: "W"`` (out of
``canary-weight-total``, default 100). The target names the canary Ingress; it must route to the canary
Service and must not route to the stable one (that would be the primary). ingress-nginx applies a canary
Ingress only beside a primary Ingress for the same host and path, so before a write that adds exposure a
primary (not a canary) Ingress in the namespace must route each host/path of the canary Ingress to the stable
Service. A weight becomes ``floor(W * total / 100)``: rounding never gives the canary more than W percent.

A/B (``set_match``): ``canary-by-header`` + ``canary-by-header-value`` (one header) and ``canary-by-cookie``
(ingress-nginx sends a request to the canary when that cookie is ``always``, so the cookie value must be
``always``). ``set_match(None)`` restores those annotations to the saved original. The original annotations
are saved with the spec; revert restores them exactly (removing ones that were absent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gatekeeper.routing.base import APIS, ORIGINAL_ANNOTATION, Change, RoutingError
from gatekeeper.routing.kube_router import ABSENT, KubeRouter, Plan, Slot, diff, pointer
from gatekeeper.routing.match import Match

__all__ = ["BY_COOKIE", "BY_HEADER", "BY_HEADER_VALUE", "CANARY", "TOTAL", "WEIGHT", "NginxRouter"]

CANARY = "nginx.ingress.kubernetes.io/canary"
WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
TOTAL = "nginx.ingress.kubernetes.io/canary-weight-total"
BY_HEADER = "nginx.ingress.kubernetes.io/canary-by-header"
BY_HEADER_VALUE = "nginx.ingress.kubernetes.io/canary-by-header-value"
BY_COOKIE = "nginx.ingress.kubernetes.io/canary-by-cookie"
_MATCH_KEYS = {BY_HEADER: "by-header", BY_HEADER_VALUE: "by-header-value", BY_COOKIE: "by-cookie"}


def _ann(key: str) -> str:
    return pointer("metadata", "annotations", key)


def _routes(spec: dict[str, Any], service: str) -> set[tuple[str, str]]:
    """(host, path) pairs the Ingress sends to ``service`` (``*``/``*`` for its default backend)."""
    out = set()
    if ((spec.get("defaultBackend") or {}).get("service") or {}).get("name") == service:
        out.add(("*", "*"))
    for rule in spec.get("rules") or []:
        for p in (rule.get("http") or {}).get("paths") or []:
            if ((p.get("backend") or {}).get("service") or {}).get("name") == service:
                out.add((rule.get("host") or "*", p.get("path") or "/"))
    return out


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
    split_annotations = (CANARY, WEIGHT, BY_HEADER, BY_HEADER_VALUE, BY_COOKIE)

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
            Slot(_ann(CANARY), "flag", ann.get(CANARY, ABSENT)),
            Slot(_ann(WEIGHT), "canary", ann.get(WEIGHT, ABSENT)),
            Slot(_ann(TOTAL), "total", ann.get(TOTAL, ABSENT)),
            *(Slot(_ann(k), role, ann.get(k, ABSENT)) for k, role in _MATCH_KEYS.items()),
        ]

    def _total(self, slots: Sequence[Slot]) -> int:
        v = next(s.value for s in slots if s.role == "total")
        total = 100 if v is ABSENT else _int(v, TOTAL, self.target.describe())
        if total <= 0:
            raise RoutingError(f"{self.target.describe()}: annotation {TOTAL} must be positive, got {total}")
        return total

    def desired(self, slots: Sequence[Slot], weight: int) -> dict[str, Any]:
        total = self._total(slots)
        return {_ann(CANARY): "true", _ann(WEIGHT): str(weight * total // 100)}

    def weights(self, slots: Sequence[Slot]) -> tuple[int, int]:
        total = self._total(slots)
        flag = next(s.value for s in slots if s.role == "flag")
        raw = next(s.value for s in slots if s.role == "canary")
        on = flag is not ABSENT and str(flag).strip().lower() == "true"
        canary = 0 if not on or raw is ABSENT else _int(raw, WEIGHT, self.target.describe())
        return canary, total - canary

    # -- A/B by annotations --------------------------------------------------------------------------------
    def set_match(self, match: Match | None, *, dry_run: bool = False) -> Change:
        if match is not None and not isinstance(match, Match):
            raise RoutingError(f"match must be a Match or None, got {type(match).__name__}")
        where = self.target.describe()
        if match is not None and len(match.headers) > 1:
            raise RoutingError(f"{where}: ingress-nginx matches one canary header, got {match.describe()}")
        if match is not None and match.cookie is not None and match.cookie[1] != "always":
            raise RoutingError(
                f"{where}: ingress-nginx sends a request to the canary when cookie {match.cookie[0]!r} is "
                f"'always', not {match.cookie[1]!r}; use --cookie {match.cookie[0]}=always"
            )

        def plan(obj: dict[str, Any], slots: list[Slot]) -> Plan:
            if match is None:
                saved = (obj["metadata"].get("annotations") or {}).get(ORIGINAL_ANNOTATION)
                if saved is None:
                    return Plan([])
                now, old = self._pairs(obj, saved)
                want = {
                    s.path: o.value for s, o in zip(now, old, strict=True) if s.role in _MATCH_KEYS.values()
                }
            else:
                header = match.headers[0] if match.headers else (ABSENT, ABSENT)
                want = {
                    _ann(CANARY): "true",
                    _ann(BY_HEADER): header[0],
                    _ann(BY_HEADER_VALUE): header[1],
                    _ann(BY_COOKIE): match.cookie[0] if match.cookie else ABSENT,
                }
            return Plan(self._with_original(obj, diff(slots, want)), want)

        return self._write("match", plan, dry_run=dry_run, check=match is not None)

    def match_of(self, obj: dict[str, Any]) -> Match | None:
        ann = obj["metadata"].get("annotations") or {}
        header, cookie = ann.get(BY_HEADER), ann.get(BY_COOKIE)
        if str(ann.get(CANARY, "")).strip().lower() != "true" or (not header and not cookie):
            return None
        try:
            return Match(
                ((header.lower(), ann.get(BY_HEADER_VALUE) or "always"),) if header else (),
                (cookie, "always") if cookie else None,
            )
        except RoutingError:
            return None

    # -- the primary Ingress -------------------------------------------------------------------------------
    def precheck(self, obj: dict[str, Any]) -> None:
        t = self.target
        spec = obj.get("spec") or {}
        wanted = _routes(spec, t.canary)
        cls = spec.get("ingressClassName")
        served: set[tuple[str, str]] = set()
        seen: list[str] = []
        for ing in self._list(APIS["nginx"]):
            meta, other = ing["metadata"], ing.get("spec") or {}
            flag = str((meta.get("annotations") or {}).get(CANARY, "")).strip().lower()
            if meta["name"] == t.name or flag == "true":
                continue
            if cls and other.get("ingressClassName") and other["ingressClassName"] != cls:
                continue
            routes = _routes(other, t.stable)
            served |= routes
            seen += [f"{meta['name']} ({h}{p})" for h, p in sorted(routes)]
        missing = sorted(wanted - served)
        if missing:
            raise RoutingError(
                f"{t.describe()}: no primary Ingress in namespace {t.namespace!r} routes "
                f"{', '.join(h + p for h, p in missing)} to the stable Service {t.stable!r} "
                f"(primaries to it: {', '.join(seen) or 'none'}); ingress-nginx ignores a canary Ingress without "
                "a primary for the same host and path. Create the primary or fix --stable"
            )
