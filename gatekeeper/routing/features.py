"""The optional capabilities on top of ``KubeRouter``: gate-owned A/B rules and mirroring to the canary.

``RuleMatch`` (Gateway API, Istio) implements ``MatchRouter.set_match`` with whole rules: for every managed
rule (one naming both backends) it inserts, right before it, a copy named ``gatekeeper-ab-<gate>[-N]`` whose
conditions are the managed rule's plus the match's headers (so it is at least as specific and wins, under
Gateway API precedence and Istio's first-match order) and whose only backend is the canary. The kind says
how to build the copy (``ab_rule``) and how to read header conditions (``match_headers``).

``Mirroring`` (Gateway API, Istio) implements ``MirrorRouter.set_mirror`` with the kind's mirror slots
(roles ``mirror``/``mirror-percent``): the kind says what to write (``mirror_want``); removing a mirror
restores those slots to the saved original, so a revert or ``set_mirror(0)`` leaves no trace.

A mirror is a shadow stage: it is refused while the canary takes live weighted traffic (each mirrored request
would reach it twice), and ``set_weight`` above 0 is refused while the gate's mirror is on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gatekeeper.routing.base import ORIGINAL_ANNOTATION, Change, RoutingError, check_mirror
from gatekeeper.routing.kube_router import KubeRouter, Plan, Slot, canonical, diff, pointer
from gatekeeper.routing.match import Match

__all__ = ["MIRROR_ROLES", "Mirroring", "RuleMatch", "ab_conditions"]

MIRROR_ROLES = ("mirror", "mirror-percent")

_Base: Any = KubeRouter if TYPE_CHECKING else object


class RuleMatch(_Base):
    """``set_match`` by gate-owned rules; mixed into a ``KubeRouter`` with ``rules_at``."""

    def managed_rules(self, obj: dict[str, Any]) -> list[int]:
        """Indices of the rules that name both backends (the ones whose weights gatekeeper sets)."""
        raise NotImplementedError

    def ab_rule(self, managed: dict[str, Any], match: Match, name: str) -> dict[str, Any]:
        """The gate's A/B copy of ``managed``: its conditions plus ``match``, the canary as only backend."""
        raise NotImplementedError

    def match_headers(self, rule: dict[str, Any]) -> dict[str, tuple[str, str]]:
        """Header conditions of the rule's first match: lower-case name -> (``exact``|``regex``, value)."""
        raise NotImplementedError

    def set_match(self, match: Match | None, *, dry_run: bool = False) -> Change:
        if match is not None and not isinstance(match, Match):
            raise RoutingError(f"match must be a Match or None, got {type(match).__name__}")

        def plan(obj: dict[str, Any], _slots: list[Slot]) -> Plan:
            view, ops = self._strip(obj)
            rules = self._rules(obj)
            have = [(i, rules[i]) for i in self._gate_indices(obj)]
            managed = [] if match is None else self.managed_rules(view)
            base = self._rules(view)
            want = [
                (i + k, self.ab_rule(base[i], match, self.gate_rule_name(k)))
                for k, i in enumerate(managed)
                if match is not None
            ]
            if canonical(have) == canonical(want):
                return Plan([])
            ops += [
                {"op": "add", "path": pointer(*(self.rules_at or ()), pos), "value": r} for pos, r in want
            ]
            return Plan(self._with_original(obj, ops), {}, [r for _, r in want])

        change: Change = self._write("match", plan, dry_run=dry_run, check=match is not None)
        return change

    def match_of(self, obj: dict[str, Any]) -> Match | None:
        rules, gate = self._rules(obj), self._gate_indices(obj)
        if not gate:
            return None
        mine = self.match_headers(rules[gate[0]])
        after = [r for k, r in enumerate(rules) if k > gate[0] and k not in gate]
        theirs = self.match_headers(after[0]) if after else {}
        ours = {k: v for k, v in mine.items() if theirs.get(k) != v}
        exact = {k: v for k, (how, v) in ours.items() if how == "exact"}
        regex = {k: v for k, (how, v) in ours.items() if how == "regex"}
        return Match.from_headers(exact, regex)


def ab_conditions(match: Match, *, where: str, names: Sequence[str]) -> list[tuple[str, str, str]]:
    """The match's conditions as (name, how, value), refusing one a managed condition already sets."""
    clash = sorted({n for n, _ in match.headers} & {n.lower() for n in names})
    if match.cookie is not None and "cookie" in {n.lower() for n in names}:
        clash.append("cookie")
    if clash:
        raise RoutingError(
            f"{where} already matches on header {', '.join(clash)}; an A/B rule cannot add a second "
            "condition on it: pick another header"
        )
    out = [(n, "exact", v) for n, v in match.headers]
    regex = match.cookie_regex()
    if regex is not None:
        out.append(("cookie", "regex", regex))
    return out


class Mirroring(_Base):
    """``set_mirror`` through the kind's mirror slots; mixed into a ``KubeRouter``."""

    def mirror_want(self, obj: dict[str, Any], slots: Sequence[Slot], percent: float) -> dict[str, Any]:
        """JSON pointer -> value mirroring ``percent`` of each managed rule's requests to the canary."""
        raise NotImplementedError

    def set_mirror(self, percent: float, *, dry_run: bool = False) -> Change:
        p = check_mirror(percent)

        def plan(obj: dict[str, Any], slots: list[Slot]) -> Plan:
            if p > 0:
                canary, _ = self.weights(slots)
                if canary > 0:
                    raise RoutingError(
                        f"{self.target.describe()}: the canary takes live traffic (weight {canary}); a mirror is "
                        "for a shadow stage, where the canary takes none (each mirrored request would reach it "
                        "twice). Set the weight to 0 first"
                    )
                want = self.mirror_want(obj, slots, p)
            else:
                want = self._mirror_restored(obj, slots)
            return Plan(self._with_original(obj, diff(slots, want)), want)

        change: Change = self._write("mirror", plan, dry_run=dry_run, check=p > 0)
        return change

    def _mirror_restored(self, obj: dict[str, Any], slots: Sequence[Slot]) -> dict[str, Any]:
        """The mirror slots back at their saved values (nothing saved: gatekeeper set no mirror)."""
        saved = (obj["metadata"].get("annotations") or {}).get(ORIGINAL_ANNOTATION)
        if saved is None:
            return {}
        view, _ = self._strip(obj)
        _now, old = self._pairs(view, saved)
        cur = [s for s in slots if s.role in MIRROR_ROLES]
        was = [s for s in old if s.role in MIRROR_ROLES]
        return {s.path: self.restore(s, o) for s, o in zip(cur, was, strict=True)}
