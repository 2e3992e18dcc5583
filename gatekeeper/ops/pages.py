"""What the dashboard's pages show: the gate list's rows and one gate's detail, from `GateView`s."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from gatekeeper.ops.gate import GateView, StageView
from gatekeeper.spec.status import HistoryEntry, Phase

__all__ = ["DecisionLink", "GateDetail", "GateRow", "SignalRow", "gate_detail", "gate_rows"]


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
class DecisionLink:
    """A decision listed on a gate page, linked to its report (by its time)."""

    time: float
    action: str
    stage: int  # 0-based
    weight: float
    verdict: str
    seq: int = 0  # its number in the Gate's records; 0: known from the history only (no record kept)

    @classmethod
    def of(cls, stored: Any) -> DecisionLink:
        """From a record's index entry (`gatekeeper.controller.decision_store.Stored`)."""
        action = "hold for a human" if stored.human_hold else stored.action
        return cls(stored.time, action, stored.stage, stored.weight, stored.verdict, stored.seq)


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
    stages: tuple[StageView, ...] = ()
    in_stage_seconds: float | None = None  # time since the current stage began
    window_closed: bool = False  # the current stage is past its rollback window
    side_effects: int = 0  # canary side effects counted in the current stage
    finished: bool = False  # promoted (every stage done)
    decisions: tuple[DecisionLink, ...] | None = None  # recorded decisions, newest first (None: not read)

    def state_of(self, stage: StageView) -> str:
        """done | current | pending, as the progress strip shows it."""
        if self.finished or stage.index < self.row.stage - 1:
            return "done"
        return "current" if stage.index == self.row.stage - 1 else "pending"


def gate_rows(views: Iterable[GateView], *, now: float) -> list[GateRow]:
    return [_row(r, now=now) for r in views]


def _row(view: GateView, *, now: float) -> GateRow:
    st = view.status
    stages = view.spec.get("stages") if isinstance(view.spec.get("stages"), list) else None
    return GateRow(
        namespace=view.namespace,
        name=view.name,
        phase=st.phase.value,
        stage=st.stage + 1,
        stages=len(stages) if stages else 1,
        weight=st.weight,
        verdict=st.verdict or "",
        reason=st.reason,
        age_seconds=None if view.created_at is None else max(now - view.created_at, 0.0),
        last_look_seconds=None if st.last_evaluated_at is None else max(now - st.last_evaluated_at, 0.0),
        problem=view.problem,
        can_approve=st.phase == Phase.AWAITING_APPROVAL,
        can_abort=not view.finished,
    )


def gate_detail(view: GateView, *, now: float, decisions: Iterable[DecisionLink] | None = None) -> GateDetail:
    st = view.status
    last = st.history[-1] if st.history else None
    signals: tuple[SignalRow, ...] = ()
    if last is not None:
        signals = tuple(
            SignalRow(name=n, verdict=v, evidence=_as_dict(last.evidence.get(n)))
            for n, v in last.signals.items()
        )
    raw_owners = view.spec.get("owners")
    owners = raw_owners if isinstance(raw_owners, list) else []
    return GateDetail(
        row=_row(view, now=now),
        description=str(view.spec.get("description") or ""),
        owners=tuple(str(o) for o in owners),
        signals=signals,
        history=tuple(reversed(st.history)),
        conditions=tuple(c.model_dump() for c in st.conditions),
        escalation=dict(st.escalation),
        approvals=tuple(st.approvals),
        spec_yaml=yaml.safe_dump(view.spec, sort_keys=False) if view.spec else "",
        stages=view.stages,
        in_stage_seconds=None if st.stage_started_at is None else max(now - st.stage_started_at, 0.0),
        window_closed=bool(st.window_closed),
        side_effects=int(st.side_effects or 0),
        finished=st.phase == Phase.PROMOTED,
        decisions=tuple(decisions) if decisions is not None else None,
    )


def _as_dict(x: Any) -> dict[str, Any]:
    return dict(x) if isinstance(x, dict) else ({} if x is None else {"value": x})
