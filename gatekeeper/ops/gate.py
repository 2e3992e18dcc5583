"""The one view model of a Gate: what the CLI's `status` and `get`, the dashboard and the integrations show.

`GateView.from_resource` reads a Gate resource as the API server returns it; a gate file becomes a view through
`gatekeeper.ops.repository.load_gates_dir`. Reading never raises on a bad spec or status: what cannot be read is
kept as a `problem` (the status) or a stage's `problem`, and shown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from gatekeeper.spec import GateSpec, load_gate_text
from gatekeeper.spec.durations import format_duration
from gatekeeper.spec.fingerprint import spec_hash
from gatekeeper.spec.models import Stage
from gatekeeper.spec.requests import OperatorRequest, pending_requests
from gatekeeper.spec.status import GateStatus, Phase, StatusFormatError

__all__ = ["FINISHED", "GateView", "StageView", "resolve_spec"]

FINISHED = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED})


@dataclass(frozen=True)
class StageView:
    """One stage of a gate as written in its spec."""

    index: int  # 0-based, as `status.stage`
    weight: float
    min_duration: str
    authority: str  # "auto" or the approving group
    window: str  # the rollback window's mode: reversible | forward-fix-only | closes
    window_detail: str  # as a person reads it: "closes after 300 side effects or 30m"
    needs_approval: bool
    problem: str = ""  # the stage does not validate (the controller will say so too)


@dataclass(frozen=True)
class GateView:
    """A gate as stored: its spec as written (camelCase mapping), its status, its pending operator requests."""

    namespace: str
    name: str
    spec: dict[str, Any]
    status: GateStatus = field(default_factory=GateStatus)
    created_at: float | None = None
    problem: str = ""  # why the stored status could not be read: shown, never fatal
    generation: int | None = None
    pending: tuple[OperatorRequest, ...] = ()
    bad_requests: tuple[str, ...] = ()  # request annotations that do not parse
    uid: str = ""  # the object's UID (its decision records name it)

    @classmethod
    def from_resource(cls, obj: dict[str, Any]) -> GateView:
        """The view of a Gate resource as the API server returns it. Never raises on a bad spec or status."""
        meta = obj.get("metadata") or {}
        raw_spec = obj.get("spec")
        spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
        problem = ""
        try:
            status = GateStatus.read(obj.get("status"))
        except StatusFormatError as e:
            status, problem = GateStatus(), f"status unreadable: {e}"
        except ValidationError as e:
            err = e.errors()[0]
            status = GateStatus()
            problem = (
                f"status unreadable (written by another gatekeeper version?): {err.get('msg')} "
                f"at {'.'.join(map(str, err['loc']))}"
            )
        pending, bad = pending_requests(meta.get("annotations"))
        return cls(
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name") or spec.get("name") or "?"),
            spec=dict(spec),
            status=status,
            created_at=_parse_time(meta.get("creationTimestamp")),
            problem=problem,
            generation=meta.get("generation"),
            pending=tuple(pending),
            bad_requests=tuple(str(b) for b in bad),
            uid=str(meta.get("uid") or ""),
        )

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
    def stages(self) -> tuple[StageView, ...]:
        raw = self.spec.get("stages") if isinstance(self.spec.get("stages"), list) else None
        return tuple(_stage_view(i, s) for i, s in enumerate(raw or [{"weight": 100}]))

    @property
    def routing(self) -> dict[str, Any] | None:
        routing = self.spec.get("routing")
        return routing if isinstance(routing, dict) else None

    @property
    def spec_hash(self) -> str:
        try:
            return spec_hash(self.spec)
        except TypeError as e:
            return f"unhashable: {e}"

    @property
    def spec_changed(self) -> bool:
        """The spec differs from the one the controller last acted on (it restarts the analysis)."""
        return bool(self.status.spec_hash) and self.status.spec_hash != self.spec_hash

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    def pending_action(self, key_action: str) -> str | None:
        """The action of the pending request under `key_action`'s annotation key, if any."""
        key = OperatorRequest.key_for(key_action)
        return next((r.action for r in self.pending if r.key == key), None)

    def as_dict(self, *, history: int = 10) -> dict[str, Any]:
        """The JSON of `gatekeeper status -o json`."""
        st = self.status.model_dump(mode="json", by_alias=True)
        st["history"] = st["history"][-history:] if history else []
        return {
            "namespace": self.namespace,
            "name": self.name,
            "created": _rfc3339(self.created_at),
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
            "statusProblem": self.problem,
            "status": st,
        }


def resolve_spec(view: GateView, *, args: dict[str, str] | None = None) -> GateSpec:
    """The view's spec as a validated `GateSpec`, with `args` filled. Raises `SpecError` naming each field."""
    body = {"name": view.name, **view.spec}
    return load_gate_text(yaml.safe_dump(body, sort_keys=False), args=args, source=view.ref)


def _stage_view(index: int, raw: Any) -> StageView:
    detail = _window_text(raw.get("rollbackWindow") if isinstance(raw, dict) else None)
    try:
        s = Stage.model_validate(raw)
    except ValidationError as exc:
        weight = raw.get("weight") if isinstance(raw, dict) else None
        weight = float(weight) if isinstance(weight, int | float) and not isinstance(weight, bool) else 0.0
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "stage"
        return StageView(index, weight, "", "auto", "", detail, False, problem=f"{where}: {err['msg']}")
    approval = s.authority.mode == "approval" and bool(s.authority.group)
    return StageView(
        index=index,
        weight=s.weight,
        min_duration=format_duration(s.min_duration),
        authority=s.authority.group if approval and s.authority.group else "auto",
        window=s.rollback_window.mode.value,
        window_detail=detail,
        needs_approval=approval,
    )


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


def _parse_time(value: Any) -> float | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _rfc3339(t: float | None) -> str:
    return "" if t is None else dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
