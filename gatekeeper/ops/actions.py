"""Operator actions on a Gate, made through the Kubernetes API server, and reading its view.

`approve`, `abort`, `pause` and `resume` record a request on the Gate as an annotation; the controller applies
it at its next look. Because the request is an ordinary `patch` of the Gate, Kubernetes RBAC decides who may
make it (the chart's `<release>-operator` ClusterRole grants exactly that), and the API server authenticates
the user named in it. The CLI and the dashboard call these functions; they never route traffic themselves.

The contract with the controller (the codec is `gatekeeper.spec.requests.OperatorRequest`):

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
* The controller reads every key present (`gatekeeper.spec.requests.pending_requests`: abort, then pause/resume,
  then approve), applies each as a machine `Request(action, by, stage, reason)`, writes the status, then
  removes the key with a JSON patch `[test value, remove]`: a newer request written meanwhile survives the
  removal and is applied next. A value that does not parse gets an Event and is removed.
* A pending request is visible in `GateView.pending` (`gatekeeper.ops.gate`) until the controller consumes it.

The chart's ValidatingAdmissionPolicy (`<release>-requests`, CEL in the API server) enforces the claims:
`by` must be the requesting user, and an approval must come from a member of the stage's approving group.
`OperatorRequest.parse` is strict (no repeated or unknown keys) so the policy's check of `"by":"<user>"` is
sound. Checks made here before writing (so a person gets a clear answer at once): the gate exists; it has not
finished (Promoted, RolledBack, Aborted); an approval names a stage that exists, is not past, needs an
approval, and the user is in the stage's authority group (SelfSubjectReview groups); resume needs a paused
or halted gate.

Errors are those of `gatekeeper.ops.errors`, grouped by what the caller should do: `InvalidAction` (the
command does not fit this gate: not found, finished, no such stage), `Refused` (the API server or the stage's
authority refused who you are), `Unreachable` (the API server could not be reached or failed).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gatekeeper.ops.errors import GateNotFound, InvalidAction, Refused, Unreachable
from gatekeeper.ops.gate import GateView
from gatekeeper.spec.crd import GROUP, PLURAL, VERSION
from gatekeeper.spec.requests import OperatorRequest
from gatekeeper.spec.status import Phase

__all__ = [
    "ActionResult",
    "Identity",
    "abort",
    "approve",
    "list_gates",
    "pause",
    "resume",
    "status",
    "whoami",
]

TIMEOUT = 10.0  # seconds, every API call
Clock = Callable[[], float]


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


# -- reading --------------------------------------------------------------------------------------------------
def whoami(api: Any) -> Identity:
    """The user the API server authenticates for `api` (SelfSubjectReview)."""
    from kubernetes import client

    review = _call(
        lambda: client.AuthenticationV1Api(api).create_self_subject_review(
            client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"),
            _request_timeout=TIMEOUT,
        ),
        doing="ask the API server who you are",
        namespace="",
    )
    info = review.status.user_info
    return Identity(info.username or "", tuple(info.groups or ()))


def status(api: Any, *, namespace: str, name: str) -> GateView:
    """The view of one gate."""
    return GateView.from_resource(_read(api, namespace=namespace, name=name))


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
    views = [GateView.from_resource(obj) for obj in listing.get("items", [])]
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
    view = GateView.from_resource(_read(api, namespace=namespace, name=name, role="operator"))
    if view.finished:
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
                raise GateNotFound(
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
