"""Gate custom resources on the API server: parse, list/watch with periodic resync, status writes, Events.

* Status writes are a JSON patch ``test /metadata/resourceVersion`` + ``add /status``: the status becomes exactly
  the ``GateStatus`` written, and only if nobody changed the object since it was read. A lost race is
  ``StaleObject``: re-read and recompute; never write back a cached copy blindly (Argo Rollouts #4694).
* The watch restarts every ``resync`` seconds with a fresh list, so a missed event heals by itself.
* Operator commands arrive as annotations (``gatekeeper.dev/approve|abort|pause``, codec
  ``gatekeeper.spec.requests.OperatorRequest``), written through the API server so RBAC decides who may; the
  controller applies each (idempotently) and removes it with a ``test`` op on the value it applied.
* Every write calls ``fence()`` first (the Lease check), so a deposed leader writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gatekeeper.controller.bookkeeping import rfc3339
from gatekeeper.controller.machine import Request
from gatekeeper.routing.base import WRITER_ANNOTATION
from gatekeeper.spec import GateSpec, SpecError, SpecIssue, crd, fingerprint, load_gate_text
from gatekeeper.spec.requests import ANNOTATION_KEYS, BadRequestAnnotation, pending_requests
from gatekeeper.spec.status import GateStatus, StatusFormatError

__all__ = [
    "FINALIZER",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "ApiFailure",
    "BadStatus",
    "GateClient",
    "GateRef",
    "StaleObject",
    "Watcher",
    "deleting",
    "has_requests",
    "parse_gate",
    "read_requests",
    "spec_hash",
    "status_of",
]

log = logging.getLogger("gatekeeper.controller")

GROUP, VERSION, PLURAL, KIND = crd.GROUP, crd.VERSION, crd.PLURAL, crd.KIND


class StaleObject(RuntimeError):
    """The Gate changed since it was read (409, or a failed resourceVersion test): re-read and recompute."""


class ApiFailure(RuntimeError):
    """The API server refused or could not be reached; the message says which and why."""


class BadStatus(ValueError):
    """The Gate's status is not a GateStatus (hand-edited?); the gate is skipped, never reset."""


@dataclass(frozen=True, order=True)
class GateRef:
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> GateRef:
        meta = obj["metadata"]
        return cls(meta["namespace"], meta["name"])

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


# -- reading objects ------------------------------------------------------------------------------------------
def parse_gate(obj: dict[str, Any]) -> GateSpec:
    """The GateSpec of a Gate object; ``SpecError`` names every bad field. ``name`` is the object's name."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise SpecError([SpecIssue("spec", "the Gate has no spec mapping", "add a spec (see gates/)")])
    raw = {**spec, "name": obj["metadata"]["name"]}
    text = json.dumps(raw)
    gate: GateSpec | None = None
    if "${" not in text:  # fast path: nothing to substitute, and a CR has no YAML lines to report
        try:
            gate = GateSpec.model_validate(raw)
        except ValidationError:
            gate = None  # the loader below explains every problem, with the fix
    if gate is None:
        gate = load_gate_text(text, source=f"gate {GateRef.of(obj)}")
    routing = spec.get("routing")
    if gate.routing is not None and isinstance(routing, dict) and "namespace" not in routing:
        # a Gate's routing resource lives in the Gate's namespace unless it says otherwise
        gate = gate.model_copy(
            update={"routing": gate.routing.model_copy(update={"namespace": obj["metadata"]["namespace"]})}
        )
    return gate


def spec_hash(obj: dict[str, Any]) -> str:
    """sha256 of the user's spec as canonical JSON: stable across library upgrades (Flagger #1799)."""
    try:
        return fingerprint.spec_hash(obj.get("spec") or {})
    except TypeError:
        return ""


def status_of(obj: dict[str, Any]) -> GateStatus:
    raw = obj.get("status") or {}
    try:
        return GateStatus.read(raw)
    except StatusFormatError as e:
        raise BadStatus(f"status.formatVersion: {e}") from e
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadStatus(
            f"status.{where}: {first['msg']}; fix or remove the status by hand (gatekeeper will not reset a rollout)"
        ) from e


def read_requests(obj: dict[str, Any]) -> tuple[list[tuple[Request, str, str]], list[BadRequestAnnotation]]:
    """Pending operator requests as (machine request, annotation key, annotation value), in the order to apply
    them (abort, pause/resume, approve), and the annotations that do not parse."""
    found, bad = pending_requests((obj.get("metadata") or {}).get("annotations"))
    reqs = [(Request(r.action, by=r.by, stage=r.stage, reason=r.reason), r.key, r.value()) for r in found]
    return reqs, bad


def has_requests(obj: dict[str, Any]) -> bool:
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    return any(k in ann for k in ANNOTATION_KEYS.values())


FINALIZER = "gatekeeper.dev/revert-on-deletion"


def deleting(obj: dict[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


# -- writing --------------------------------------------------------------------------------------------------
class GateClient:
    """Gate objects through one ``kubernetes.client.ApiClient``; ``field_manager`` names this replica."""

    def __init__(
        self,
        api_client: Any,
        *,
        field_manager: str,
        fence: Callable[[], None] = lambda: None,
        timeout: float = 10.0,
        writer: str = "",
    ) -> None:
        from kubernetes import client

        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self.field_manager = field_manager
        self.writer = (
            writer  # written into every status (``writtenBy``): "<lease>/<identity>", or "" (no Lease)
        )
        self._fence = fence
        self._timeout = timeout

    def list(self, namespace: str | None) -> tuple[list[dict[str, Any]], str]:
        with _api("list Gates"):
            if namespace:
                out = self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, _request_timeout=self._timeout
                )
            else:
                out = self._custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, _request_timeout=self._timeout
                )
        return list(out.get("items") or []), str(out["metadata"]["resourceVersion"])

    def get(self, ref: GateRef) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            with _api(f"read Gate {ref}"):
                obj: dict[str, Any] = self._custom.get_namespaced_custom_object(
                    GROUP, VERSION, ref.namespace, PLURAL, ref.name, _request_timeout=self._timeout
                )
        except ApiFailure as e:
            if isinstance(e.__cause__, ApiException) and e.__cause__.status == 404:
                return None
            raise
        return obj

    def write_status(self, obj: dict[str, Any], status: GateStatus) -> dict[str, Any]:
        """Replace the status if the object is unchanged since read; the answer is the stored object."""
        body = status.model_copy(update={"written_by": self.writer}).model_dump(
            by_alias=True, mode="json", exclude_none=True
        )
        ops = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": obj["metadata"]["resourceVersion"]},
            {"op": "add", "path": "/status", "value": body},
        ]
        return self._patch(obj, ops, status=True, what="status")

    def clear_request(self, obj: dict[str, Any], key: str, value: str) -> dict[str, Any]:
        """Remove a request annotation, only if it still holds the value applied (a newer one survives)."""
        path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        ops = [
            {"op": "test", "path": path, "value": value},
            {"op": "remove", "path": path},
            *self._signed(obj),
        ]
        return self._patch(obj, ops, status=False, what=f"annotation {key}")

    def set_finalizer(self, obj: dict[str, Any], present: bool) -> dict[str, Any]:
        """Add or remove ``FINALIZER``, only on the version read (a concurrent change is a StaleObject)."""
        have = list((obj.get("metadata") or {}).get("finalizers") or [])
        if (FINALIZER in have) == present:
            return obj
        want = [*have, FINALIZER] if present else [f for f in have if f != FINALIZER]
        ops = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": obj["metadata"]["resourceVersion"]},
            {"op": "add", "path": "/metadata/finalizers", "value": want},
            *self._signed(obj),
        ]
        return self._patch(obj, ops, status=False, what="finalizers")

    def _signed(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """The op naming this replica as the writer of a metadata write (for the fence policy); none without."""
        if not self.writer:
            return []
        if not (obj.get("metadata") or {}).get("annotations"):
            return [{"op": "add", "path": "/metadata/annotations", "value": {WRITER_ANNOTATION: self.writer}}]
        return [{"op": "add", "path": "/metadata/annotations/" + WRITER_ANNOTATION.replace("/", "~1"),
                 "value": self.writer}]  # fmt: skip

    def _patch(
        self, obj: dict[str, Any], ops: list[dict[str, Any]], *, status: bool, what: str
    ) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        ref = GateRef.of(obj)
        self._fence()
        call = (
            self._custom.patch_namespaced_custom_object_status
            if status
            else self._custom.patch_namespaced_custom_object
        )
        try:
            out: dict[str, Any] = call(
                GROUP, VERSION, ref.namespace, PLURAL, ref.name, ops,
                _content_type="application/json-patch+json", field_manager=self.field_manager,
                _request_timeout=self._timeout,
            )  # fmt: skip
        except ApiException as e:
            if e.status in (409, 422) and self._moved(ref, obj):
                raise StaleObject(f"Gate {ref} changed since it was read") from e
            if e.status == 404:
                raise StaleObject(f"Gate {ref} is gone") from e
            raise ApiFailure(f"writing the {what} of Gate {ref} was refused: {e.status} {_message(e)}") from e
        except Exception as e:  # urllib3 / socket errors: the API server is unreachable
            raise ApiFailure(f"writing the {what} of Gate {ref} failed: {e}") from e
        return out

    def _moved(self, ref: GateRef, obj: dict[str, Any]) -> bool:
        try:
            now = self.get(ref)
        except ApiFailure:
            return False
        return now is None or now["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]

    def event(self, obj: dict[str, Any], *, kind: str, reason: str, message: str, now: float) -> None:
        """A core/v1 Event on the Gate (``kubectl describe gate`` shows it). Failures are logged, not raised."""
        ref = GateRef.of(obj)
        meta = obj["metadata"]
        stamp = rfc3339(now)
        digest = hashlib.sha256(f"{reason}{message}{now}".encode()).hexdigest()[:10]
        body = {
            "metadata": {"name": f"{ref.name}.{digest}", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": ref.name,
                "namespace": ref.namespace, "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason, "message": message[:1000], "type": kind, "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": "gatekeeper"}, "reportingComponent": "gatekeeper.dev/controller",
            "reportingInstance": self.writer or self.field_manager,  # the fence policy reads it
        }  # fmt: skip
        try:
            self._fence()
            self._core.create_namespaced_event(ref.namespace, body, _request_timeout=self._timeout)
        except Exception as e:  # an Event is a courtesy; losing one must not stop a decision
            log.warning("Event %s on Gate %s not recorded: %s", reason, ref, e)


class _api:
    """Wrap client exceptions at the boundary: ``ApiFailure`` naming what was attempted."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: Any, ev: BaseException | None, tb: Any) -> bool:
        if ev is None or isinstance(ev, ApiFailure):
            return False
        from kubernetes.client.exceptions import ApiException

        if isinstance(ev, ApiException):
            raise ApiFailure(f"{self.what}: {ev.status} {_message(ev)}") from ev
        if isinstance(ev, Exception):
            raise ApiFailure(f"{self.what}: cannot reach the API server ({ev})") from ev
        return False


def _message(e: Any) -> str:
    try:
        return str(json.loads(e.body).get("message", e.reason))
    except (ValueError, TypeError, AttributeError):
        return str(getattr(e, "reason", e))


# -- list + watch ---------------------------------------------------------------------------------------------
class Watcher:
    """A thread that lists Gates, then watches them, re-listing every ``resync`` seconds (and after any error).

    ``on_sync(objects)`` gets every full list (objects absent from it were deleted); ``on_event(type, obj)``
    gets ADDED/MODIFIED/DELETED between lists. Both run on the watcher thread.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        namespace: str | None,
        on_sync: Callable[[list[dict[str, Any]]], None],
        on_event: Callable[[str, dict[str, Any]], None],
        resync: float = 300.0,
        backoff: float = 1.0,
    ) -> None:
        self._gates = GateClient(api_client, field_manager="gatekeeper-watch")
        from kubernetes import client

        self._custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self._on_sync, self._on_event = on_sync, on_event
        self.resync, self.backoff = resync, backoff
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gate-watch", daemon=True)
        self._watch: Any = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                items, rv = self._gates.list(self.namespace)
                self._on_sync(items)
                self.synced.set()
                self._stream(rv)
            except Exception as e:  # keep watching whatever happens; the next list heals
                if self._stop.is_set():
                    break  # stopping closes the stream under us: not worth a warning
                log.warning("Gate watch restarting after: %s", e)
                self._stop.wait(self.backoff)

    def _stream(self, rv: str) -> None:
        from kubernetes import watch

        self._watch = watch.Watch()
        kw: dict[str, Any] = {"resource_version": rv, "timeout_seconds": max(int(self.resync), 1)}
        if self.namespace:
            fn, args = self._custom.list_namespaced_custom_object, (GROUP, VERSION, self.namespace, PLURAL)
        else:
            fn, args = self._custom.list_cluster_custom_object, (GROUP, VERSION, PLURAL)
        deadline = time.monotonic() + self.resync
        for ev in self._watch.stream(fn, *args, **kw):
            kind, obj = ev.get("type"), ev.get("object")
            if kind == "ERROR":  # e.g. 410 Gone: list again
                return
            if kind in ("ADDED", "MODIFIED", "DELETED") and isinstance(obj, dict):
                self._on_event(kind, obj)
            if self._stop.is_set() or time.monotonic() > deadline:
                break
        self._watch.stop()
