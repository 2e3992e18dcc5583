"""Where gates are read from, and the view models the dashboard and the integrations render.

`GateRepository` is the one seam: `KubernetesGateRepository` reads Gate resources (group gatekeeper.dev,
v1alpha1, plural gates); `InMemoryGateRepository` holds records for the demo, gate files (`--gates-dir`) and
tests. A repository never decides anything: it returns what is stored, and a stored object it cannot read is
returned with a `problem` (shown on the dashboard), never an exception that hides every other gate.

Errors, grouped by what the caller should do:
    GateNotFound            -> tell the user (HTTP 404)
    ActionRejected          -> the action does not apply to the gate now (HTTP 409); the message says why
    RepositoryUnavailable   -> retry later (HTTP 503): the API server did not answer
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from gatekeeper.controller import machine
from gatekeeper.spec import GateSpec, SpecError, load_gate_text
from gatekeeper.spec.status import GateStatus, HistoryEntry, Phase, StatusFormatError

GROUP, VERSION, PLURAL = "gatekeeper.dev", "v1alpha1", "gates"
TERMINAL = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED})

__all__ = [
    "GROUP",
    "PLURAL",
    "TERMINAL",
    "VERSION",
    "ActionRejected",
    "GateDetail",
    "GateNotFound",
    "GateRecord",
    "GateRepository",
    "GateRow",
    "InMemoryGateRepository",
    "KubernetesGateRepository",
    "RepositoryUnavailable",
    "SignalRow",
    "gate_detail",
    "gate_rows",
    "load_gates_dir",
    "record_from_resource",
    "resolve_spec",
]


class GateNotFound(LookupError):
    """No gate with that namespace and name."""


class ActionRejected(ValueError):
    """The action does not apply to this gate in its current phase."""


class RepositoryUnavailable(RuntimeError):
    """The store did not answer; retry later."""


@dataclass(frozen=True)
class GateRecord:
    """A gate as stored: its spec as written (camelCase mapping), its status, and when it was created."""

    namespace: str
    name: str
    spec: dict[str, Any]
    status: GateStatus = field(default_factory=GateStatus)
    created_at: float | None = None
    problem: str = ""  # why part of the stored object could not be read


class GateRepository(Protocol):
    """Read gates and record operators' intents (approve, abort). Implementations must be thread-safe."""

    def list_gates(self) -> list[GateRecord]: ...

    def get_gate(self, *, namespace: str, name: str) -> GateRecord: ...

    def approve(self, *, namespace: str, name: str, by: str) -> GateRecord: ...

    def abort(self, *, namespace: str, name: str, by: str, reason: str) -> GateRecord: ...


# --- in memory -----------------------------------------------------------------------------------------------


class InMemoryGateRepository:
    """Records held in a dict, for the demo, gate files and tests. Approve and abort go through the
    controller's own `machine.request` (the status then reads exactly as on a cluster), and the routing
    intent an abort records is taken as done at once: there is no executor in memory."""

    def __init__(self, records: Iterable[GateRecord] = (), *, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._records: dict[tuple[str, str], GateRecord] = {(r.namespace, r.name): r for r in records}

    def put(self, record: GateRecord) -> None:
        with self._lock:
            self._records[(record.namespace, record.name)] = record

    def list_gates(self) -> list[GateRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: (r.namespace, r.name))

    def get_gate(self, *, namespace: str, name: str) -> GateRecord:
        with self._lock:
            return self._get(namespace, name)

    def approve(self, *, namespace: str, name: str, by: str) -> GateRecord:
        with self._lock:
            record = self._get(namespace, name)
            check_approvable(record)
            return self._apply(record, machine.Request("approve", by=by))

    def abort(self, *, namespace: str, name: str, by: str, reason: str) -> GateRecord:
        with self._lock:
            record = self._get(namespace, name)
            check_abortable(record)
            return self._apply(record, machine.Request("abort", by=by, reason=reason))

    def _apply(self, record: GateRecord, req: machine.Request) -> GateRecord:
        now = self._clock()
        status, actions = machine.request(record.status, req, now, _policy(record))
        for action in actions:
            if isinstance(action, machine.Route):
                status = machine.applied(status, weight=action.intent.to_weight, now=now)
        updated = replace(record, status=status)
        self._records[(record.namespace, record.name)] = updated
        return updated

    def _get(self, namespace: str, name: str) -> GateRecord:
        try:
            return self._records[(namespace, name)]
        except KeyError:
            raise GateNotFound(f"no gate {namespace}/{name}") from None


def _policy(record: GateRecord) -> machine.Policy:
    """The machine's policy for the record; operator requests need none of the spec, so an unresolvable spec
    (arguments not filled) still allows approve and abort."""
    try:
        return machine.Policy.from_gate(resolve_spec(record))
    except SpecError:
        return machine.Policy(stages=(), outage_budget=0.0, consecutive_error_limit=0)


def check_approvable(record: GateRecord) -> None:
    if record.status.phase != Phase.AWAITING_APPROVAL:
        raise ActionRejected(
            f"{record.namespace}/{record.name} is {record.status.phase.value}, not AwaitingApproval: "
            "there is nothing to approve"
        )


def check_abortable(record: GateRecord) -> None:
    if record.status.phase in TERMINAL:
        raise ActionRejected(f"{record.namespace}/{record.name} is already {record.status.phase.value}")


def load_gates_dir(path: str | Path, *, namespace: str = "default") -> InMemoryGateRepository:
    """Every `*.yaml`/`*.yml` gate file under `path` as a Pending record; a file that does not load is kept
    with its problem, so one bad file never hides the others."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"--gates-dir {root}: not a directory")
    records = []
    for file in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        try:
            raw = yaml.safe_load(file.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            records.append(GateRecord(namespace=namespace, name=file.stem, spec={}, problem=f"{file}: {e}"))
            continue
        if not isinstance(raw, dict) or raw.get("kind") != "Gate":
            continue  # other manifests (integrations, charts) may live beside gates
        spec = raw["spec"] if isinstance(raw.get("spec"), dict) else raw
        meta = raw.get("metadata") or {}
        name = str(meta.get("name") or spec.get("name") or file.stem)
        records.append(
            GateRecord(namespace=str(meta.get("namespace") or namespace), name=name, spec=dict(spec))
        )
    return InMemoryGateRepository(records)


# --- Kubernetes ----------------------------------------------------------------------------------------------


class KubernetesGateRepository:
    """Gate resources through the API server. `api_client` is a `kubernetes.client.ApiClient`.

    Approve and abort are the operator requests of `gatekeeper.ops.actions` (the same functions the CLI
    calls); the controller applies them at its next look. They are made as the identity the API server
    authenticates for `api_client` (the dashboard's service account), so RBAC, the admission policy and the
    stage's approval group judge that identity; the name the person typed is kept in the request's reason.
    """

    def __init__(self, api_client: Any, *, namespace: str | None = None, timeout: float = 10.0) -> None:
        from kubernetes import client

        self._api = client.CustomObjectsApi(api_client)
        self._client = api_client
        self._namespace = namespace
        self._timeout = timeout

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: str | None = None, *, context: str | None = None, namespace: str | None = None
    ) -> KubernetesGateRepository:
        """From a kubeconfig file, or the in-cluster service account when `kubeconfig` is None."""
        from kubernetes import client, config

        if kubeconfig:
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
        else:
            config.load_incluster_config()
            api = client.ApiClient()
        return cls(api, namespace=namespace)

    def list_gates(self) -> list[GateRecord]:
        def call() -> Any:
            if self._namespace:
                return self._api.list_namespaced_custom_object(
                    GROUP, VERSION, self._namespace, PLURAL, _request_timeout=self._timeout
                )
            return self._api.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, _request_timeout=self._timeout
            )

        body = self._call(call, what="list gates")
        records = [record_from_resource(obj) for obj in body.get("items", [])]
        return sorted(records, key=lambda r: (r.namespace, r.name))

    def get_gate(self, *, namespace: str, name: str) -> GateRecord:
        obj = self._call(
            lambda: self._api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self._timeout
            ),
            what=f"read gate {namespace}/{name}",
        )
        return record_from_resource(obj)

    def approve(self, *, namespace: str, name: str, by: str) -> GateRecord:
        actions = _actions()
        check_approvable(self.get_gate(namespace=namespace, name=name))
        note = f"via the dashboard; the person gave their name as {by}"
        self._call(
            lambda: actions.approve(self._client, namespace=namespace, name=name, reason=note),
            what=f"approve {namespace}/{name}",
        )
        return self.get_gate(namespace=namespace, name=name)

    def abort(self, *, namespace: str, name: str, by: str, reason: str) -> GateRecord:
        actions = _actions()
        check_abortable(self.get_gate(namespace=namespace, name=name))
        note = f"{reason} (via the dashboard; the person gave their name as {by})"
        self._call(
            lambda: actions.abort(self._client, namespace=namespace, name=name, reason=note),
            what=f"abort {namespace}/{name}",
        )
        return self.get_gate(namespace=namespace, name=name)

    def _call(self, fn: Any, *, what: str) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        actions = _actions()
        try:
            return fn()
        except actions.Unreachable as e:
            raise RepositoryUnavailable(f"{what}: {e}") from e
        except actions.ActionError as e:  # InvalidAction, Refused: the message says what to change
            raise ActionRejected(str(e)) from e
        except ApiException as e:
            if e.status == 404:
                raise GateNotFound(f"{what}: not found") from e
            if e.status in (409, 422):
                raise ActionRejected(f"{what}: {e.reason}") from e
            raise RepositoryUnavailable(f"{what}: the API server answered {e.status} {e.reason}") from e
        except HTTPError as e:
            raise RepositoryUnavailable(f"{what}: the API server did not answer ({e})") from e


def _actions() -> Any:
    from gatekeeper.ops import actions

    return actions


def record_from_resource(obj: dict[str, Any]) -> GateRecord:
    """A Gate resource as a record; an unreadable status becomes a `problem`, never an exception."""
    meta = obj.get("metadata") or {}
    problem = ""
    try:
        status = GateStatus.read(obj.get("status"))
    except StatusFormatError as e:
        status, problem = GateStatus(), f"status unreadable: {e}"
    except ValidationError as e:
        status = GateStatus()
        problem = (
            f"status unreadable: {e.errors()[0].get('msg')} at {'.'.join(map(str, e.errors()[0]['loc']))}"
        )
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    return GateRecord(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or spec.get("name") or "?"),
        spec=dict(spec),
        status=status,
        created_at=_parse_time(meta.get("creationTimestamp")),
        problem=problem,
    )


def _parse_time(value: Any) -> float | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def resolve_spec(record: GateRecord, *, args: dict[str, str] | None = None) -> GateSpec:
    """The record's spec as a validated `GateSpec`, with `args` filled. Raises `SpecError` naming each field."""
    body = {"name": record.name, **record.spec}
    return load_gate_text(
        yaml.safe_dump(body, sort_keys=False), args=args, source=f"{record.namespace}/{record.name}"
    )


# --- view models ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateRow:
    """One line of the gate list."""

    namespace: str
    name: str
    phase: str
    stage: int  # 1 = first
    stages: int
    weight: float
    verdict: str
    reason: str
    age_seconds: float | None
    last_look_seconds: float | None
    problem: str = ""
    can_approve: bool = False
    can_abort: bool = False


@dataclass(frozen=True)
class SignalRow:
    """A signal at the last look: its verdict and the evidence numbers the controller kept."""

    name: str
    verdict: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class GateDetail:
    row: GateRow
    description: str
    owners: tuple[str, ...]
    signals: tuple[SignalRow, ...]
    history: tuple[HistoryEntry, ...]  # newest first
    conditions: tuple[dict[str, str], ...]
    escalation: dict[str, Any]
    approvals: tuple[str, ...]
    spec_yaml: str
    stages: tuple[StageInfo, ...] = ()
    in_stage_seconds: float | None = None  # time since the current stage began
    window_closed: bool = False  # the current stage is past its rollback window
    side_effects: int = 0  # canary side effects counted in the current stage


@dataclass(frozen=True)
class StageInfo:
    """One stage as the progress strip shows it."""

    index: int  # 1 = first
    weight: float
    min_duration: str
    window: str  # "reversible", "forward-fix-only", "closes after 300 side effects or 30m"
    state: str  # done | current | pending


def gate_rows(records: Iterable[GateRecord], *, now: float) -> list[GateRow]:
    return [_row(r, now=now) for r in records]


def _row(record: GateRecord, *, now: float) -> GateRow:
    st = record.status
    stages = record.spec.get("stages") if isinstance(record.spec.get("stages"), list) else None
    return GateRow(
        namespace=record.namespace,
        name=record.name,
        phase=st.phase.value,
        stage=st.stage + 1,
        stages=len(stages) if stages else 1,
        weight=st.weight,
        verdict=st.verdict or "",
        reason=st.reason,
        age_seconds=None if record.created_at is None else max(now - record.created_at, 0.0),
        last_look_seconds=None if st.last_evaluated_at is None else max(now - st.last_evaluated_at, 0.0),
        problem=record.problem,
        can_approve=st.phase == Phase.AWAITING_APPROVAL,
        can_abort=st.phase not in TERMINAL,
    )


def gate_detail(record: GateRecord, *, now: float) -> GateDetail:
    st = record.status
    last = st.history[-1] if st.history else None
    signals: tuple[SignalRow, ...] = ()
    if last is not None:
        signals = tuple(
            SignalRow(name=n, verdict=v, evidence=_as_dict(last.evidence.get(n)))
            for n, v in last.signals.items()
        )
    owners = record.spec.get("owners") if isinstance(record.spec.get("owners"), list) else []
    return GateDetail(
        row=_row(record, now=now),
        description=str(record.spec.get("description") or ""),
        owners=tuple(str(o) for o in owners),
        signals=signals,
        history=tuple(reversed(st.history)),
        conditions=tuple(c.model_dump() for c in st.conditions),
        escalation=dict(st.escalation),
        approvals=tuple(st.approvals),
        spec_yaml=yaml.safe_dump(record.spec, sort_keys=False) if record.spec else "",
        stages=_stages(record),
        in_stage_seconds=None if st.stage_started_at is None else max(now - st.stage_started_at, 0.0),
        window_closed=bool(st.window_closed),
        side_effects=int(st.side_effects or 0),
    )


def _stages(record: GateRecord) -> tuple[StageInfo, ...]:
    raw = record.spec.get("stages") if isinstance(record.spec.get("stages"), list) else [{"weight": 100}]
    st = record.status
    finished = st.phase.value == "Promoted"
    out = []
    for i, s in enumerate(raw):
        s = s if isinstance(s, dict) else {}
        state = "done" if finished or i < st.stage else ("current" if i == st.stage else "pending")
        weight = s.get("weight")
        out.append(
            StageInfo(
                index=i + 1,
                weight=float(weight)
                if isinstance(weight, int | float) and not isinstance(weight, bool)
                else 0.0,
                min_duration=str(s.get("minDuration") or ""),
                window=_window_text(s.get("rollbackWindow")),
                state=state,
            )
        )
    return tuple(out)


def _window_text(raw: Any) -> str:
    if not isinstance(raw, dict):
        return "reversible"
    mode = str(raw.get("mode") or "reversible")
    if mode != "closes":
        return mode
    parts = []
    if raw.get("afterSideEffects") is not None:
        parts.append(f"{raw['afterSideEffects']} side effects")
    if raw.get("after") is not None:
        parts.append(str(raw["after"]))
    return "closes after " + (" or ".join(parts) or "?")


def _as_dict(x: Any) -> dict[str, Any]:
    return dict(x) if isinstance(x, dict) else ({} if x is None else {"value": x})
