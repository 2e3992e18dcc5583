"""The write path every Kubernetes router shares: read, check ownership, JSON-patch with ``test`` ops, verify.

A kind module subclasses ``KubeRouter`` and says where the weights (and its mirror fields) live (``slots``)
and what to write (``desired``). Everything else is here, once:

* ownership: ``gatekeeper.dev/owner`` must equal the target's gate, else ``NotOwned``;
* optimistic concurrency: each patch starts with ``test`` ops on ``/metadata/resourceVersion`` and on the
  current values; a 409, or a 422 after which the resource turns out to have moved, means another writer
  won: re-read and recompute (the weight is the caller's, never derived from the route), at most
  ``max_attempts`` times, then ``Conflict``;
* the original: before the first write the spec (and the kind's split annotations) is saved as canonical JSON
  in ``gatekeeper.dev/original``; ``revert`` removes the gate's A/B rules, writes the saved weights and mirror
  fields back and removes the annotation, so with no other writer in between the spec is byte-identical to
  the original. Fields gatekeeper does not own are never written, not even by a revert;
* exposure: ``set_weight`` refuses a weight above ``max_weight``; a ``revert`` never raises the canary's share
  (if the saved split had more canary traffic than now, the canary goes to 0 and the annotation stays for a
  human to read);
* gate-owned A/B rules (kinds with ``rules_at``): list entries named ``gatekeeper-ab-<gate>[-N]``, found by
  name, inserted right before the rule they copy and removed by ``set_match(None)`` and ``revert``;
* idempotence: no write when everything already is what is asked;
* verification: read back after writing (a dry run checks the server's answer instead);
* logging: every write, dry runs included, with before/after on the ``gatekeeper.routing`` logger.

``patches.py`` holds the slot/plan data and the JSON patch diff, ``access.py`` the API-server calls.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Literal

from gatekeeper.routing.access import FIELD_MANAGER, KubeAccess
from gatekeeper.routing.base import (
    APIS,
    ORIGINAL_ANNOTATION,
    OWNER_ANNOTATION,
    WRITER_ANNOTATION,
    Change,
    Conflict,
    NotAccepted,
    NotOwned,
    RouteTarget,
    RoutingError,
    Split,
    cap_weight,
    check_max_weight,
    check_weight,
)
from gatekeeper.routing.match import Match
from gatekeeper.routing.patches import ABSENT, Plan, Slot, canonical, diff, pointer

__all__ = ["ABSENT", "KubeRouter", "Plan", "Slot", "canonical", "changed_by", "diff", "pointer"]

log = logging.getLogger("gatekeeper.routing")

Action = Literal["set", "revert", "match", "mirror"]


class KubeRouter(KubeAccess):
    """Shared mechanics; subclasses set ``kind`` and implement ``slots`` (and the hooks below if special)."""

    kind: ClassVar[str]
    # Annotations that carry the split (NGINX); saved with the spec and restored by revert.
    split_annotations: ClassVar[tuple[str, ...]] = ()
    # What an absent weight field means for the kind.
    absent_weight: ClassVar[int] = 0
    # Where the kind's list of routing rules is (Gateway API rules, Istio http routes); None: no A/B rules.
    rules_at: ClassVar[tuple[str, ...] | None] = None

    def __init__(
        self,
        target: RouteTarget,
        api_client: Any,
        *,
        fence: Callable[[], None] | None = None,
        max_attempts: int = 5,
        max_weight: float | None = None,
        writer: str = "",
    ) -> None:
        if target.kind != self.kind:
            raise RoutingError(f"{type(self).__name__} handles kind {self.kind!r}, not {target.kind!r}")
        if max_attempts < 1:
            raise RoutingError(f"max_attempts must be at least 1, got {max_attempts}")
        from kubernetes import client

        self.target = target
        self.max_weight = check_max_weight(max_weight)
        self._api = client.CustomObjectsApi(api_client)
        self._fence = fence
        self._writer = writer
        self._max_attempts = max_attempts
        self._version: str | None = None
        self._versions: dict[str, str] = {}

    # -- kind-specific -------------------------------------------------------------------------------------
    def slots(self, obj: dict[str, Any]) -> list[Slot]:
        """Where the canary/stable weights (and mirror fields) live; ``RoutingError`` naming what is missing."""
        raise NotImplementedError

    def desired(self, slots: Sequence[Slot], weight: int) -> dict[str, Any]:
        """JSON pointer -> value for canary ``weight`` percent (default: canary W, stable 100 - W)."""
        return {
            s.path: weight if s.role == "canary" else 100 - weight
            for s in slots
            if s.role in ("canary", "stable")
        }

    def weights(self, slots: Sequence[Slot]) -> tuple[int, int]:
        """(canary, stable) raw weights from the slots (the first managed group)."""

        def w(role: str) -> int:
            v = next(s.value for s in slots if s.role == role)
            return self.absent_weight if v is ABSENT else int(v)

        return w("canary"), w("stable")

    def mirror_of(self, slots: Sequence[Slot]) -> float:
        """The percent of requests mirrored to the canary (0: none)."""
        return 0.0

    def match_of(self, obj: dict[str, Any]) -> Match | None:
        """The gate-owned A/B match, if the resource has one."""
        return None

    def restore(self, now: Slot, original: Slot) -> Any:
        """What a revert writes into slot ``now`` given its saved value (default: the saved value)."""
        return original.value

    def precheck(self, obj: dict[str, Any]) -> None:
        """Checks against other objects before a write that adds exposure (NGINX primary, Istio subsets)."""

    # -- Router --------------------------------------------------------------------------------------------
    def read(self) -> Split:
        obj = self._get()
        return self._split(obj, self.slots(obj))

    def set_weight(self, weight: int, *, dry_run: bool = False) -> Change:
        w = cap_weight(check_weight(weight), self.max_weight, self.target)

        def plan(obj: dict[str, Any], slots: list[Slot]) -> Plan:
            if w > 0 and self.mirror_of(slots) > 0 and self._mirror_is_ours(obj, slots):
                raise RoutingError(
                    f"{self.target.describe()}: the gate mirrors {self.mirror_of(slots):g}% of requests to the "
                    f"canary (a shadow stage); a canary with live traffic would get those requests twice. "
                    "Remove the mirror first (set_mirror(0) / --mirror 0), then set the weight"
                )
            want = self.desired(slots, w)
            return Plan(self._with_original(obj, diff(slots, want)), want)

        return self._write("set", plan, dry_run=dry_run, check=lambda before: w > before.canary_percent)

    def revert(self, *, dry_run: bool = False) -> Change:
        def plan(obj: dict[str, Any], _slots: list[Slot]) -> Plan:
            view, ops = self._strip(obj)
            saved = _annotations(obj).get(ORIGINAL_ANNOTATION)
            if saved is None:  # nothing saved: only stray gate rules (annotation removed by hand) go
                return Plan(ops, {}, [] if ops else None)
            now, old = self._pairs(view, saved)
            want = {s.path: self.restore(s, o) for s, o in zip(now, old, strict=True) if s.role != "total"}
            restored = [replace(s, value=want.get(s.path, s.value)) for s in now]
            lowered = _share(self.weights(restored)) > _share(self.weights(now))
            if (
                lowered
            ):  # restoring would raise exposure: take the canary to 0 and leave the original to a human
                want.update(self.desired(now, 0))
                log.warning(
                    "routing revert %s: the saved split (canary %s/%s) has more canary traffic than now (%s/%s); "
                    "set canary to 0 instead and kept annotation %s for a human",
                    self.target.describe(), *self.weights(restored), *self.weights(now), ORIGINAL_ANNOTATION,
                )  # fmt: skip
            ops += diff(now, want)
            if not lowered:
                key = pointer("metadata", "annotations", ORIGINAL_ANNOTATION)
                ops += [{"op": "test", "path": key, "value": saved}, {"op": "remove", "path": key}]
            return Plan(ops, want, [])

        return self._write("revert", plan, dry_run=dry_run, check=False)

    # -- the write loop ------------------------------------------------------------------------------------
    def _write(
        self,
        action: Action,
        plan: Callable[[dict[str, Any], list[Slot]], Plan],
        *,
        dry_run: bool,
        check: bool | Callable[[Split], bool],
    ) -> Change:
        """Read, plan, patch, verify; ``check`` (or ``check(before)``) runs ``precheck`` first: exposure rises."""
        from kubernetes.client.exceptions import ApiException

        for attempt in range(1, self._max_attempts + 1):
            obj = self._get()
            self._check_owner(obj)
            slots = self.slots(obj)
            before = self._split(obj, slots)
            p = plan(obj, slots)
            if not p.ops:
                return Change(
                    self.target, action, before, before, written=False, dry_run=dry_run, attempts=attempt
                )
            if check(before) if callable(check) else check:
                self.precheck(obj)
            rv = obj["metadata"]["resourceVersion"]
            ops = [
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                *p.ops,
                *self._signed(obj),
            ]
            if self._fence is not None:
                self._fence()
            try:
                answer = self._patch(ops, dry_run=dry_run)
            except ApiException as exc:
                if exc.status == 409 or (exc.status == 422 and self._moved(rv)):
                    log.info(
                        "routing conflict on %s (attempt %d): %s; re-reading",
                        self.target.describe(),
                        attempt,
                        exc.status,
                    )
                    continue
                raise self._refused(exc, action) from exc
            after_obj = answer if dry_run else self._get()
            after = self._verify(after_obj, p, action)
            log.info(
                "routing write %s %s%s: canary %s/%s -> %s/%s, mirror %g%% -> %g%%, match %s -> %s "
                "(rv %s -> %s, attempt %d)",
                action, self.target.describe(), " [dry run]" if dry_run else "",
                before.canary_weight, before.stable_weight, after.canary_weight, after.stable_weight,
                before.mirror_percent, after.mirror_percent, _m(before.match), _m(after.match),
                before.resource_version, after.resource_version, attempt,
            )  # fmt: skip
            return Change(self.target, action, before, after, written=True, dry_run=dry_run, attempts=attempt)
        raise Conflict(
            f"{self.target.describe()}: another writer changed it on each of {self._max_attempts} attempts; "
            "nothing was written, try again later"
        )

    def _verify(self, obj: dict[str, Any], p: Plan, action: str) -> Split:
        slots = self.slots(obj)
        got = {s.path: s.value for s in slots}
        wrong = {k: (v, got.get(k, ABSENT)) for k, v in p.want.items() if got.get(k, ABSENT) != v}
        if p.rules is not None:
            rules = self._rules(obj)
            have = [rules[i] for i in self._gate_indices(obj)]
            if canonical(have) != canonical(p.rules):
                wrong["A/B rules"] = (p.rules, have)
        if wrong:
            detail = "; ".join(f"{k}: wrote {v!r}, read {g!r}" for k, (v, g) in wrong.items())
            raise NotAccepted(
                f"{self.target.describe()}: {action} did not stick ({detail}); another writer or an admission webhook changed it"
            )
        return self._split(obj, slots)

    def _signed(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """The op naming this replica as the writer (``WRITER_ANNOTATION``), for the API server's fence policy;
        none outside the controller. Ownership was checked, so the annotations map exists."""
        if not self._writer:
            return []
        return [
            {
                "op": "add",
                "path": pointer("metadata", "annotations", WRITER_ANNOTATION),
                "value": self._writer,
            }
        ]

    # -- the original and the gate's A/B rules -------------------------------------------------------------
    def _with_original(self, obj: dict[str, Any], ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``ops`` plus saving the original, if they write anything and nothing is saved yet."""
        if ops and ORIGINAL_ANNOTATION not in _annotations(obj):
            path = pointer("metadata", "annotations", ORIGINAL_ANNOTATION)  # owned, so annotations exist
            ops = [*ops, {"op": "add", "path": path, "value": self._snapshot(obj)}]
        return ops

    def _pairs(self, view: dict[str, Any], saved: str) -> tuple[list[Slot], list[Slot]]:
        """Slots of ``view`` (the resource without gate rules) beside the saved original's, same structure."""
        original, _ = self._strip(self._restore_view(view, saved))
        now, old = self.slots(view), self.slots(original)
        if [(s.path, s.role) for s in old] != [(s.path, s.role) for s in now]:
            raise NotAccepted(
                f"{self.target.describe()}: its routing structure changed since gatekeeper saved the original "
                f"split, so the saved values no longer fit; restore it by hand from the annotation "
                f"{ORIGINAL_ANNOTATION} and remove that annotation"
            )
        return now, old

    def _mirror_is_ours(self, obj: dict[str, Any], slots: Sequence[Slot]) -> bool:
        """Does the current mirror differ from the saved original (so gatekeeper set it)?"""
        saved = _annotations(obj).get(ORIGINAL_ANNOTATION)
        if saved is None:
            return False
        view, _ = self._strip(obj)
        _now, old = self._pairs(view, saved)
        return self.mirror_of(old) != self.mirror_of(slots)

    def gate_rule_name(self, k: int) -> str:
        """The name of the gate's ``k``-th A/B rule (a DNS subdomain, as Gateway API rule names must be)."""
        return f"gatekeeper-ab-{self.target.owner}" + (f"-{k + 1}" if k else "")

    def _is_gate_rule(self, rule: Any, owner: str) -> bool:
        name = rule.get("name") if isinstance(rule, dict) else None
        return bool(isinstance(name, str) and re.fullmatch(rf"gatekeeper-ab-{re.escape(owner)}(-\d+)?", name))

    def _rules(self, obj: dict[str, Any]) -> list[Any]:
        node: Any = obj
        for part in self.rules_at or ():
            node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, list) else []

    def _gate_indices(self, obj: dict[str, Any]) -> list[int]:
        """The gate's A/B rules: named after the resource's owner (a write checked it is ours; a read shows it)."""
        owner = _annotations(obj).get(OWNER_ANNOTATION) or self.target.owner
        return [i for i, r in enumerate(self._rules(obj)) if self._is_gate_rule(r, owner)]

    def _strip(self, obj: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A copy without the gate's A/B rules, and the JSON patch ops that remove them (last first)."""
        gate = self._gate_indices(obj)
        if not gate:
            return obj, []
        view = copy.deepcopy(obj)
        rules, ops = self._rules(view), []
        for i in reversed(gate):
            path = pointer(*(self.rules_at or ()), i)
            ops += [{"op": "test", "path": path, "value": rules[i]}, {"op": "remove", "path": path}]
            del rules[i]
        return view, ops

    # -- helpers -------------------------------------------------------------------------------------------
    def _split(self, obj: dict[str, Any], slots: Sequence[Slot]) -> Split:
        c, s = self.weights(slots)
        ann = _annotations(obj)
        return Split(
            c,
            s,
            ann.get(OWNER_ANNOTATION),
            obj["metadata"].get("resourceVersion", ""),
            ORIGINAL_ANNOTATION in ann,
            mirror_percent=self.mirror_of(slots),
            match=self.match_of(obj),
            changed_by=changed_by(obj, [s.path for s in slots if s.role in ("canary", "stable")]),
        )

    def _check_owner(self, obj: dict[str, Any]) -> None:
        owner = _annotations(obj).get(OWNER_ANNOTATION)
        t = self.target
        if owner is None:
            raise NotOwned(
                f"{t.describe()} has no {OWNER_ANNOTATION} annotation, so gatekeeper will not change it; to hand it "
                f"to gate {t.owner!r}: kubectl annotate -n {t.namespace} {APIS[t.kind].plural}/{t.name} {OWNER_ANNOTATION}={t.owner}"
            )
        if owner != t.owner:
            raise NotOwned(
                f"{t.describe()} is owned by gate {owner!r}, not {t.owner!r}; gatekeeper will not change it"
            )

    def _snapshot(self, obj: dict[str, Any]) -> str:
        ann = _annotations(obj)
        snap: dict[str, Any] = {"spec": obj.get("spec")}
        if self.split_annotations:
            snap["annotations"] = {k: ann[k] for k in self.split_annotations if k in ann}
        return canonical(snap)

    def _restore_view(self, obj: dict[str, Any], saved: str) -> dict[str, Any]:
        try:
            snap = json.loads(saved)
            view = copy.deepcopy(obj)
            view["spec"] = snap["spec"]
            ann = view["metadata"].setdefault("annotations", {})
            for k in self.split_annotations:
                ann.pop(k, None)
            ann.update(snap.get("annotations", {}))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NotAccepted(
                f"{self.target.describe()}: annotation {ORIGINAL_ANNOTATION} is not what gatekeeper saved ({exc}); "
                "restore the split by hand and remove the annotation"
            ) from exc
        return view


def changed_by(obj: dict[str, Any], paths: Sequence[str]) -> str | None:
    """The field manager other than gatekeeper that most recently wrote one of ``paths`` (JSON pointers), from
    ``metadata.managedFields``: an entry owns a path when its ``fieldsV1`` names it, or names a parent as a
    whole (an atomic list such as ``f:rules: {}``, owned by whoever wrote it last). Entries of a keyed or set
    list are matched by position only as "some item" (their keys are not indexes). If no entry owns a path,
    the newest other writer of the object; None when gatekeeper is the only one."""
    entries = [
        e for e in (obj.get("metadata") or {}).get("managedFields") or [] if e.get("manager") != FIELD_MANAGER
    ]
    owners = [e for e in entries if any(_owns(e.get("fieldsV1") or {}, p) for p in paths)]
    pool = owners or [e for e in entries if e.get("operation") in ("Update", "Apply")]
    newest = max(pool, key=lambda e: str(e.get("time") or ""), default=None)
    return str(newest["manager"]) if newest is not None and newest.get("manager") else None


def _owns(fields: Any, path: str) -> bool:
    node = fields
    for raw in path.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict):
            return False
        if not node and node is not fields:
            return True  # a whole value below which nothing is listed: owned atomically
        if f"f:{part}" not in node:
            return part.isdigit() and any(k.startswith(("k:", "v:", "i:")) for k in node)
        node = node[f"f:{part}"]
    return True


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}


def _share(weights: tuple[int, int]) -> float:
    c, s = weights
    return c / (c + s) if c + s > 0 else 0.0


def _m(match: Match | None) -> str:
    return "none" if match is None else match.describe()
