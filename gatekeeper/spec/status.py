"""The status of a Gate resource: where the rollout is, what was last decided and why, and the intent of the
routing change in flight. The controller writes it; the CLI, the dashboard and replay read it.

Limits, counters and a bounded evidence history live here, so a restarted controller resumes where it was and
`gatekeeper status` can explain any decision.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import Field

from gatekeeper.spec.base import SpecModel

HISTORY_LIMIT = 50

STATUS_FORMAT = 1
"""The layout version of a Gate's status, written with every status as ``formatVersion``. Bump it when a field
changes meaning, moves or is removed, and add the step from the previous layout to ``MIGRATIONS``: a
controller then reads every older status (migrating it step by step, keeping the stage clock and the evidence)
and refuses to act on a newer one instead of overwriting what it does not understand. A status without
``formatVersion`` was written before versions existed: format 0, the same fields as format 1."""

MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    0: lambda raw: raw,  # format 0 -> 1: the version is recorded; no field changed
}


class StatusFormatError(ValueError):
    """A status written by a newer gatekeeper (or with a version that is not a number): not acted on."""


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    AWAITING_APPROVAL = "AwaitingApproval"
    PAUSED = "Paused"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    HALTED = "Halted"  # past the rollback window: forward fix, reconciliation, owners paged
    ABORTED = "Aborted"


class Condition(SpecModel):
    """A Kubernetes-style condition (Progressing, Halted, RolledBack, Promoted, AwaitingApproval)."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""


class HistoryEntry(SpecModel):
    """One look or one transition: bounded, newest last."""

    time: float
    stage: int
    weight: float
    verdict: str
    reason: str
    action: str = ""  # advance | hold | revert | halt | promote | await-approval | abort | ""
    signals: dict[str, str] = Field(default_factory=dict)  # signal name -> verdict
    evidence: dict[str, Any] = Field(default_factory=dict)  # e-values, bounds, samples per signal


class Intent(SpecModel):
    """A routing change recorded before it is made, so a crash in between resumes it exactly once."""

    id: str
    action: str
    from_weight: float
    to_weight: float
    recorded_at: float
    done: bool = False
    stage: int | None = None  # the stage whose split this sets (its match/mirror too); None: promote/revert


class Carried(SpecModel):
    """The sequential evidence of the rollout's earlier stages, carried into stage `stage`: per signal, its
    e-process states (see `gatekeeper.signals.counts.Carried`), so one e-process spans the whole rollout and
    the false-rollback budget (alpha) is spent once, not once per stage. Written at each advance."""

    stage: int
    through: float | None = None  # window end of the look whose evidence this is
    signals: dict[str, dict[str, Any]] = Field(default_factory=dict)


class RouteContest(SpecModel):
    """Another writer changed the route's weights: who (its field manager), to what, and how many looks in a
    row found them changed and restored them (``fights``). Cleared by a look that finds the weights as set."""

    fights: int = 0
    by: str = ""
    weight: float = 0.0  # the canary weight found
    at: float = 0.0  # gate time of the last look that found the change


class GateStatus(SpecModel):
    phase: Phase = Phase.PENDING
    stage: int = 0
    weight: float = 0.0
    verdict: str = ""
    reason: str = ""
    stage_started_at: float | None = None
    last_evaluated_at: float | None = None
    consecutive_errors: int = 0
    nodata_since: float | None = None
    side_effects: int = 0
    window_closed: bool = False
    escalation: dict[str, Any] = Field(default_factory=dict)  # owners, runbook, forward fix when halted
    approvals: list[str] = Field(default_factory=list)
    intent: Intent | None = None
    progressed_at: float | None = (
        None  # the last start, advance or resume (progressDeadline counts from here)
    )
    hooks_passed: list[str] = Field(default_factory=list)  # once-per-rollout gating hooks that passed
    hook_failures: int = 0  # consecutive failed pre-rollout / rollout hook checks
    waiting_for: str = ""  # the gating hook type the rollout waits for ("" when none)
    waiting_since: float | None = None  # a gating hook has not answered since (its deadline counts from here)
    inconclusive: dict[str, int] = Field(default_factory=dict)  # consecutive inconclusive looks per signal
    dry_run: bool = False  # recorded by a whole-gate dry run: routing was only validated, never changed
    conditions: list[Condition] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list, max_length=HISTORY_LIMIT)
    observed_generation: int | None = None
    spec_hash: str = ""
    carried: Carried | None = None  # the earlier stages' sequential evidence (one alpha per rollout)
    route_contest: RouteContest | None = None  # another writer keeps changing the weights
    format_version: int = STATUS_FORMAT  # the layout of this status (see STATUS_FORMAT)
    written_by: str = (
        ""  # "<lease>/<replica>" that wrote it: the chart's fence policy checks it against the Lease
    )

    @classmethod
    def read(cls, raw: dict[str, Any] | None) -> GateStatus:
        """A stored status in this controller's layout: an older one migrated step by step (see
        ``STATUS_FORMAT``); a newer one is a ``StatusFormatError``, a malformed one a pydantic error."""
        return cls.model_validate(migrate(raw or {}))

    def carried_signals(self) -> dict[str, dict[str, Any]]:
        """The evidence carried into the current stage, per signal ({} in the first stage)."""
        if self.carried is None or self.carried.stage != self.stage:
            return {}
        return self.carried.signals


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` (a stored status) in the layout of ``STATUS_FORMAT``."""
    version = raw.get("formatVersion", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise StatusFormatError(f"formatVersion {version!r} is not a format version (0, 1, ...)")
    if version > STATUS_FORMAT:
        raise StatusFormatError(
            f"written in status format {version} by a newer gatekeeper; this controller reads formats up to "
            f"{STATUS_FORMAT}: upgrade it (a controller never overwrites a status it does not understand)"
        )
    for step in range(version, STATUS_FORMAT):
        raw = MIGRATIONS[step](raw)
    return {**raw, "formatVersion": STATUS_FORMAT}
