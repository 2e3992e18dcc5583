"""Operator actions on a Gate, made through the Kubernetes API server, and the view model of its status.

`approve`, `abort`, `pause` and `resume` record a request on the Gate as an annotation; the controller applies
it at its next look. Because the request is an ordinary `patch` of the Gate, Kubernetes RBAC decides who may
make it (the chart's `<release>-operator` ClusterRole grants exactly that), and the API server authenticates
the user named in it. The CLI and the dashboard call these functions; they never route traffic themselves.

The contract with the controller (the codec is `gatekeeper.spec.crd.OperatorRequest`):

=====================================  =====================================================================
annotation key                         value (compact JSON)
=====================================  =====================================================================
``gatekeeper.dev/approve``             ``{"action":"approve","by":USER,"at":RFC3339,"stage":N,"reason"?:TEXT}``
``gatekeeper.dev/abort``               ``{"action":"abort","by":USER,"at":RFC3339,"reason"?:TEXT}``
``gatekeeper.dev/pause``               ``{"action":"pause"|"resume","by":USER,"at":RFC3339,"reason"?:TEXT}``
=====================================  =====================================================================

* `by` is the username the API server authenticated (SelfSubjectReview), `stage` is 0-based (`status.stage`).
* Pause and resume share one key: the latest wins, so "pause, then resume" before the controller looks is a
  no-op, and a stale resume can never un-pause a later hold.
* The controller reads every key present (`gatekeeper.spec.crd.pending_requests`: abort, then pause/resume,
  then approve), applies each as a machine `Request(action, by, stage, reason)`, writes the status, then
  removes the key with a JSON patch `[test value, remove]`: a newer request written meanwhile survives the
  removal and is applied next. A value that does not parse gets an Event and is removed.
* A pending request is visible in `GateView.pending` until the controller consumes it.

The chart's ValidatingAdmissionPolicy (`<release>-requests`, CEL in the API server) enforces the claims:
`by` must be the requesting user, and an approval must come from a member of the stage's approving group.
`OperatorRequest.parse` is strict (no repeated or unknown keys) so the policy's check of `"by":"<user>"` is
sound. Checks made here before writing (so a person gets a clear answer at once): the gate exists; it has not
finished (Promoted, RolledBack, Aborted); an approval names a stage that exists, is not past, needs an
approval, and the user is in the stage's authority group (SelfSubjectReview groups); resume needs a paused
or halted gate.

Errors are grouped by what the caller should do (`EXIT_CODES` maps them to CLI exit codes):

* `InvalidAction` (2): the command does not fit this gate (not found, finished, no such stage). Fix it.
* `Refused` (1): the API server (RBAC, admission) or the stage's authority refused who you are. Ask for the
  role or group named in the message.
* `Unreachable` (3): the API server could not be reached or failed. Check the kubeconfig and the network.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gatekeeper.spec.crd import GROUP, PLURAL, VERSION, OperatorRequest, pending_requests, spec_hash
from gatekeeper.spec.durations import format_duration
from gatekeeper.spec.models import Stage
from gatekeeper.spec.status import GateStatus, Phase, StatusFormatError

__all__ = [
    "EXIT_CODES",
    "ActionError",
    "ActionResult",
    "GateView",
    "Identity",
    "InvalidAction",
    "Refused",
    "Unreachable",
    "abort",
    "approve",
    "gate_view",
    "list_gates",
    "pause",
    "resume",
    "status",
    "whoami",
]

FINISHED = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED})
TIMEOUT = 10.0  # seconds, every API call
Clock = Callable[[], float]


class ActionError(Exception):
    """Base of the operator-action errors."""


class InvalidAction(ActionError, ValueError):
    """The command does not fit the gate; the message says what to change."""


class Refused(ActionError):
    """Who you are is not allowed to do this; the message names the role or group needed."""


class Unreachable(ActionError):
    """The API server could not be reached or failed; nothing was written."""


EXIT_CODES: dict[type[ActionError], int] = {InvalidAction: 2, Refused: 1, Unreachable: 3}


@dataclass(frozen=True)
class Identity:
    username: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class ActionResult:
    """What an action did: the request written (None when there was nothing to do) and a sentence."""

    namespace: str
    name: str
    action: str
    changed: bool
    message: str
    request: OperatorRequest | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "namespace": self.namespace,
            "name": self.name,
            "action": self.action,
            "changed": self.changed,
            "message": self.message,
        }
        if self.request is not None:
            out["annotation"] = {self.request.key: self.request.value()}
        return out


# -- the view model -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageView:
    index: int
    weight: float
    min_duration: str
    authority: str  # "auto" or the approving group
    window: str  # reversible | forward-fix-only | closes
    needs_approval: bool
    problem: str = ""  # the stage does not validate (the controller will say so too)


@dataclass(frozen=True)
class GateView:
    """Everything `gatekeeper status` and the dashboard show about one Gate resource; `as_dict` is its JSON."""

    namespace: str
    name: str
    created: str
    generation: int | None
    status: GateStatus
    stages: tuple[StageView, ...]
    pending: tuple[OperatorRequest, ...]
    bad_requests: tuple[str, ...]
    spec_hash: str
    routing: dict[str, Any] | None
    status_problem: str = ""  # the status does not validate: shown, never fatal

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def phase(self) -> Phase:
        return self.status.phase

    @property
    def stage(self) -> int:
        return self.status.stage

    @property
    def approvals(self) -> list[str]:
        return self.status.approvals

    @property
    def spec_changed(self) -> bool:
        """The spec differs from the one the controller last acted on (it restarts the analysis)."""
        return bool(self.status.spec_hash) and self.status.spec_hash != self.spec_hash

    def pending_action(self, key_action: str) -> str | None:
        """The action of the pending request under `key_action`'s annotation key, if any."""
        key = OperatorRequest(key_action, "", "").key  # type: ignore[arg-type]
        return next((r.action for r in self.pending if r.key == key), None)

    def as_dict(self, *, history: int = 10) -> dict[str, Any]:
        st = self.status.model_dump(mode="json", by_alias=True)
        st["history"] = st["history"][-history:] if history else []
        return {
            "namespace": self.namespace,
            "name": self.name,
            "created": self.created,
            "generation": self.generation,
            "specHash": self.spec_hash,
            "specChanged": self.spec_changed,
            "routing": self.routing,
            "stages": [
                {
                    "index": s.index,
                    "weight": s.weight,
                    "minDuration": s.min_duration,
                    "authority": s.authority,
                    "rollbackWindow": s.window,
                    "needsApproval": s.needs_approval,
                    "problem": s.problem,
                }
                for s in self.stages
            ],
            "pending": [{"action": r.action, "by": r.by, "at": r.at, "stage": r.stage} for r in self.pending],
            "badRequests": list(self.bad_requests),
            "statusProblem": self.status_problem,
            "status": st,
        }


def gate_view(obj: dict[str, Any]) -> GateView:
    """The view of a Gate resource as the API server returns it. Never raises on a bad spec or status."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    problem = ""
    try:
        st = GateStatus.read(obj.get("status"))
    except StatusFormatError as exc:
        st, problem = GateStatus(), f"status does not match this gatekeeper version: {exc}"
    except ValidationError as exc:
        st, problem = GateStatus(), f"status does not match this gatekeeper version: {exc.errors()[0]['msg']}"
    pending, bad = pending_requests(meta.get("annotations"))
    try:
        digest = spec_hash(spec)
    except TypeError as exc:
        digest = f"unhashable: {exc}"
    return GateView(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        created=meta.get("creationTimestamp", ""),
        generation=meta.get("generation"),
        status=st,
        stages=tuple(_stage_view(i, raw) for i, raw in enumerate(spec.get("stages") or [{"weight": 100}])),
        pending=tuple(pending),
        bad_requests=tuple(str(b) for b in bad),
        spec_hash=digest,
        routing=spec.get("routing") if isinstance(spec.get("routing"), dict) else None,
        status_problem=problem,
    )


def _stage_view(index: int, raw: Any) -> StageView:
    try:
        s = Stage.model_validate(raw)
    except ValidationError as exc:
        weight = raw.get("weight") if isinstance(raw, dict) else None
        weight = float(weight) if isinstance(weight, int | float) and not isinstance(weight, bool) else 0.0
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "stage"
        return StageView(index, weight, "", "auto", "", False, problem=f"{where}: {err['msg']}")
    approval = s.authority.mode == "approval" and bool(s.authority.group)
    return StageView(
        index=index,
        weight=s.weight,
        min_duration=format_duration(s.min_duration),
        authority=s.authority.group if approval and s.authority.group else "auto",
        window=s.rollback_window.mode.value,
        needs_approval=approval,
    )


# -- reading --------------------------------------------------------------------------------------------------
def whoami(api: Any) -> Identity:
    """The user the API server authenticates for `api` (SelfSubjectReview)."""
    from kubernetes import client

    review = _call(
        lambda: client.AuthenticationV1Api(api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            _request_timeout=TIMEOUT,
        ),
        doing="ask the API server who you are",
        namespace="",
    )
    info = review.status.user_info
    return Identity(info.username or "", tuple(info.groups or ()))


def status(api: Any, *, namespace: str, name: str) -> GateView:
    """The view of one gate."""
    return gate_view(_read(api, namespace=namespace, name=name))


def list_gates(api: Any, *, namespace: str | None) -> list[GateView]:
    """Views of every gate in `namespace` (None: all namespaces), sorted by namespace and name."""
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    if namespace is None:
        listing = _call(
            lambda: custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, _request_timeout=TIMEOUT),
            doing="list gates",
            namespace="",
        )
    else:
        listing = _call(
            lambda: custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, _request_timeout=TIMEOUT
            ),
            doing="list gates",
            namespace=namespace,
        )
    views = [gate_view(obj) for obj in listing.get("items", [])]
    return sorted(views, key=lambda v: (v.namespace, v.name))


# -- acting ---------------------------------------------------------------------------------------------------
def approve(
    api: Any,
    *,
    namespace: str,
    name: str,
    stage: int | None = None,
    reason: str = "",
    clock: Clock = time.time,
    by: str | None = None,
) -> ActionResult:
    """Approve `stage` (default: the current one) of a stage whose authority is an approval group."""
    view = _live(api, namespace=namespace, name=name, action="approve")
    index = view.stage if stage is None else stage
    if index < 0 or index >= len(view.stages):
        last = len(view.stages) - 1
        raise InvalidAction(f"gate {view.ref} has no stage {index}; its stages are 0..{last}")
    if index < view.stage:
        raise InvalidAction(
            f"stage {index} of gate {view.ref} is already past (the gate is at stage {view.stage})"
        )
    target = view.stages[index]
    if not target.needs_approval:
        raise InvalidAction(
            f"stage {index} of gate {view.ref} decides by itself (authority: auto); nothing to approve"
        )
    me = _identity(api, by)
    if target.authority not in me.groups:
        groups = ", ".join(me.groups) or "none"
        raise Refused(
            f"you are {me.username} (groups: {groups}); stage {index} of gate {view.ref} needs an approval by a "
            f"member of group {target.authority!r}"
        )
    done = next((a for a in view.approvals if a.startswith(f"stage-{index}:")), None)
    if done is not None:
        return ActionResult(namespace, name, "approve", False, f"stage {index} is already approved ({done})")
    req = OperatorRequest("approve", me.username, _rfc3339(clock()), index, reason)
    _write(api, view, req)
    return ActionResult(
        namespace,
        name,
        "approve",
        True,
        f"approval of stage {index} recorded; the controller applies it",
        req,
    )


def abort(
    api: Any, *, namespace: str, name: str, reason: str = "", clock: Clock = time.time, by: str | None = None
) -> ActionResult:
    """Ask the controller to stop the rollout and restore the original routing."""
    view = _live(api, namespace=namespace, name=name, action="abort")
    req = OperatorRequest("abort", _identity(api, by).username, _rfc3339(clock()), None, reason)
    _write(api, view, req)
    return ActionResult(
        namespace, name, "abort", True, "abort recorded; the controller reverts the routing", req
    )


def pause(
    api: Any, *, namespace: str, name: str, reason: str = "", clock: Clock = time.time, by: str | None = None
) -> ActionResult:
    """Ask the controller to stop advancing (a failure still reverts or halts: pause stops progress only)."""
    view = _live(api, namespace=namespace, name=name, action="pause")
    pending = view.pending_action("pause")
    if pending == "pause" or (view.phase == Phase.PAUSED and pending is None):
        return ActionResult(namespace, name, "pause", False, f"gate {view.ref} is already paused")
    req = OperatorRequest("pause", _identity(api, by).username, _rfc3339(clock()), None, reason)
    _write(api, view, req)
    return ActionResult(namespace, name, "pause", True, "pause recorded; the gate holds its weight", req)


def resume(
    api: Any, *, namespace: str, name: str, reason: str = "", clock: Clock = time.time, by: str | None = None
) -> ActionResult:
    """Let a paused (or halted, after a forward fix) gate go on."""
    view = _live(api, namespace=namespace, name=name, action="resume")
    pending = view.pending_action("pause")
    if pending == "resume":
        return ActionResult(
            namespace, name, "resume", False, f"a resume of gate {view.ref} is already pending"
        )
    if view.phase not in (Phase.PAUSED, Phase.HALTED) and pending != "pause":
        raise InvalidAction(f"gate {view.ref} is {view.phase.value}, not paused or halted; nothing to resume")
    req = OperatorRequest("resume", _identity(api, by).username, _rfc3339(clock()), None, reason)
    _write(api, view, req)
    return ActionResult(namespace, name, "resume", True, "resume recorded; the controller goes on", req)


# -- helpers --------------------------------------------------------------------------------------------------
def _live(api: Any, *, namespace: str, name: str, action: str) -> GateView:
    view = gate_view(_read(api, namespace=namespace, name=name, role="operator"))
    if view.phase in FINISHED:
        raise InvalidAction(
            f"gate {view.ref} is {view.phase.value}: the rollout is over; nothing to {action}"
        )
    return view


def _identity(api: Any, by: str | None) -> Identity:
    """Who the request is recorded as: the authenticated user, or `by` (a shell acting for its own users;
    with the chart's admission policy on, `by` must still be the user the API server authenticated, so a
    dashboard acts for a person by impersonating them)."""
    me = whoami(api)
    if by:
        return Identity(by, me.groups)
    if not me.username:
        raise Refused("the API server did not say who you are; requests need an authenticated user")
    return me


def _read(api: Any, *, namespace: str, name: str, role: str = "viewer") -> dict[str, Any]:
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    return dict(
        _call(
            lambda: custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT
            ),
            doing=f"read gate {name}",
            namespace=namespace,
            name=name,
            role=role,
        )
    )


def _write(api: Any, view: GateView, req: OperatorRequest) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    body = {"metadata": {"annotations": {req.key: req.value()}}}
    _call(
        lambda: custom.patch_namespaced_custom_object(
            GROUP, VERSION, view.namespace, PLURAL, view.name, body, _request_timeout=TIMEOUT
        ),
        doing=f"patch gate {view.name}",
        namespace=view.namespace,
        name=view.name,
        role="operator",
    )


def _call(fn: Callable[[], Any], *, doing: str, namespace: str, name: str = "", role: str = "viewer") -> Any:
    """Run one API call; turn the client's exceptions into the three kinds above."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    where = f" in namespace {namespace}" if namespace else ""
    try:
        return fn()
    except ApiException as exc:
        message = _server_message(exc)
        if exc.status == 403 and "AdmissionPolicy" in message:
            raise Refused(
                f"cannot {doing}{where}: the API server's admission policy said: {message}"
            ) from None
        if exc.status == 403:
            raise Refused(
                f"cannot {doing}{where}: the API server said: {message}. Ask an admin to bind the gatekeeper "
                f"'{role}' ClusterRole (chart: <release>-{role}) to you{where} with a RoleBinding"
            ) from None
        if exc.status == 401:
            raise Refused(
                f"cannot {doing}: not authenticated ({message}); refresh your kubeconfig credentials"
            ) from None
        if exc.status == 404:
            if name and f'"{name}"' in message:
                raise InvalidAction(
                    f"no Gate {name!r}{where}; list them with `gatekeeper status -n {namespace}`"
                ) from None
            raise InvalidAction(
                f"cannot {doing}: the API server does not serve gates.{GROUP} ({message}); install the CRD: "
                "`gatekeeper crd | kubectl apply --server-side -f -`"
            ) from None
        if exc.status in (400, 409, 422):
            raise Refused(f"cannot {doing}{where}: the API server refused it: {message}") from None
        raise Unreachable(f"cannot {doing}: the API server answered {exc.status}: {message}") from None
    except (HTTPError, OSError) as exc:
        raise Unreachable(
            f"cannot {doing}: the API server is unreachable ({exc}); check --kubeconfig and the network"
        ) from None


def _server_message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def _rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
