"""The write path every Kubernetes router shares: read, check ownership, JSON-patch with ``test`` ops, verify.

A kind module subclasses ``KubeRouter`` and says only where the weights live (``slots``) and what to write
(``desired``). Everything else is here, once:

* ownership: ``gatekeeper.dev/owner`` must equal the target's gate, else ``NotOwned``;
* optimistic concurrency: each patch starts with ``test`` ops on ``/metadata/resourceVersion`` and on the
  current weight values; a 409, or a 422 after which the resource turns out to have moved, means another writer
  won: re-read and recompute (the weight is the caller's, never derived from the route), at most
  ``max_attempts`` times, then ``Conflict``;
* the original: before the first write the spec (and the kind's split annotations) is saved as canonical JSON
  in ``gatekeeper.dev/original``; ``revert`` writes the saved weights back and removes the annotation, so with
  no other writer in between the spec is byte-identical to the original. Fields gatekeeper does not own are
  never written, not even by a revert;
* idempotence: no write when the weights already are what is asked;
* verification: read back after writing (a dry run checks the server's answer instead);
* logging: every write, dry runs included, with before/after on the ``gatekeeper.routing`` logger.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from gatekeeper.routing.base import (
    APIS,
    ORIGINAL_ANNOTATION,
    OWNER_ANNOTATION,
    Change,
    Conflict,
    NotAccepted,
    NotOwned,
    RouteTarget,
    RoutingError,
    Split,
    check_weight,
)

__all__ = ["ABSENT", "KubeRouter", "Slot", "pointer"]

log = logging.getLogger("gatekeeper.routing")


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Slot:
    """One JSON value that carries the split: its JSON pointer, its role and its current value (or ABSENT)."""

    path: str
    role: Literal["canary", "stable", "flag", "total"]
    value: Any


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class KubeRouter:
    """Shared mechanics; subclasses set ``kind`` and implement ``slots`` (and ``desired``/``weights`` if special)."""

    kind: ClassVar[str]
    # Annotations that carry the split (NGINX); saved with the spec and restored by revert.
    split_annotations: ClassVar[tuple[str, ...]] = ()
    # What an absent weight field means for the kind.
    absent_weight: ClassVar[int] = 0

    def __init__(
        self,
        target: RouteTarget,
        api_client: Any,
        *,
        fence: Callable[[], None] | None = None,
        max_attempts: int = 5,
    ) -> None:
        if target.kind != self.kind:
            raise RoutingError(f"{type(self).__name__} handles kind {self.kind!r}, not {target.kind!r}")
        if max_attempts < 1:
            raise RoutingError(f"max_attempts must be at least 1, got {max_attempts}")
        from kubernetes import client

        self.target = target
        self._api = client.CustomObjectsApi(api_client)
        self._fence = fence
        self._max_attempts = max_attempts
        self._version: str | None = None

    # -- kind-specific -------------------------------------------------------------------------------------
    def slots(self, obj: dict[str, Any]) -> list[Slot]:
        """Where the canary/stable weights live; ``RoutingError`` naming what is missing."""
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

    # -- Router --------------------------------------------------------------------------------------------
    def read(self) -> Split:
        obj = self._get()
        return self._split(obj, self.slots(obj))

    def set_weight(self, weight: int, *, dry_run: bool = False) -> Change:
        w = check_weight(weight)

        def plan(obj: dict[str, Any], slots: list[Slot]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            want = self.desired(slots, w)
            ops = _diff(slots, want)
            if ops and ORIGINAL_ANNOTATION not in _annotations(obj):
                ops.append(
                    {
                        "op": "add",
                        "path": pointer("metadata", "annotations", ORIGINAL_ANNOTATION),
                        "value": self._snapshot(obj),
                    }
                )
            return want, ops

        return self._write("set", plan, dry_run=dry_run)

    def revert(self, *, dry_run: bool = False) -> Change:
        def plan(obj: dict[str, Any], slots: list[Slot]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            saved = _annotations(obj).get(ORIGINAL_ANNOTATION)
            if saved is None:
                return {}, []
            original = self._restore_view(obj, saved)
            old = self.slots(original)
            if [(s.path, s.role) for s in old] != [(s.path, s.role) for s in slots]:
                raise NotAccepted(
                    f"{self.target.describe()}: its routing structure changed since gatekeeper saved the original "
                    f"split, so the saved weights no longer fit; restore it by hand from the annotation "
                    f"{ORIGINAL_ANNOTATION} and remove that annotation"
                )
            want = {s.path: s.value for s in old if s.role != "total"}
            ops = _diff(slots, want)
            key = pointer("metadata", "annotations", ORIGINAL_ANNOTATION)
            ops += [{"op": "test", "path": key, "value": saved}, {"op": "remove", "path": key}]
            return want, ops

        return self._write("revert", plan, dry_run=dry_run)

    # -- the write loop ------------------------------------------------------------------------------------
    def _write(
        self,
        action: Literal["set", "revert"],
        plan: Callable[[dict[str, Any], list[Slot]], tuple[dict[str, Any], list[dict[str, Any]]]],
        *,
        dry_run: bool,
    ) -> Change:
        from kubernetes.client.exceptions import ApiException

        for attempt in range(1, self._max_attempts + 1):
            obj = self._get()
            self._check_owner(obj)
            slots = self.slots(obj)
            before = self._split(obj, slots)
            want, ops = plan(obj, slots)
            if not ops:
                return Change(
                    self.target, action, before, before, written=False, dry_run=dry_run, attempts=attempt
                )
            rv = obj["metadata"]["resourceVersion"]
            ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv}, *ops]
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
            after = self._verify(after_obj, want, action)
            log.info(
                "routing write %s %s%s: canary %s/%s -> %s/%s (rv %s -> %s, attempt %d)",
                action, self.target.describe(), " [dry run]" if dry_run else "",
                before.canary_weight, before.stable_weight, after.canary_weight, after.stable_weight,
                before.resource_version, after.resource_version, attempt,
            )  # fmt: skip
            return Change(self.target, action, before, after, written=True, dry_run=dry_run, attempts=attempt)
        raise Conflict(
            f"{self.target.describe()}: another writer changed it on each of {self._max_attempts} attempts; "
            "nothing was written, try again later"
        )

    def _verify(self, obj: dict[str, Any], want: dict[str, Any], action: str) -> Split:
        slots = self.slots(obj)
        got = {s.path: s.value for s in slots}
        wrong = {p: (v, got.get(p, ABSENT)) for p, v in want.items() if got.get(p, ABSENT) != v}
        if wrong:
            detail = "; ".join(f"{p}: wrote {v!r}, read {g!r}" for p, (v, g) in wrong.items())
            raise NotAccepted(
                f"{self.target.describe()}: {action} did not stick ({detail}); another writer or an admission webhook changed it"
            )
        return self._split(obj, slots)

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

    def _get(self) -> dict[str, Any]:
        """GET the resource; the first time, at the first version of the table the server serves."""
        from kubernetes.client.exceptions import ApiException

        api, t = APIS[self.kind], self.target
        versions = (self._version,) if self._version else api.versions
        for version in versions:
            try:
                obj: dict[str, Any] = self._api.get_namespaced_custom_object(
                    api.group, version, t.namespace, api.plural, t.name
                )
            except ApiException as exc:
                if exc.status == 404 and not _names_object(exc) and self._version is None:
                    continue  # this version is not served: try the next
                if exc.status == 404:
                    self._version = version
                raise self._refused(exc, "read") from exc
            self._version = version
            return obj
        raise RoutingError(
            f"the cluster serves none of {api.group}/{{{','.join(api.versions)}}} {api.plural}; "
            f"install the {api.kind} CRD or pick the routing kind the cluster has"
        )

    def _patch(self, ops: list[dict[str, Any]], *, dry_run: bool) -> dict[str, Any]:
        api, t = APIS[self.kind], self.target
        kw: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        out: dict[str, Any] = self._api.patch_namespaced_custom_object(
            api.group, self._version or api.versions[0], t.namespace, api.plural, t.name, ops,
            _content_type="application/json-patch+json", field_manager="gatekeeper", **kw,
        )  # fmt: skip
        return out

    def _moved(self, rv: str) -> bool:
        """After a 422: did the resource change since we read it (a lost race, not a bad write)?"""
        try:
            return bool(self._get()["metadata"]["resourceVersion"] != rv)
        except (RoutingError, NotAccepted):
            return False

    def _refused(self, exc: Any, action: str) -> Exception:
        t, msg = self.target, _message(exc)
        if exc.status == 404:
            return RoutingError(f"{t.describe()} not found ({msg}); check the namespace and name")
        if exc.status in (401, 403):
            return NotAccepted(
                f"{t.describe()}: {action} forbidden ({msg}); grant the Role rules of gatekeeper/routing/rbac.py"
            )
        return NotAccepted(f"{t.describe()}: the API server refused the {action}: {exc.status} {msg}")


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}


def _diff(slots: Sequence[Slot], want: dict[str, Any]) -> list[dict[str, Any]]:
    """JSON patch ops turning the slots' values into ``want`` (ABSENT in ``want`` removes), with tests first."""
    ops: list[dict[str, Any]] = []
    for s in slots:
        if s.path not in want or want[s.path] == s.value:
            continue
        new = want[s.path]
        if s.value is not ABSENT:
            ops.append({"op": "test", "path": s.path, "value": s.value})
            ops.append(
                {"op": "remove", "path": s.path}
                if new is ABSENT
                else {"op": "replace", "path": s.path, "value": new}
            )
        elif new is not ABSENT:
            ops.append({"op": "add", "path": s.path, "value": new})
    return ops


def _message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message", exc.reason))
    except (ValueError, TypeError, AttributeError):
        return str(getattr(exc, "reason", exc))


def _names_object(exc: Any) -> bool:
    """A 404 about a missing object names it in ``details``; one about an unserved resource type does not."""
    try:
        return bool(json.loads(exc.body).get("details", {}).get("name"))
    except (ValueError, TypeError, AttributeError):
        return False
