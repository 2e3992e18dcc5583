"""Istio ``VirtualService``: the weights of the canary and stable destinations of each ``http`` route.

By host (the default): a destination matches a backend when ``destination.host`` is the backend name, or its
short name expanded in the resource's namespace (``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.cluster.local``).
By subset (``RouteTarget.host`` set): one host, and the canary and stable are two ``subset``s of it; before a
write that adds exposure, a DestinationRule in the namespace for that host must define both subsets (else
Envoy answers 503 for an undefined subset). An absent weight reads as 0; gatekeeper writes W and 100 - W, so
with only the two managed destinations the sum stays 100 as Istio requires.

A/B (``set_match``): before each managed route, a route named ``gatekeeper-ab-<gate>`` with the managed
route's ``match`` entries (or one empty entry), each plus the match's ``headers`` (``exact``; a cookie as a
``regex`` on ``cookie``), and the canary destination alone. Istio takes the first route that matches.

Mirror (``set_mirror``): ``mirror`` (the canary destination's host, subset and port) and
``mirrorPercentage.value`` on each managed route; a route that already mirrors elsewhere, or uses the
``mirrors`` list or the deprecated ``mirrorPercent``, is refused rather than changed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from gatekeeper.routing.base import Api, RoutingError
from gatekeeper.routing.features import Mirroring, RuleMatch, ab_conditions
from gatekeeper.routing.groups import managed_groups, pair_indices
from gatekeeper.routing.kube_router import ABSENT, KubeRouter, Slot, pointer
from gatekeeper.routing.match import Match

__all__ = ["DESTINATION_RULES", "IstioRouter"]

DESTINATION_RULES = Api(
    "networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "destinationrules", "DestinationRule"
)


class IstioRouter(RuleMatch, Mirroring, KubeRouter):
    kind = "istio"
    rules_at = ("spec", "http")

    def _host_is(self, host: Any, name: str) -> bool:
        ns = self.target.namespace
        return host == name or (
            "." not in name and host in (f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local")
        )

    def _is(self, dest: dict[str, Any], name: str) -> bool:
        d = dest.get("destination") or {}
        if self.target.host is None:
            return self._host_is(d.get("host"), name)
        return self._host_is(d.get("host"), self.target.host) and d.get("subset") == name

    def _lists(self, obj: dict[str, Any]) -> list[tuple[int, list[dict[str, Any]]]]:
        return [(i, r.get("route") or []) for i, r in enumerate(self._rules(obj))]

    def slots(self, obj: dict[str, Any]) -> list[Slot]:
        lists = self._lists(obj)
        where = "spec.http[].route" + (f" (subsets of host {self.target.host!r})" if self.target.host else "")
        slots = managed_groups(
            self.target,
            lists,
            match=self._is,
            path=lambda i, j: pointer("spec", "http", i, "route", j, "weight"),
            value=lambda d: d.get("weight", ABSENT),
            where=where,
        )
        rules = self._rules(obj)
        for i in pair_indices(self.target, lists, match=self._is):
            slots.append(Slot(pointer("spec", "http", i, "mirror"), "mirror", rules[i].get("mirror", ABSENT)))
            slots.append(
                Slot(
                    pointer("spec", "http", i, "mirrorPercentage"),
                    "mirror-percent",
                    rules[i].get("mirrorPercentage", ABSENT),
                )
            )
        return slots

    def managed_rules(self, obj: dict[str, Any]) -> list[int]:
        return pair_indices(self.target, self._lists(obj), match=self._is)

    def _canary(self, route: dict[str, Any]) -> dict[str, Any]:
        return next(d for d in route.get("route") or [] if self._is(d, self.target.canary))

    # -- mirror --------------------------------------------------------------------------------------------
    def _mirrors_canary(self, mirror: Any) -> bool:
        return (
            mirror is not ABSENT
            and isinstance(mirror, dict)
            and self._is({"destination": mirror}, self.target.canary)
        )

    def mirror_of(self, slots: Sequence[Slot]) -> float:
        mirror = next((s.value for s in slots if s.role == "mirror"), ABSENT)
        if not self._mirrors_canary(mirror):
            return 0.0
        pct = next((s.value for s in slots if s.role == "mirror-percent"), ABSENT)
        return 100.0 if pct is ABSENT else float((pct or {}).get("value", 0.0))

    def mirror_want(self, obj: dict[str, Any], slots: Sequence[Slot], percent: float) -> dict[str, Any]:
        rules, want = self._rules(obj), {}
        for slot in (s for s in slots if s.role == "mirror"):
            i = int(slot.path.split("/")[3])
            route, where = rules[i], f"{self.target.describe()} spec.http[{i}]"
            if route.get("mirrors"):
                raise RoutingError(
                    f"{where} uses the 'mirrors' list; gatekeeper writes 'mirror' and will not mix them"
                )
            for old in ("mirrorPercent", "mirror_percent"):
                if old in route:
                    raise RoutingError(
                        f"{where} has the deprecated {old!r}; replace it with mirrorPercentage"
                    )
            if slot.value is not ABSENT and not self._mirrors_canary(slot.value):
                raise RoutingError(
                    f"{where} already mirrors to {slot.value.get('host')!r}; Istio allows one mirror, remove it first"
                )
            dest = self._canary(route)["destination"]
            want[slot.path] = {k: copy.deepcopy(dest[k]) for k in ("host", "subset", "port") if k in dest}
            want[pointer("spec", "http", i, "mirrorPercentage")] = {"value": percent}
        return want

    # -- A/B rules -----------------------------------------------------------------------------------------
    def ab_rule(self, managed: dict[str, Any], match: Match, name: str) -> dict[str, Any]:
        drop = {"name", "route", "match"}
        if self._mirrors_canary(managed.get("mirror", ABSENT)):
            drop |= {"mirror", "mirrorPercentage"}
        rule = {k: copy.deepcopy(v) for k, v in managed.items() if k not in drop}
        rule["name"] = name
        matches = []
        for m in managed.get("match") or [{}]:
            headers = copy.deepcopy(m.get("headers") or {})
            conds = ab_conditions(match, where=f"{self.target.describe()} route", names=list(headers))
            headers.update({n: {how: v} for n, how, v in conds})
            matches.append({**copy.deepcopy(m), "headers": headers})
        rule["match"] = matches
        only = copy.deepcopy(self._canary(managed))
        only.pop("weight", None)  # the only destination gets all of the route's traffic
        rule["route"] = [only]
        return rule

    def match_headers(self, rule: dict[str, Any]) -> dict[str, tuple[str, str]]:
        first = (rule.get("match") or [{}])[0]
        out: dict[str, tuple[str, str]] = {}
        for name, cond in (first.get("headers") or {}).items():
            for how in ("exact", "regex", "prefix"):
                if isinstance(cond, dict) and how in cond:
                    out[str(name).lower()] = (how, str(cond[how]))
        return out

    # -- subsets -------------------------------------------------------------------------------------------
    def precheck(self, obj: dict[str, Any]) -> None:
        host = self.target.host
        if host is None:
            return
        defined: set[str] = set()
        names: list[str] = []
        for dr in self._list(DESTINATION_RULES):
            if self._host_is((dr.get("spec") or {}).get("host"), host):
                names.append(dr["metadata"]["name"])
                defined |= {s.get("name") for s in (dr.get("spec") or {}).get("subsets") or []}
        missing = [s for s in (self.target.canary, self.target.stable) if s not in defined]
        if missing:
            found = f"DestinationRule {', '.join(names)} defines {', '.join(sorted(defined)) or 'no subsets'}"
            raise RoutingError(
                f"{self.target.describe()}: no DestinationRule in namespace {self.target.namespace!r} for host "
                f"{host!r} defines subset {' or '.join(repr(m) for m in missing)} "
                f"({found if names else 'there is none for that host'}); Envoy would answer 503 for it. "
                "Add the subset to the DestinationRule or fix --canary/--stable"
            )
