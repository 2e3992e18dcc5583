"""Gateway API ``HTTPRoute``: the weights of the canary and stable ``backendRefs``, A/B rules and mirroring.

Every rule whose ``backendRefs`` name both Services is managed (all get the same weights); rules naming
neither, or only one of them, are left alone. A backendRef matches a backend when its ``name`` is the Service
name and its ``kind``/``group`` are absent or ``Service``/core. Weights are relative; gatekeeper writes canary
W and stable 100 - W. The CRD defaults an absent weight to 1.

A/B (``set_match``): before each managed rule, a rule named ``gatekeeper-ab-<gate>`` with the managed rule's
``matches``, each plus the match's ``headers`` (``Exact``; a cookie as a ``RegularExpression`` on the
``cookie`` header), the managed rule's filters, and the canary backendRef alone (weight 1). Gateway API gives
the rule with more header matches precedence, so matching requests go to the canary.

Mirror (``set_mirror``): a ``RequestMirror`` filter to the canary Service in each managed rule's ``filters``
(``percent``, or ``fraction`` out of 10000 for a non-whole percent). The ``filters`` list is the owned slot;
other filters in it are kept as they are, and the list is removed again if gatekeeper created it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from gatekeeper.routing.base import RoutingError
from gatekeeper.routing.features import Mirroring, RuleMatch, ab_conditions
from gatekeeper.routing.groups import managed_groups, pair_indices
from gatekeeper.routing.kube_router import ABSENT, KubeRouter, Slot, pointer
from gatekeeper.routing.match import Match

__all__ = ["GatewayApiRouter"]

_DEFAULT_MATCH = {"path": {"type": "PathPrefix", "value": "/"}}  # the CRD's default for absent matches


def _is_service(ref: dict[str, Any], name: str) -> bool:
    return bool(
        ref.get("name") == name
        and ref.get("kind", "Service") == "Service"
        and ref.get("group", "") in ("", "core")
    )


class GatewayApiRouter(RuleMatch, Mirroring, KubeRouter):
    kind = "gateway-api"
    absent_weight = 1  # the CRD default
    rules_at = ("spec", "rules")

    def _lists(self, obj: dict[str, Any]) -> list[tuple[int, list[dict[str, Any]]]]:
        return [(i, r.get("backendRefs") or []) for i, r in enumerate(self._rules(obj))]

    def slots(self, obj: dict[str, Any]) -> list[Slot]:
        lists = self._lists(obj)
        slots = managed_groups(
            self.target,
            lists,
            match=_is_service,
            path=lambda i, j: pointer("spec", "rules", i, "backendRefs", j, "weight"),
            value=lambda ref: ref.get("weight", ABSENT),
            where="spec.rules[].backendRefs",
        )
        rules = self._rules(obj)
        for i in pair_indices(self.target, lists, match=_is_service):
            slots.append(
                Slot(pointer("spec", "rules", i, "filters"), "mirror", rules[i].get("filters", ABSENT))
            )
        return slots

    def managed_rules(self, obj: dict[str, Any]) -> list[int]:
        return pair_indices(self.target, self._lists(obj), match=_is_service)

    # -- mirror --------------------------------------------------------------------------------------------
    def _mirrors(self, filters: Any) -> list[int]:
        if filters is ABSENT:
            return []
        return [
            k
            for k, f in enumerate(filters)
            if f.get("type") == "RequestMirror"
            and _is_service((f.get("requestMirror") or {}).get("backendRef") or {}, self.target.canary)
        ]

    def mirror_of(self, slots: Sequence[Slot]) -> float:
        slot = next((s for s in slots if s.role == "mirror"), None)
        ks = [] if slot is None else self._mirrors(slot.value)
        if not ks:
            return 0.0
        rm = slot.value[ks[0]].get("requestMirror") or {}  # type: ignore[union-attr]
        if "percent" in rm:
            return float(rm["percent"])
        if "fraction" in rm:
            f = rm["fraction"]
            return round(100.0 * float(f.get("numerator", 0)) / float(f.get("denominator", 100) or 100), 4)
        return 100.0

    def mirror_want(self, obj: dict[str, Any], slots: Sequence[Slot], percent: float) -> dict[str, Any]:
        rules, want = self._rules(obj), {}
        share: dict[str, Any] = (
            {"percent": int(percent)}
            if float(percent).is_integer()
            else {"fraction": {"numerator": round(percent * 100), "denominator": 10000}}
        )
        for slot in (s for s in slots if s.role == "mirror"):
            i = int(slot.path.split("/")[3])
            ks = self._mirrors(slot.value)
            if len(ks) > 1:
                raise RoutingError(
                    f"{self.target.describe()}: spec.rules[{i}] mirrors to {self.target.canary!r} more than once; "
                    "gatekeeper cannot tell which to set, keep one"
                )
            ref = next(r for r in rules[i]["backendRefs"] if _is_service(r, self.target.canary))
            target = {"group": "", "kind": "Service"} | {
                k: ref[k] for k in ("group", "kind", "name", "namespace", "port") if k in ref
            }
            mirror = {"type": "RequestMirror", "requestMirror": {"backendRef": target, **share}}
            filters = [] if slot.value is ABSENT else copy.deepcopy(slot.value)
            if ks:
                filters[ks[0]] = mirror
            else:
                filters.append(mirror)
            want[slot.path] = filters
        return want

    def restore(self, now: Slot, original: Slot) -> Any:
        if now.role != "mirror":
            return original.value
        cur = [] if now.value is ABSENT else copy.deepcopy(now.value)
        was = [] if original.value is ABSENT else original.value
        mine, theirs = self._mirrors(now.value), self._mirrors(original.value)
        if mine and theirs:
            cur[mine[0]] = copy.deepcopy(was[theirs[0]])
        elif mine:
            del cur[mine[0]]
        elif theirs:
            cur.append(copy.deepcopy(was[theirs[0]]))
        return ABSENT if not cur and original.value is ABSENT else cur

    # -- A/B rules -----------------------------------------------------------------------------------------
    def ab_rule(self, managed: dict[str, Any], match: Match, name: str) -> dict[str, Any]:
        rule = {
            k: copy.deepcopy(v) for k, v in managed.items() if k not in ("name", "backendRefs", "filters")
        }
        rule["name"] = name
        matches = []
        for m in managed.get("matches") or [_DEFAULT_MATCH]:
            headers = copy.deepcopy(m.get("headers") or [])
            conds = ab_conditions(
                match, where=f"{self.target.describe()} rule", names=[h.get("name", "") for h in headers]
            )
            headers += [
                {"name": n, "type": "Exact" if how == "exact" else "RegularExpression", "value": v}
                for n, how, v in conds
            ]
            matches.append({**copy.deepcopy(m), "headers": headers})
        rule["matches"] = matches
        filters = managed.get("filters") or []
        mine = set(self._mirrors(filters))
        kept = [copy.deepcopy(f) for k, f in enumerate(filters) if k not in mine]
        if kept:
            rule["filters"] = kept
        ref = copy.deepcopy(next(r for r in managed["backendRefs"] if _is_service(r, self.target.canary)))
        ref["weight"] = 1  # the only backend: any positive weight sends it everything
        rule["backendRefs"] = [ref]
        return rule

    def match_headers(self, rule: dict[str, Any]) -> dict[str, tuple[str, str]]:
        first = (rule.get("matches") or [{}])[0]
        return {
            str(h.get("name", "")).lower(): (
                "exact" if h.get("type", "Exact") == "Exact" else "regex",
                str(h.get("value", "")),
            )
            for h in first.get("headers") or []
        }
