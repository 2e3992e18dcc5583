"""Where gates are read from, and where the dashboard views operators' intents: the `GateRepository` seam.

`KubernetesGateRepository` reads Gate resources (group gatekeeper.dev, v1alpha1, plural gates) and views
approve and abort through `gatekeeper.ops.actions` (the same functions the CLI calls); `InMemoryGateRepository`
holds views for the demo, gate files (`--gates-dir`) and tests. A repository never decides anything: it returns
what is stored, and a stored object it cannot read is returned with a `problem` (shown on the dashboard), never
an exception that hides every other gate. Errors are those of `gatekeeper.ops.errors`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import yaml

from gatekeeper.controller import machine
from gatekeeper.ops.actions import abort as abort_request
from gatekeeper.ops.actions import approve as approve_request
from gatekeeper.ops.errors import GateNotFound, InvalidAction, OperatorError, Unreachable
from gatekeeper.ops.gate import FINISHED, GateView, resolve_spec
from gatekeeper.ops.pages import DecisionLink
from gatekeeper.spec import SpecError
from gatekeeper.spec.crd import GROUP, PLURAL, VERSION
from gatekeeper.spec.status import Phase

__all__ = [
    "GateRepository",
    "InMemoryGateRepository",
    "KubernetesGateRepository",
    "check_abortable",
    "check_approvable",
    "load_gates_dir",
]


class GateRepository(Protocol):
    """Read gates and view operators' intents (approve, abort). Implementations must be thread-safe."""

    def list_gates(self) -> list[GateView]: ...

    def get_gate(self, *, namespace: str, name: str) -> GateView: ...

    def approve(self, *, namespace: str, name: str, by: str) -> GateView: ...

    def abort(self, *, namespace: str, name: str, by: str, reason: str) -> GateView: ...


# --- in memory -----------------------------------------------------------------------------------------------


class InMemoryGateRepository:
    """Views held in a dict, for the demo, gate files and tests. Approve and abort go through the
    controller's own `machine.request` (the status then reads exactly as on a cluster), and the routing
    intent an abort records is taken as done at once: there is no executor in memory."""

    def __init__(self, views: Iterable[GateView] = (), *, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._views: dict[tuple[str, str], GateView] = {(r.namespace, r.name): r for r in views}

    def put(self, view: GateView) -> None:
        with self._lock:
            self._views[(view.namespace, view.name)] = view

    def list_gates(self) -> list[GateView]:
        with self._lock:
            return sorted(self._views.values(), key=lambda r: (r.namespace, r.name))

    def get_gate(self, *, namespace: str, name: str) -> GateView:
        with self._lock:
            return self._get(namespace, name)

    def approve(self, *, namespace: str, name: str, by: str) -> GateView:
        with self._lock:
            view = self._get(namespace, name)
            check_approvable(view)
            return self._apply(view, machine.Request("approve", by=by))

    def abort(self, *, namespace: str, name: str, by: str, reason: str) -> GateView:
        with self._lock:
            view = self._get(namespace, name)
            check_abortable(view)
            return self._apply(view, machine.Request("abort", by=by, reason=reason))

    def _apply(self, view: GateView, req: machine.Request) -> GateView:
        now = self._clock()
        status, actions = machine.request(view.status, req, now, _policy(view))
        for action in actions:
            if isinstance(action, machine.Route):
                status = machine.applied(status, weight=action.intent.to_weight, now=now)
        updated = replace(view, status=status)
        self._views[(view.namespace, view.name)] = updated
        return updated

    def _get(self, namespace: str, name: str) -> GateView:
        try:
            return self._views[(namespace, name)]
        except KeyError:
            raise GateNotFound(f"no gate {namespace}/{name}") from None


def _policy(view: GateView) -> machine.Policy:
    """The machine's policy for the gate; operator requests need none of the spec, so an unresolvable spec
    (arguments not filled) still allows approve and abort."""
    try:
        return machine.Policy.from_gate(resolve_spec(view))
    except SpecError:
        return machine.Policy(stages=(), outage_budget=0.0, consecutive_error_limit=0)


def check_approvable(view: GateView) -> None:
    if view.status.phase != Phase.AWAITING_APPROVAL:
        raise InvalidAction(
            f"{view.namespace}/{view.name} is {view.status.phase.value}, not AwaitingApproval: "
            "there is nothing to approve"
        )


def check_abortable(view: GateView) -> None:
    if view.status.phase in FINISHED:
        raise InvalidAction(f"{view.namespace}/{view.name} is already {view.status.phase.value}")


def load_gates_dir(path: str | Path, *, namespace: str = "default") -> InMemoryGateRepository:
    """Every `*.yaml`/`*.yml` gate file under `path` as a Pending view; a file that does not load is kept
    with its problem, so one bad file never hides the others."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"--gates-dir {root}: not a directory")
    views = []
    for file in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        try:
            raw = yaml.safe_load(file.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            views.append(GateView(namespace=namespace, name=file.stem, spec={}, problem=f"{file}: {e}"))
            continue
        if not isinstance(raw, dict) or raw.get("kind") != "Gate":
            continue  # other manifests (integrations, charts) may live beside gates
        spec = raw["spec"] if isinstance(raw.get("spec"), dict) else raw
        meta = raw.get("metadata") or {}
        name = str(meta.get("name") or spec.get("name") or file.stem)
        views.append(GateView(namespace=str(meta.get("namespace") or namespace), name=name, spec=dict(spec)))
    return InMemoryGateRepository(views)


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

    def list_gates(self) -> list[GateView]:
        def call() -> Any:
            if self._namespace:
                return self._api.list_namespaced_custom_object(
                    GROUP, VERSION, self._namespace, PLURAL, _request_timeout=self._timeout
                )
            return self._api.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, _request_timeout=self._timeout
            )

        body = self._call(call, what="list gates")
        views = [GateView.from_resource(obj) for obj in body.get("items", [])]
        return sorted(views, key=lambda r: (r.namespace, r.name))

    def get_gate(self, *, namespace: str, name: str) -> GateView:
        obj = self._call(
            lambda: self._api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self._timeout
            ),
            what=f"read gate {namespace}/{name}",
        )
        return GateView.from_resource(obj)

    def approve(self, *, namespace: str, name: str, by: str) -> GateView:
        check_approvable(self.get_gate(namespace=namespace, name=name))
        note = f"via the dashboard; the person gave their name as {by}"
        self._call(
            lambda: approve_request(self._client, namespace=namespace, name=name, reason=note),
            what=f"approve {namespace}/{name}",
        )
        return self.get_gate(namespace=namespace, name=name)

    def abort(self, *, namespace: str, name: str, by: str, reason: str) -> GateView:
        check_abortable(self.get_gate(namespace=namespace, name=name))
        note = f"{reason} (via the dashboard; the person gave their name as {by})"
        self._call(
            lambda: abort_request(self._client, namespace=namespace, name=name, reason=note),
            what=f"abort {namespace}/{name}",
        )
        return self.get_gate(namespace=namespace, name=name)

    def decisions(self, *, namespace: str, name: str, uid: str = "") -> list[DecisionLink]:
        """The Gate's recorded decisions, newest first (`gatekeeper.controller.decision_store`)."""
        from gatekeeper.ops.decisions import list_decisions

        stored = list_decisions(self._store(), namespace=namespace, name=name, uid=uid or None)
        return [DecisionLink.of(s) for s in reversed(stored)]

    def decision(self, *, namespace: str, name: str, at: float, uid: str = "") -> Any:
        """The recorded decision made at ``at`` (a `RecordedDecision`), or None when none is kept."""
        from gatekeeper.ops.decisions import DecisionNotFound, read_decision

        try:
            return read_decision(self._store(), namespace=namespace, name=name, at=at, uid=uid or None)
        except DecisionNotFound:
            return None

    def _store(self) -> Any:
        from gatekeeper.controller.decision_store import DecisionStore

        return DecisionStore(self._client, timeout=self._timeout)

    def _call(self, fn: Any, *, what: str) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn()
        except OperatorError:  # from `actions`: already says what to do
            raise
        except ApiException as e:
            if e.status == 404:
                raise GateNotFound(f"{what}: not found") from e
            if e.status in (409, 422):
                raise InvalidAction(f"{what}: {e.reason}") from e
            raise Unreachable(f"{what}: the API server answered {e.status} {e.reason}") from e
        except HTTPError as e:
            raise Unreachable(f"{what}: the API server did not answer ({e})") from e
