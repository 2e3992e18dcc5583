"""The transition machine, table-driven: every transition from a given status and look, with its actions.

The machine is pure, so each row is (status, look, now, stage policy) -> (phase, stage, routing action, announced
reasons). Properties below check the rules that must hold for any sequence: no advance without a pass, a
revert never raises exposure, targets come from the stage table.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.controller.machine import (
    Announce,
    Policy,
    Request,
    Route,
    applied,
    approval_entry,
    request,
    route_failed,
    transition,
)
from gatekeeper.judge import aggregate
from gatekeeper.spec import SignalOutcome, Stage, Verdict
from gatekeeper.spec.evidence import CountEvidence, ThresholdEvidence
from gatekeeper.spec.status import HISTORY_LIMIT, GateStatus, Intent, Phase

WEIGHTS = (1, 5, 25, 50, 100)
T0 = 1_000_000.0


def policy(
    *, budget: float = 300, errors: int = 4, weights: tuple[float, ...] = WEIGHTS, **stage: Any
) -> Policy:
    """Stages 1/5/25/50/100 with min duration 60 s; ``stage`` fields apply to every stage."""
    rows = []
    for w in weights:
        fields: dict[str, Any] = {"weight": w, "minDuration": 60, **stage}
        rows.append(Stage.model_validate(fields))
    return Policy(
        stages=tuple(rows),
        outage_budget=budget,
        consecutive_error_limit=errors,
        owners=("team-checkout",),
        runbook="https://runbooks/checkout-reconcile",
        forward_fix="ship a fix behind the flag",
    )


def status(phase: Phase = Phase.PROGRESSING, stage: int = 0, *, started: float = T0, **kw: Any) -> GateStatus:
    weight = kw.pop("weight", WEIGHTS[stage] if phase != Phase.PENDING else 0.0)
    return GateStatus(phase=phase, stage=stage, weight=weight, stage_started_at=started, **kw)


def look(  # type: ignore[no-untyped-def]
    verdict: Verdict = Verdict.PASS,
    *,
    critical: bool = False,
    side_effects: dict | None = None,
    minimums_met: bool = True,
    beside: tuple[SignalOutcome, ...] = (),
):
    outcome = SignalOutcome(
        name="error-rate",
        kind="ratio",
        verdict=verdict,
        reason=f"error-rate is {verdict}",
        critical=critical,
        evidence=CountEvidence(minimums=minimums_met),
    )
    return aggregate(
        [outcome, *beside], gate="g", window={"start": 0, "end": 60, "step": 60}, side_effects=side_effects
    )


def threshold(verdict: Verdict):  # type: ignore[no-untyped-def]
    """A threshold signal: it measures values, never the stage's samples (its evidence says nothing of them)."""
    measured = ThresholdEvidence(failed_measurements=0, failure_limit=0) if verdict == Verdict.PASS else None
    return SignalOutcome(name="cpu", kind="threshold", verdict=verdict, reason="", evidence=measured)


def routes(actions) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    return [(a.kind, a.intent.to_weight) for a in actions if isinstance(a, Route)]


def said(actions) -> list[str]:  # type: ignore[no-untyped-def]
    return [a.reason for a in actions if isinstance(a, Announce)]


P, F, IN, N, E = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.NODATA, Verdict.ERROR
PROG, AWAIT, PAUSED, HALTED = Phase.PROGRESSING, Phase.AWAITING_APPROVAL, Phase.PAUSED, Phase.HALTED
TRUE_CONDITIONS = {
    Phase.PENDING: [],
    PROG: ["Progressing"],
    AWAIT: ["AwaitingApproval", "Progressing"],
    PAUSED: [],
    HALTED: ["Halted"],
    Phase.PROMOTED: ["Promoted"],
    Phase.ROLLED_BACK: ["RolledBack"],
    Phase.ABORTED: ["RolledBack"],
}
CLOSES_AFTER_10 = {"rollbackWindow": {"mode": "closes", "afterSideEffects": 10}}
ORDERS = "orders_created_total"

# name: (status, look, seconds into the stage, policy, expected phase, expected stage, routes, announced)
CASES: dict[str, tuple[GateStatus, Any, float, Policy, Phase, int, list, list]] = {
    "a pending gate starts stage 0 at its weight": (
        status(Phase.PENDING, started=None),
        None,
        0,
        policy(),
        PROG,
        0,
        [("set", 1)],
        ["Started"],
    ),
    "a pass after the minimum duration advances to the next stage's weight": (
        status(stage=0),
        look(P),
        61,
        policy(),
        PROG,
        1,
        [("set", 5)],
        ["Advanced"],
    ),
    "a pass before the minimum duration holds": (
        status(stage=1),
        look(P),
        30,
        policy(),
        PROG,
        1,
        [],
        [],
    ),
    "a pass at the last stage at 100% promotes without a routing change": (
        status(stage=4),
        look(P),
        61,
        policy(),
        Phase.PROMOTED,
        4,
        [],
        ["Promoted"],
    ),
    "a pass at a last stage below 100% promotes by setting 100%": (
        status(stage=3, weight=50),
        look(P),
        61,
        policy(weights=(1, 5, 25, 50)),
        Phase.PROMOTED,
        3,
        [("set", 100)],
        ["Promoted"],
    ),
    "a pass at a stage that needs approval waits for it": (
        status(stage=1),
        look(P),
        61,
        policy(authority={"mode": "approval", "group": "sre"}),
        AWAIT,
        1,
        [],
        ["AwaitingApproval"],
    ),
    "a pass while awaiting approval without one keeps waiting quietly": (
        status(AWAIT, 1),
        look(P),
        90,
        policy(authority={"mode": "approval", "group": "sre"}),
        AWAIT,
        1,
        [],
        [],
    ),
    "a pass after the stage was approved advances": (
        status(AWAIT, 1, approvals=[approval_entry(1, "ana")]),
        look(P),
        90,
        policy(authority={"mode": "approval", "group": "sre"}),
        PROG,
        2,
        [("set", 25)],
        ["Advanced"],
    ),
    "an approval of another stage does not count": (
        status(AWAIT, 1, approvals=[approval_entry(0, "ana")]),
        look(P),
        90,
        policy(authority={"mode": "approval", "group": "sre"}),
        AWAIT,
        1,
        [],
        [],
    ),
    "a critical failure reverts at once, before the minimum duration": (
        status(stage=0),
        look(F, critical=True),
        5,
        policy(),
        Phase.ROLLED_BACK,
        0,
        [("revert", 0)],
        ["RolledBack"],
    ),
    "a non-critical failure before the minimum duration holds": (
        status(stage=0),
        look(F),
        5,
        policy(),
        PROG,
        0,
        [],
        [],
    ),
    "a non-critical failure at the minimum duration reverts": (
        status(stage=2),
        look(F),
        60,
        policy(),
        Phase.ROLLED_BACK,
        2,
        [("revert", 0)],
        ["RolledBack"],
    ),
    "a failure while awaiting approval reverts": (
        status(AWAIT, 1),
        look(F, critical=True),
        90,
        policy(),
        Phase.ROLLED_BACK,
        1,
        [("revert", 0)],
        ["RolledBack"],
    ),
    "a failure while paused still reverts: pause stops progress, not protection": (
        status(PAUSED, 1),
        look(F, critical=True),
        90,
        policy(),
        Phase.ROLLED_BACK,
        1,
        [("revert", 0)],
        ["RolledBack"],
    ),
    "a failure at a forward-fix-only stage halts and escalates without a routing change": (
        status(stage=2),
        look(F, critical=True),
        90,
        policy(rollbackWindow={"mode": "forward-fix-only"}),
        HALTED,
        2,
        [],
        ["Halted"],
    ),
    "a failure after the stage's side effects closed the window halts": (
        status(stage=1),
        look(F, critical=True, side_effects={ORDERS: {"count": 12}}),
        30,
        policy(**CLOSES_AFTER_10),
        HALTED,
        1,
        [],
        ["Halted"],
    ),
    "a failure with fewer side effects than the window allows reverts": (
        status(stage=1),
        look(F, critical=True, side_effects={ORDERS: {"count": 9}}),
        30,
        policy(**CLOSES_AFTER_10),
        Phase.ROLLED_BACK,
        1,
        [("revert", 0)],
        ["RolledBack"],
    ),
    "an absent side-effect series counts as none, so the window stays open": (
        status(stage=1),
        look(F, critical=True, side_effects={ORDERS: {"count": None}}),
        30,
        policy(**CLOSES_AFTER_10),
        Phase.ROLLED_BACK,
        1,
        [("revert", 0)],
        ["RolledBack"],
    ),
    "side effects that could not be counted close the window: no revert that cannot be shown safe": (
        status(stage=1),
        look(F, critical=True, side_effects={"error": "Prometheus down"}),
        30,
        policy(**CLOSES_AFTER_10),
        HALTED,
        1,
        [],
        ["Halted"],
    ),
    "a failure after the window's time limit halts": (
        status(stage=1),
        look(F, critical=True),
        121,
        policy(rollbackWindow={"mode": "closes", "after": 120}),
        HALTED,
        1,
        [],
        ["Halted"],
    ),
    "a window closed at an earlier stage stays closed at a reversible one": (
        status(stage=3, window_closed=True),
        look(F, critical=True),
        90,
        policy(),
        HALTED,
        3,
        [],
        ["Halted"],
    ),
    "inconclusive holds": (
        status(stage=1),
        look(IN),
        90,
        policy(),
        PROG,
        1,
        [],
        [],
    ),
    "inconclusive at the maximum duration with onDeadline rollback reverts": (
        status(stage=1),
        look(IN),
        600,
        policy(maxDuration=600, onDeadline="rollback"),
        Phase.ROLLED_BACK,
        1,
        [("revert", 0)],
        ["RolledBack"],
    ),
    "inconclusive at the maximum duration with onDeadline hold pauses for a human": (
        status(stage=1),
        look(IN),
        600,
        policy(maxDuration=600, onDeadline="hold"),
        PAUSED,
        1,
        [],
        ["Held"],
    ),
    "inconclusive at the maximum duration with advance-if-pass announces once and holds": (
        status(stage=1, last_evaluated_at=T0 + 590),
        look(IN),
        600,
        policy(maxDuration=600, onDeadline="advance-if-pass"),
        PROG,
        1,
        [],
        ["DeadlinePassed"],
    ),
    "inconclusive after the deadline with advance-if-pass holds quietly": (
        status(stage=1, last_evaluated_at=T0 + 610),
        look(IN),
        620,
        policy(maxDuration=600, onDeadline="advance-if-pass"),
        PROG,
        1,
        [],
        [],
    ),
    "a pass after the deadline with advance-if-pass advances": (
        status(stage=1),
        look(P),
        700,
        policy(maxDuration=600, onDeadline="advance-if-pass"),
        PROG,
        2,
        [("set", 25)],
        ["Advanced"],
    ),
    "a smoke stage advances on an inconclusive look once its minimums are met": (
        status(stage=0),
        look(IN),
        400,
        policy(requirePass=False, minDuration=300),
        PROG,
        1,
        [("set", 5)],
        ["Advanced"],
    ),
    "a smoke stage holds an inconclusive look before its minimum duration": (
        status(stage=0),
        look(IN),
        200,
        policy(requirePass=False, minDuration=300),
        PROG,
        0,
        [],
        [],
    ),
    "a smoke stage holds while the canary lacks its minimum samples": (
        status(stage=0),
        look(IN, minimums_met=False),
        400,
        policy(requirePass=False, minDuration=300),
        PROG,
        0,
        [],
        [],
    ),
    "a smoke stage advances past a passing threshold signal once the count signal's minimums are met": (
        status(stage=0),
        look(IN, beside=(threshold(P),)),
        400,
        policy(requirePass=False, minDuration=300),
        PROG,
        1,
        [("set", 5)],
        ["Advanced"],
    ),
    "a smoke stage holds while a threshold signal has measured nothing yet (its initial delay)": (
        status(stage=0),
        look(IN, beside=(threshold(IN),)),
        400,
        policy(requirePass=False, minDuration=300),
        PROG,
        0,
        [],
        [],
    ),
    "a smoke stage never advances on missing evidence": (
        status(stage=0),
        look(N),
        400,
        policy(requirePass=False, minDuration=300),
        PROG,
        0,
        [],
        [],
    ),
    "a stage that requires a pass holds an inconclusive look": (
        status(stage=0),
        look(IN),
        400,
        policy(minDuration=300),
        PROG,
        0,
        [],
        [],
    ),
    "no data within the outage budget holds": (
        status(stage=1),
        look(N),
        90,
        policy(),
        PROG,
        1,
        [],
        [],
    ),
    "no data past the outage budget holds for a human and never reverts": (
        status(stage=1, nodata_since=T0 + 10),
        look(N),
        400,
        policy(budget=300),
        PAUSED,
        1,
        [],
        ["Held"],
    ),
    "no data past the outage budget after the window closed holds for a human, no halt": (
        status(stage=1, nodata_since=T0 + 10, window_closed=True),
        look(N),
        400,
        policy(budget=300),
        PAUSED,
        1,
        [],
        ["Held"],
    ),
    "no data past the outage budget with onDeadline hold pauses": (
        status(stage=1, nodata_since=T0 + 10),
        look(N),
        400,
        policy(budget=300, onDeadline="hold"),
        PAUSED,
        1,
        [],
        ["Held"],
    ),
    "no data past the outage budget with advance-if-pass keeps holding": (
        status(stage=1, nodata_since=T0 + 10),
        look(N),
        400,
        policy(budget=300, onDeadline="advance-if-pass"),
        PROG,
        1,
        [],
        ["DeadlinePassed"],
    ),
    "errors up to the consecutive limit hold": (
        status(stage=1, consecutive_errors=3),
        look(E),
        90,
        policy(errors=4),
        PROG,
        1,
        [],
        [],
    ),
    "errors beyond the consecutive limit hold for a human and never revert": (
        status(stage=1, consecutive_errors=4),
        look(E),
        90,
        policy(errors=4),
        PAUSED,
        1,
        [],
        ["Held"],
    ),
    "a limit of zero acts on the first error": (
        status(stage=1),
        look(E),
        90,
        policy(errors=0, onDeadline="hold"),
        PAUSED,
        1,
        [],
        ["Held"],
    ),
    "a paused gate does not advance on a pass": (
        status(PAUSED, 1),
        look(P),
        900,
        policy(),
        PAUSED,
        1,
        [],
        [],
    ),
    "a promoted gate ignores looks": (
        status(Phase.PROMOTED, 4),
        look(F, critical=True),
        900,
        policy(),
        Phase.PROMOTED,
        4,
        [],
        [],
    ),
    "a rolled-back gate ignores looks": (
        status(Phase.ROLLED_BACK, 1, weight=0),
        look(P),
        900,
        policy(),
        Phase.ROLLED_BACK,
        1,
        [],
        [],
    ),
    "a halted gate waits for a human and ignores looks": (
        status(HALTED, 2),
        look(P),
        900,
        policy(),
        HALTED,
        2,
        [],
        [],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_transition(name: str) -> None:
    state, judgement, seconds, pol, phase, stage, want_routes, want_said = CASES[name]
    nxt, actions = transition(state, judgement, T0 + seconds, pol)
    assert (nxt.phase, nxt.stage) == (phase, stage), nxt.reason
    assert routes(actions) == want_routes
    assert said(actions) == want_said
    if want_routes:
        assert nxt.intent is not None and not nxt.intent.done
        assert nxt.intent.to_weight == want_routes[0][1]
    if nxt.phase != state.phase:
        true = sorted(c.type for c in nxt.conditions if c.status == "True")
        assert true == TRUE_CONDITIONS[nxt.phase]


def test_halt_records_the_escalation_with_owners_runbook_and_forward_fix() -> None:
    pol = policy(rollbackWindow={"mode": "forward-fix-only"})
    nxt, actions = transition(status(stage=2), look(F, critical=True), T0 + 90, pol)
    esc = nxt.escalation
    assert esc["owners"] == ["team-checkout"]
    assert esc["runbook"] == "https://runbooks/checkout-reconcile"
    assert esc["forwardFix"] == "ship a fix behind the flag"
    assert esc["stage"] == 2 and esc["weight"] == 25
    assert "forward-fix-only" in esc["windowClosed"]
    assert "not reverted" in nxt.reason
    (halted,) = [a for a in actions if isinstance(a, Announce)]
    assert halted.severity == "critical" and "team-checkout" in halted.message


def test_a_pending_intent_is_resumed_and_nothing_else_is_decided() -> None:
    intent = Intent(id="advance-s2-w25", action="advance", from_weight=5, to_weight=25, recorded_at=T0)
    state = status(stage=2, weight=5, intent=intent)
    nxt, actions = transition(state, look(F, critical=True), T0 + 999, policy())
    assert nxt == state
    assert [(a.kind, a.intent) for a in actions if isinstance(a, Route)] == [("set", intent)]


def test_applying_an_advance_starts_the_stage_clock_and_marks_the_intent_done() -> None:
    nxt, _ = transition(status(stage=0), look(P), T0 + 61, policy())
    done = applied(nxt, weight=5, now=T0 + 62)
    assert done.intent is not None and done.intent.done
    assert (done.weight, done.stage_started_at) == (5, T0 + 62)
    assert applied(done, weight=99, now=T0 + 70) == done  # nothing pending: no change


def test_applying_a_revert_keeps_the_stage_clock() -> None:
    nxt, _ = transition(status(stage=1), look(F, critical=True), T0 + 5, policy())
    done = applied(nxt, weight=0, now=T0 + 6)
    assert (done.weight, done.stage_started_at, done.phase) == (0, T0, Phase.ROLLED_BACK)


def test_a_failed_routing_change_stays_pending_and_is_announced_once() -> None:
    nxt, _ = transition(status(stage=0), look(P), T0 + 61, policy())
    failed, actions = route_failed(nxt, message="Conflict", now=T0 + 62)
    assert failed.intent == nxt.intent and "failed, retrying: Conflict" in failed.reason
    assert said(actions) == ["RoutingFailed"]
    again, actions = route_failed(failed, message="Conflict", now=T0 + 63)
    assert again == failed and actions == ()


def test_a_critical_failure_while_an_advance_is_pending_waits_for_the_advance_first() -> None:
    nxt, _ = transition(status(stage=0), look(P), T0 + 61, policy())
    after, actions = transition(nxt, look(F, critical=True), T0 + 62, policy())
    assert routes(actions) == [("set", 5)]  # the recorded change completes before the revert is decided
    reverted, actions = transition(
        applied(after, weight=5, now=T0 + 63), look(F, critical=True), T0 + 64, policy()
    )
    assert routes(actions) == [("revert", 0)] and reverted.phase == Phase.ROLLED_BACK


# -- operator requests ------------------------------------------------------------------------------------------
REQUESTS: dict[str, tuple[GateStatus, Request, Phase, list, list]] = {
    "abort reverts from any live phase": (
        status(stage=2),
        Request("abort", by="ana"),
        Phase.ABORTED,
        [("revert", 0)],
        ["Aborted"],
    ),
    "abort of a halted gate is a human's decision and reverts": (
        status(HALTED, 2),
        Request("abort", by="ana"),
        Phase.ABORTED,
        [("revert", 0)],
        ["Aborted"],
    ),
    "abort of a promoted gate does nothing": (
        status(Phase.PROMOTED, 4),
        Request("abort"),
        Phase.PROMOTED,
        [],
        [],
    ),
    "pause stops a progressing gate": (status(stage=1), Request("pause", by="ana"), PAUSED, [], ["Paused"]),
    "pause of a paused gate does nothing": (status(PAUSED, 1), Request("pause"), PAUSED, [], []),
    "resume continues a paused gate": (status(PAUSED, 1), Request("resume", by="ana"), PROG, [], ["Resumed"]),
    "resume of a progressing gate does nothing": (status(stage=1), Request("resume"), PROG, [], []),
    "resume of a halted gate restarts its stage": (
        status(HALTED, 2),
        Request("resume", by="ana"),
        PROG,
        [],
        ["Resumed"],
    ),
    "approve records the approval": (status(AWAIT, 1), Request("approve", by="ana"), AWAIT, [], ["Approved"]),
    "approve of a passed stage does nothing": (
        status(stage=3),
        Request("approve", by="ana", stage=1),
        PROG,
        [],
        [],
    ),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_request(name: str) -> None:
    state, req, phase, want_routes, want_said = REQUESTS[name]
    nxt, actions = request(state, req, T0 + 100, policy())
    assert nxt.phase == phase
    assert routes(actions) == want_routes
    assert said(actions) == want_said
    again, more = request(nxt, req, T0 + 101, policy())
    assert more == () and again == nxt  # every command is idempotent


def test_resume_resets_the_outage_counters_and_a_halted_stage_restarts_its_clock() -> None:
    paused = status(PAUSED, 1, nodata_since=T0 + 5, consecutive_errors=9)
    nxt, _ = request(paused, Request("resume"), T0 + 100, policy())
    assert (nxt.nodata_since, nxt.consecutive_errors, nxt.stage_started_at) == (None, 0, T0)
    nxt, _ = request(status(HALTED, 2), Request("resume"), T0 + 100, policy())
    assert nxt.stage_started_at == T0 + 100


def test_approval_lets_the_next_passing_look_advance() -> None:
    pol = policy(authority={"mode": "approval", "group": "sre"})
    waiting, _ = transition(status(stage=1), look(P), T0 + 61, pol)
    approved, _ = request(waiting, Request("approve", by="ana"), T0 + 70, pol)
    assert approved.approvals == ["stage-1:ana"]
    nxt, actions = transition(approved, look(P), T0 + 80, pol)
    assert routes(actions) == [("set", 25)] and nxt.stage == 2


# -- properties -------------------------------------------------------------------------------------------------
verdicts = st.sampled_from(list(Verdict))
looks = st.lists(st.tuples(verdicts, st.booleans(), st.floats(0, 400)), max_size=30)


def run(state: GateStatus, seq, pol: Policy):  # type: ignore[no-untyped-def]
    """Drive the machine, applying every routing change at once; yield (before, verdict, after, actions)."""
    now = T0
    for verdict, critical, dt in seq:
        now += dt
        nxt, actions = transition(state, look(verdict, critical=critical), now, pol)
        yield state, verdict, nxt, actions
        for a in actions:
            if isinstance(a, Route):
                nxt = applied(nxt, weight=0.0 if a.kind == "revert" else a.intent.to_weight, now=now)
        state = nxt


@settings(max_examples=150, deadline=None)
@given(seq=looks, stage=st.integers(0, 4))
def test_exposure_only_rises_after_a_pass_and_only_to_the_next_stage_weight(seq, stage) -> None:  # type: ignore[no-untyped-def]
    for before, verdict, _after, actions in run(status(stage=stage), seq, policy()):
        for kind, to in routes(actions):
            if kind == "set" and to > before.weight:
                assert verdict == Verdict.PASS
                nxt_stage = min(before.stage + 1, len(WEIGHTS) - 1)
                assert to == WEIGHTS[nxt_stage] or (to == 100 and before.stage == len(WEIGHTS) - 1)


@settings(max_examples=150, deadline=None)
@given(seq=looks)
def test_missing_evidence_never_moves_traffic_up(seq) -> None:  # type: ignore[no-untyped-def]
    missing = [(v, c, dt) for v, c, dt in seq if v in (Verdict.NODATA, Verdict.ERROR, Verdict.INCONCLUSIVE)]
    for before, _v, _after, actions in run(status(stage=1), missing, policy(onDeadline="advance-if-pass")):
        assert all(to <= before.weight for _k, to in routes(actions))


def test_the_target_weight_comes_from_the_stage_table_not_from_the_recorded_weight() -> None:
    odd = status(stage=1, weight=37)  # whatever the weight says, stage 1 -> stage 2 is 25% (Flagger #1613)
    _, actions = transition(odd, look(P), T0 + 61, policy())
    assert routes(actions) == [("set", 25)]


def test_history_is_bounded_and_a_long_hold_takes_one_entry() -> None:
    state = status(stage=1)
    for k in range(10):
        state, _ = transition(state, look(IN), T0 + k, policy())
    assert [h.action for h in state.history] == ["hold"]
    assert state.history[-1].time == T0 + 9  # the newest evidence
    for k in range(2 * HISTORY_LIMIT):
        state, _ = transition(state, look([IN, N][k % 2]), T0 + 10 + k, policy(budget=10_000))
    assert len(state.history) == HISTORY_LIMIT
    GateStatus.model_validate(state.model_dump())  # still a valid status (the model bounds history)


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    state, _ = transition(status(Phase.PENDING, started=None), None, T0, policy())
    first = {c.type: c.last_transition_time for c in state.conditions}
    state = applied(state, weight=1, now=T0 + 1)
    state, _ = transition(state, look(IN), T0 + 120, policy())
    assert {c.type: c.last_transition_time for c in state.conditions} == first
    state, _ = transition(state, look(F, critical=True), T0 + 180, policy())
    changed = {c.type for c in state.conditions if c.last_transition_time != first[c.type]}
    assert changed == {"Progressing", "RolledBack"}
