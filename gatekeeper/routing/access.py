"""Talking to the API server for a router: GET at the first served version, list, JSON patch, and turning
``ApiException``s into the routing errors (404 -> ``RoutingError``, 401/403 -> ``NotAccepted`` naming the
Role rules, anything else -> ``NotAccepted`` with the server's message)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from gatekeeper.routing.base import APIS, Api, NotAccepted, RouteTarget, RoutingError

__all__ = ["FIELD_MANAGER", "KubeAccess"]

FIELD_MANAGER = "gatekeeper"  # the field manager of every routing write (metadata.managedFields names it)


class KubeAccess:
    """The API-server calls of one router; ``target``/``kind``/``_api`` are set by the subclass."""

    target: RouteTarget
    kind: ClassVar[str]
    _api: Any
    _version: str | None
    _versions: dict[str, str]

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

    def _list(self, api: Api) -> list[dict[str, Any]]:
        """Every object of ``api`` in the target's namespace (first served version of its table)."""
        from kubernetes.client.exceptions import ApiException

        known = self._versions.get(api.plural)
        for version in (known,) if known else api.versions:
            try:
                out = self._api.list_namespaced_custom_object(
                    api.group, version, self.target.namespace, api.plural
                )
            except ApiException as exc:
                if exc.status == 404 and known is None:
                    continue
                raise self._refused(exc, f"list {api.plural}") from exc
            self._versions[api.plural] = version
            return list(out.get("items") or [])
        raise RoutingError(
            f"the cluster serves none of {api.group}/{{{','.join(api.versions)}}} {api.plural}, which "
            f"{self.target.describe()} needs; install the {api.kind} CRD"
        )

    def _patch(self, ops: list[dict[str, Any]], *, dry_run: bool) -> dict[str, Any]:
        api, t = APIS[self.kind], self.target
        kw: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        out: dict[str, Any] = self._api.patch_namespaced_custom_object(
            api.group, self._version or api.versions[0], t.namespace, api.plural, t.name, ops,
            _content_type="application/json-patch+json", field_manager=FIELD_MANAGER, **kw,
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
