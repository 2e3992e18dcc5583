"""Decision records kept beside their Gate: one ConfigMap per Gate, owned by it.

Why a ConfigMap and not the Gate's status: the status is rewritten at every look and must stay small (every
watcher of Gates receives it whole), while records are written only when the gate acts and are read only when
someone asks for a report. Why not a resource of our own: a ConfigMap needs no CRD to install or upgrade (Helm
never upgrades CRDs), and the ownerReference lets the garbage collector delete the records with their Gate.

Layout of ``gatekeeper-decisions-<gate>`` in the Gate's namespace:

* ``binaryData["decision-<seq>.json.gz"]``: one gzipped JSON record (`gatekeeper.controller.decisions`);
  ``seq`` counts the Gate's decisions from 1 and never repeats, so decision 7 stays decision 7;
* annotation ``gatekeeper.dev/decisions``: the index (seq, time, action, stage, weight, verdict, phase,
  bytes), so a list of decisions needs no decompression;
* labels ``app.kubernetes.io/managed-by: gatekeeper`` and ``gatekeeper.dev/gate`` (the Gate's name, when it
  fits a label), annotation ``gatekeeper.dev/gate`` (its full name), an ownerReference to the Gate's UID.

Bounded: the newest `MAX_RECORDS` records within `MAX_BYTES` compressed bytes (a ConfigMap holds at most
1 MiB); older ones are dropped when a new one is written. A ConfigMap of that name that gatekeeper does not
manage is never touched (`NotOurs`). One that belonged to an earlier Gate of the same name (another UID) is
taken over and its records dropped.

Writes: one GET and one create or update (under the resourceVersion read) per decision, each behind the
Lease check (``fence``); a lost race re-reads and retries. Nothing is written on a look that does not act.
RBAC: ``configmaps`` get, create, update (no list, watch or delete).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gatekeeper.controller.decisions import build_record, decisions_between, decode, encode, summary_of
from gatekeeper.judge import Judgement
from gatekeeper.routing.base import WRITER_ANNOTATION
from gatekeeper.spec.status import GateStatus

__all__ = [
    "INDEX_ANNOTATION",
    "MAX_BYTES",
    "MAX_RECORDS",
    "DecisionStore",
    "NotOurs",
    "Recorder",
    "StoreUnavailable",
    "Stored",
    "configmap_name",
]

log = logging.getLogger("gatekeeper.controller")

MAX_RECORDS = 20
MAX_BYTES = 640 * 1024
INDEX_ANNOTATION = "gatekeeper.dev/decisions"
GATE_ANNOTATION = "gatekeeper.dev/gate"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gatekeeper"}
_PREFIX = "gatekeeper-decisions-"


class NotOurs(RuntimeError):
    """A ConfigMap with the records' name exists and gatekeeper does not manage it: it is left alone."""


class StoreUnavailable(RuntimeError):
    """The API server refused or did not answer; the message says which."""


@dataclass(frozen=True)
class Stored:
    """A record as listed in the index."""

    seq: int
    time: float
    action: str
    stage: int
    weight: float
    verdict: str
    phase: str
    human_hold: bool
    bytes: int

    @property
    def key(self) -> str:
        return _key(self.seq)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "time": self.time, "action": self.action, "stage": self.stage,
            "weight": self.weight, "verdict": self.verdict, "phase": self.phase,
            "human_hold": self.human_hold, "bytes": self.bytes,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stored:
        return cls(
            seq=int(d["seq"]), time=float(d["time"]), action=str(d.get("action", "")),
            stage=int(d.get("stage", 0)), weight=float(d.get("weight", 0.0)),
            verdict=str(d.get("verdict", "")), phase=str(d.get("phase", "")),
            human_hold=bool(d.get("human_hold", False)), bytes=int(d.get("bytes", 0)),
        )  # fmt: skip


def configmap_name(gate: str) -> str:
    """``gatekeeper-decisions-<gate>``; a name too long for Kubernetes is cut and ends in a hash of the whole."""
    name = _PREFIX + gate
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(gate.encode()).hexdigest()[:12]
    return f"{name[:240]}-{digest}"


def _key(seq: int) -> str:
    return f"decision-{seq:06d}.json.gz"


class DecisionStore:
    """Decision records of Gates through one ``kubernetes.client.ApiClient``."""

    def __init__(
        self,
        api_client: Any,
        *,
        field_manager: str = "gatekeeper",
        fence: Callable[[], None] = lambda: None,
        timeout: float = 10.0,
        max_records: int = MAX_RECORDS,
        max_bytes: int = MAX_BYTES,
        writer: str = "",
    ) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self.field_manager, self._fence, self._timeout = field_manager, fence, timeout
        self.writer = writer  # "<lease>/<identity>" in WRITER_ANNOTATION, for the chart's fence policy
        self.max_records, self.max_bytes = max_records, max_bytes

    # -- writing --------------------------------------------------------------------------------------------
    def write(self, gate: dict[str, Any], record: dict[str, Any], *, attempts: int = 3) -> Stored:
        """Store ``record`` for the Gate object ``gate``; the same decision (time and action) written again
        replaces itself. Returns its index entry."""
        blob, stored = encode(record)
        for attempt in range(1, attempts + 1):
            cm = self._get(gate["metadata"]["namespace"], configmap_name(gate["metadata"]["name"]))
            try:
                return self._put(gate, cm, blob, stored)
            except _Conflict:
                if attempt == attempts:
                    raise StoreUnavailable(
                        f"the decision records of Gate {_ref(gate)} kept changing under this write"
                    ) from None
        raise AssertionError("unreachable")

    def _put(
        self, gate: dict[str, Any], cm: dict[str, Any] | None, blob: bytes, record: dict[str, Any]
    ) -> Stored:
        meta = gate["metadata"]
        uid = meta.get("uid")
        index: list[Stored] = []
        data: dict[str, str] = {}
        if cm is not None:
            _check_ours(cm, meta["name"])
            if _owner_uid(cm) == uid:
                index = _index_of(cm)
                data = dict(cm.get("binaryData") or {})
        same = next((s for s in index if s.time == record["time"] and s.action == record["action"]), None)
        seq = same.seq if same is not None else max((s.seq for s in index), default=0) + 1
        entry = Stored.from_dict({**summary_of(record), "seq": seq, "bytes": len(blob)})
        index = sorted([s for s in index if s.seq != seq] + [entry], key=lambda s: s.seq)
        data[entry.key] = base64.b64encode(blob).decode()
        while len(index) > 1 and (
            len(index) > self.max_records or sum(s.bytes for s in index) > self.max_bytes
        ):
            data.pop(index.pop(0).key, None)
        data = {k: v for k, v in data.items() if k in {s.key for s in index}}
        body = self._body(gate, cm, index, data)
        self._fence()
        ns, name = meta["namespace"], configmap_name(meta["name"])
        if cm is None:
            self._call(lambda: self._core.create_namespaced_config_map(
                ns, body, field_manager=self.field_manager, _request_timeout=self._timeout), what="create")  # fmt: skip
        else:
            self._call(lambda: self._core.replace_namespaced_config_map(
                name, ns, body, field_manager=self.field_manager, _request_timeout=self._timeout), what="update")  # fmt: skip
        return entry

    def _body(
        self, gate: dict[str, Any], cm: dict[str, Any] | None, index: list[Stored], data: dict[str, str]
    ) -> dict[str, Any]:
        meta = gate["metadata"]
        name = meta["name"]
        labels = {**MANAGED_BY, **({"gatekeeper.dev/gate": name} if len(name) <= 63 else {})}
        owner = {
            "apiVersion": gate.get("apiVersion", "gatekeeper.dev/v1alpha1"), "kind": gate.get("kind", "Gate"),
            "name": name, "uid": meta.get("uid"), "controller": True,
        }  # fmt: skip
        metadata: dict[str, Any] = {
            "name": configmap_name(name),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {
                GATE_ANNOTATION: name,
                INDEX_ANNOTATION: json.dumps([s.to_dict() for s in index], separators=(",", ":")),
                **({WRITER_ANNOTATION: self.writer} if self.writer else {}),
            },
        }
        if meta.get("uid"):
            metadata["ownerReferences"] = [owner]
        if cm is not None:
            metadata["resourceVersion"] = cm["metadata"]["resourceVersion"]
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "binaryData": data}

    # -- reading --------------------------------------------------------------------------------------------
    def index(self, namespace: str, name: str, *, uid: str | None = None) -> list[Stored]:
        """The Gate's recorded decisions, oldest first ([] when none). ``uid``: only records of that Gate
        (an earlier Gate of the same name left records behind until the garbage collector removes them)."""
        cm = self._readable(namespace, name, uid)
        return _index_of(cm) if cm is not None else []

    def read(
        self,
        namespace: str,
        name: str,
        *,
        seq: int | None = None,
        at: float | None = None,
        uid: str | None = None,
    ) -> tuple[Stored, dict[str, Any]] | None:
        """One record by number (``seq``), by decision time (``at``, to the millisecond), or the newest."""
        cm = self._readable(namespace, name, uid)
        if cm is None:
            return None
        index = _index_of(cm)
        if seq is not None:
            found = next((s for s in index if s.seq == seq), None)
        elif at is not None:
            found = next((s for s in index if abs(s.time - at) < 0.001), None)
        else:
            found = index[-1] if index else None
        raw = (cm.get("binaryData") or {}).get(found.key) if found is not None else None
        if found is None or raw is None:
            return None
        return found, decode(base64.b64decode(raw))

    def _readable(self, namespace: str, name: str, uid: str | None) -> dict[str, Any] | None:
        cm = self._get(namespace, configmap_name(name))
        if cm is None:
            return None
        try:
            _check_ours(cm, name)
        except NotOurs:
            return None
        if uid is not None and _owner_uid(cm) not in (uid, None):
            return None
        return cm

    # -- the API --------------------------------------------------------------------------------------------
    def _get(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            resp = self._core.read_namespaced_config_map(
                name, namespace, _request_timeout=self._timeout, _preload_content=False
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise StoreUnavailable(f"reading ConfigMap {namespace}/{name}: {e.status} {e.reason}") from e
        except Exception as e:  # urllib3 / socket errors
            raise StoreUnavailable(f"reading ConfigMap {namespace}/{name}: {e}") from e
        out: dict[str, Any] = json.loads(resp.data)
        return out

    def _call(self, fn: Callable[[], Any], *, what: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn()
        except ApiException as e:
            if e.status == 409:
                raise _Conflict() from e
            raise StoreUnavailable(f"{what} of the decision records: {e.status} {e.reason}") from e
        except Exception as e:
            raise StoreUnavailable(f"{what} of the decision records: {e}") from e


class _Conflict(Exception):
    pass


def _ref(gate: dict[str, Any]) -> str:
    return f"{gate['metadata']['namespace']}/{gate['metadata']['name']}"


def _check_ours(cm: dict[str, Any], gate: str) -> None:
    meta = cm.get("metadata") or {}
    labels, ann = meta.get("labels") or {}, meta.get("annotations") or {}
    if labels.get("app.kubernetes.io/managed-by") != "gatekeeper" or ann.get(GATE_ANNOTATION) != gate:
        raise NotOurs(
            f"ConfigMap {meta.get('namespace')}/{meta.get('name')} exists and is not gatekeeper's record of "
            f"Gate {gate}; it is left alone (rename or delete it to keep decision records)"
        )


def _owner_uid(cm: dict[str, Any]) -> str | None:
    refs = (cm.get("metadata") or {}).get("ownerReferences") or []
    return next((r.get("uid") for r in refs if r.get("kind") == "Gate"), None)


def _index_of(cm: dict[str, Any]) -> list[Stored]:
    raw = ((cm.get("metadata") or {}).get("annotations") or {}).get(INDEX_ANNOTATION) or "[]"
    try:
        entries = [Stored.from_dict(d) for d in json.loads(raw)]
    except (ValueError, TypeError, KeyError):
        log.warning("ConfigMap %s: unreadable decision index", (cm.get("metadata") or {}).get("name"))
        return []
    have = cm.get("binaryData") or {}
    return sorted((s for s in entries if s.key in have), key=lambda s: s.seq)


class Recorder:
    """Turns the decisions a write made into records and stores them (`gatekeeper.controller.executor`)."""

    def __init__(self, store: DecisionStore) -> None:
        self.store = store

    def record(
        self,
        *,
        gate: dict[str, Any],
        before: GateStatus,
        after: GateStatus,
        judgement: Judgement | None,
        by: str = "",
    ) -> list[Stored]:
        """Store a record for every decision between ``before`` and ``after`` (usually none: nothing is
        written then). ``gate`` is the Gate object as stored after the decision."""
        out = []
        for d in decisions_between(before, after):
            record = build_record(
                decision=d, gate=gate, status=after, judgement=judgement, spec_hash=after.spec_hash, by=by
            )
            if after.dry_run:
                record["notes"].append("dry run: the routing change was only validated, nothing moved")
            out.append(self.store.write(gate, record))
        return out
