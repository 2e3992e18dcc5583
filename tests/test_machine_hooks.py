"""The transition machine's lifecycle hooks, inconclusiveLimit and progressDeadline (issue 11).

The machine is pure: a gating hook is asked for with ``Ask`` and the machine is called again with its answer,
the way the executor does it. ``decide`` below plays the executor with a table of answers and records what was
asked, so each test states which hooks a look calls and what follows from their answers. Hook semantics follow
Flagger's webhook documentation (docs/gitbook/usage/webhooks.md): confirm hooks hold until a 2xx, pre-rollout
and rollout failures count toward a limit, a 2xx from a rollback hook rolls back, post-rollout fires after a
promotion or rollback.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from gatekeeper.controller.machine import (
    HOOK_DEADLINE,
    Announce,
    Ask,
    Fire,
    HookAnswer,
    Policy,
    Request,
    Route,
    applied,
    request,
    transition,
)
from gatekeeper.judge import aggregate
from gatekeeper.spec import SignalOutcome, Stage, Verdict
from gatekeeper.spec.evidence import CountEvidence
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.status import GateStatus, Intent, Phase

T0 = 2_000_000.0
OK = HookAnswer(ok=True, message="HTTP 200")
NO = HookAnswer(ok=False, answered=True, message="HTTP 403: gate closed")
SILENT = HookAnswer(ok=False, answered=False, message="timed out after 10s")
P, F, IN, N = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.NODATA


def policy(*hooks: str, weights: tuple[float, ...] = (1, 25, 100), **kw: Any) -> Policy:
    stage_fields = kw.pop("stage", {})
    stages = tuple(Stage.model_validate({"weight": w, "minDuration": 60, **stage_fields}) for w in weights)
    return Policy(
        stages=stages,
        outage_budget=kw.pop("budget", 300.0),
        consecutive_error_limit=kw.pop("errors", 2),
        owners=("team-checkout",),
        hook_types=frozenset(hooks),
        **kw,
    )


def status(phase: Phase = Phase.PROGRESSING, stage: int = 0, **kw: Any) -> GateStatus:
    weight = kw.pop("weight", (1, 25, 100)[stage] if phase != Phase.PENDING else 0.0)
    started = kw.pop("started", None if phase == Phase.PENDING else T0)
    return GateStatus(phase=phase, stage=stage, weight=weight, stage_started_at=started, **kw)


def look(verdict: Verdict = P, *, name: str = "error-rate") -> Any:
    o = SignalOutcome(
        name=name,
        kind="ratio",
        verdict=verdict,
        reason=f"{name} is {verdict}",
        evidence=CountEvidence(minimums=True),
    )
    return aggregate([o], gate="g", window={"start": 0, "end": 60, "step": 60})


def decide(state: GateStatus, j: Any, now: float, pol: Policy, answers: dict[str, HookAnswer]) -> Any:
    """Run the machine as the executor does: answer each Ask from ``answers`` and decide again."""
    asked: list[str] = []
    hooks: dict[str, HookAnswer] = {}
    for _ in range(10):
        nxt, actions = transition(state, j, now, pol, hooks)
        asks = [a for a in actions if isinstance(a, Ask)]
        if not asks:
            return nxt, actions, asked
        assert len(actions) == 1, "an asking step carries nothing else"
        asked.append(asks[0].type)
        hooks[asks[0].type] = answers[asks[0].type]
    raise AssertionError(f"the machine kept asking: {asked}")


def said(actions: Any) -> list[str]:
    return [a.reason for a in actions if isinstance(a, Announce)]


def routes(actions: Any) -> list[tuple[str, float]]:
    return [(a.kind, a.intent.to_weight) for a in actions if isinstance(a, Route)]


def fired(actions: Any) -> list[str]:
    return [a.type for a in actions if isinstance(a, Fire)]


def settle(s: GateStatus, actions: Any, now: float) -> GateStatus:
    """Apply the routing change the step asked for, as the executor would after a successful write."""
    for r in actions:
        if isinstance(r, Route):
            s = applied(s, weight=r.intent.to_weight, now=now)
    return s


# -- before the first routing change --------------------------------------------------------------------------
def test_confirm_rollout_then_pre_rollout_are_asked_in_flaggers_order_before_any_traffic_moves() -> None:
    s, actions, asked = decide(status(Phase.PENDING), None, T0, policy("confirm-rollout", "pre-rollout"),
                               {"confirm-rollout": OK, "pre-rollout": OK})  # fmt: skip
    assert asked == ["confirm-rollout", "pre-rollout"]
    assert s.phase == Phase.PROGRESSING and routes(actions) == [("set", 1)]
    assert s.hooks_passed == ["confirm-rollout", "pre-rollout"]
    s = settle(s, actions, T0)
    # once passed they are not asked again in this rollout (a pending intent is resumed without them)
    _, _, asked = decide(s, look(Verdict.INCONCLUSIVE), T0 + 10, policy("confirm-rollout", "pre-rollout"), {})
    assert asked == []


def test_a_refusing_confirm_rollout_hook_waits_for_a_person_as_long_as_it_takes() -> None:
    pol = policy("confirm-rollout", "pre-rollout")
    s, actions, asked = decide(status(Phase.PENDING), None, T0, pol, {"confirm-rollout": NO})
    assert asked == ["confirm-rollout"], "pre-rollout checks wait for the confirmation"
    assert s.phase == Phase.PENDING and routes(actions) == [] and said(actions) == ["Waiting"]
    assert "HTTP 403" in s.reason and s.waiting_for == "confirm-rollout"
    later, actions, _ = decide(s, None, T0 + 10 * HOOK_DEADLINE, pol, {"confirm-rollout": NO})
    assert later.phase == Phase.PENDING and said(actions) == [], "announced once, never failed by time"


def test_an_unanswered_confirm_hook_holds_then_fails_at_its_deadline() -> None:
    pol = policy("confirm-rollout")
    s, actions, _ = decide(status(Phase.PENDING), None, T0, pol, {"confirm-rollout": SILENT})
    assert s.phase == Phase.PENDING and said(actions) == ["HookUnanswered"] and s.waiting_since == T0
    s, actions, _ = decide(s, None, T0 + HOOK_DEADLINE - 1, pol, {"confirm-rollout": SILENT})
    assert s.phase == Phase.PENDING and said(actions) == []
    s, actions, _ = decide(s, None, T0 + HOOK_DEADLINE, pol, {"confirm-rollout": SILENT})
    assert s.phase == Phase.ROLLED_BACK and said(actions) == ["RolledBack"]
    assert "has not answered for 600s" in s.reason and routes(actions) == [("revert", 0)]


def test_the_hook_deadline_is_the_stage_max_duration_else_the_progress_deadline() -> None:
    assert policy(stage={"maxDuration": 120}).hook_deadline(0) == 120
    assert policy(progress_deadline=90.0).hook_deadline(0) == 90
    assert policy().hook_deadline(0) == HOOK_DEADLINE


def test_failing_pre_rollout_checks_retry_then_fail_the_rollout_past_the_limit() -> None:
    pol = policy("pre-rollout", "post-rollout", errors=2)
    bad = HookAnswer(ok=False, message="HTTP 500: helm test failed")
    s = status(Phase.PENDING)
    seen = []
    for i in range(3):
        s, actions, _ = decide(s, None, T0 + 30 * i, pol, {"pre-rollout": bad})
        seen.append((s.phase, said(actions), routes(actions), fired(actions)))
    assert seen[0] == (Phase.PENDING, ["HookFailed"], [], [])
    assert seen[1] == (Phase.PENDING, [], [], [])
    assert seen[2] == (Phase.ROLLED_BACK, ["RolledBack"], [("revert", 0)], ["post-rollout"])
    assert "pre-rollout hooks failed 3 checks in a row (limit 2)" in s.reason


# -- during the analysis --------------------------------------------------------------------------------------
def test_confirm_traffic_increase_is_asked_only_when_the_stage_would_advance() -> None:
    pol = policy("confirm-traffic-increase")
    _, _, asked = decide(status(), look(IN), T0 + 61, pol, {})
    assert asked == [], "an undecided stage asks nothing"
    s, actions, asked = decide(status(), look(P), T0 + 61, pol, {"confirm-traffic-increase": NO})
    assert asked == ["confirm-traffic-increase"]
    assert s.stage == 0 and routes(actions) == [] and said(actions) == ["Waiting"]
    s, actions, _ = decide(s, look(P), T0 + 91, pol, {"confirm-traffic-increase": NO})
    assert said(actions) == [] and s.phase == Phase.PROGRESSING
    s, actions, _ = decide(s, look(F), T0 + 121, pol, {"confirm-traffic-increase": NO})
    assert s.phase == Phase.ROLLED_BACK, "the analysis keeps protecting while the increase waits"
    s, actions, _ = decide(status(), look(P), T0 + 61, pol, {"confirm-traffic-increase": OK})
    assert s.stage == 1 and routes(actions) == [("set", 25)]


def test_confirm_promotion_gates_the_last_step_and_post_rollout_fires_after_it() -> None:
    pol = policy("confirm-traffic-increase", "confirm-promotion", "post-rollout")
    s, actions, asked = decide(status(stage=2), look(P), T0 + 61, pol, {"confirm-promotion": NO})
    assert asked == ["confirm-promotion"] and s.phase == Phase.PROGRESSING and fired(actions) == []
    s, actions, _ = decide(status(stage=1), look(P), T0 + 61, pol, {"confirm-traffic-increase": OK})
    assert s.stage == 2 and routes(actions) == [("set", 100)] and fired(actions) == []
    s, actions, _ = decide(status(stage=2), look(P), T0 + 61, pol, {"confirm-promotion": OK})
    assert s.phase == Phase.PROMOTED and said(actions) == ["Promoted"] and fired(actions) == ["post-rollout"]


def test_a_rollback_hook_answering_2xx_rolls_back_and_a_refusal_changes_nothing() -> None:
    pol = policy("rollback")
    s, actions, asked = decide(status(), look(IN), T0 + 10, pol, {"rollback": OK})
    assert asked == ["rollback"] and s.phase == Phase.ROLLED_BACK and routes(actions) == [("revert", 0)]
    assert "a rollback hook asked for it" in s.reason
    s, actions, _ = decide(status(), look(IN), T0 + 10, pol, {"rollback": NO})
    assert s.phase == Phase.PROGRESSING and routes(actions) == []
    s, actions, _ = decide(status(phase=Phase.AWAITING_APPROVAL), look(P), T0 + 61, pol, {"rollback": OK})
    assert s.phase == Phase.ROLLED_BACK, "also while waiting for an approval (Flagger: Waiting)"


def test_failing_rollout_hooks_hold_the_advance_and_fail_the_stage_past_the_limit() -> None:
    pol = policy("rollout", errors=1)
    bad = HookAnswer(ok=False, message="HTTP 500: load test could not start")
    s, actions, _ = decide(status(), look(P), T0 + 61, pol, {"rollout": bad})
    assert s.stage == 0 and routes(actions) == [] and said(actions) == ["HookFailed"], "no advance"
    s, actions, _ = decide(s, look(P), T0 + 71, pol, {"rollout": bad})
    assert s.phase == Phase.ROLLED_BACK and "rollout hooks failed 2 checks in a row (limit 1)" in s.reason
    s, actions, _ = decide(status(hook_failures=1), look(P), T0 + 61, pol, {"rollout": OK})
    assert s.stage == 1 and s.hook_failures == 0, "a passing check resets the count"
    s, _, asked = decide(status(phase=Phase.PAUSED), look(P), T0 + 61, pol, {})
    assert asked == [], "no rollout hooks while paused: no analysis progress to drive"


# -- inconclusiveLimit and progressDeadline -------------------------------------------------------------------
def test_inconclusive_limit_holds_for_a_human_one_look_past_it() -> None:
    pol = policy(inconclusive_limits=(("error-rate", 2, 30.0),))
    s = status()
    phases = []
    for t in (10, 20, 40, 50, 60):  # the first two are inside the 30 s initial delay
        s, actions, _ = decide(s, look(IN), T0 + t, pol, {})
        phases.append((s.inconclusive.get("error-rate", 0), s.phase, said(actions)))
    assert phases == [
        (0, Phase.PROGRESSING, []),
        (0, Phase.PROGRESSING, []),
        (1, Phase.PROGRESSING, []),
        (2, Phase.PROGRESSING, []),
        (3, Phase.PAUSED, ["Held"]),
    ]
    assert "inconclusive 3 looks in a row (inconclusiveLimit 2)" in s.reason
    resumed, _ = request(s, Request("resume", by="sre"), T0 + 70, pol)
    assert resumed.inconclusive == {} and resumed.phase == Phase.PROGRESSING


def test_another_verdict_resets_the_inconclusive_count() -> None:
    pol = policy(inconclusive_limits=(("error-rate", 1, 0.0),))
    s, _, _ = decide(status(), look(IN), T0 + 10, pol, {})
    s, _, _ = decide(s, look(N), T0 + 20, pol, {})
    s, _, _ = decide(s, look(IN), T0 + 30, pol, {})
    assert s.inconclusive == {"error-rate": 1} and s.phase == Phase.PROGRESSING


def test_progress_deadline_counts_from_the_stage_minimum_and_holds_on_missing_evidence() -> None:
    pol = policy(progress_deadline=300.0)  # stages last at least 60 s
    s, actions, _ = decide(status(), look(IN), T0 + 359, pol, {})
    assert s.phase == Phase.PROGRESSING
    s, actions, _ = decide(status(), look(IN), T0 + 360, pol, {})
    assert s.phase == Phase.ROLLED_BACK
    assert "made no progress for 300s past its minimum (progressDeadline 300s)" in s.reason
    s, actions, _ = decide(status(), look(N), T0 + 360, pol, {})
    assert s.phase == Phase.PAUSED and said(actions) == ["Held"] and routes(actions) == []
    s, actions, _ = decide(status(phase=Phase.AWAITING_APPROVAL), look(IN), T0 + 900, pol, {})
    assert s.phase == Phase.AWAITING_APPROVAL, "waiting for a person is not a stall"
    resumed = status(progressed_at=T0 + 600)
    s, actions, _ = decide(resumed, look(IN), T0 + 800, pol, {})
    assert s.phase == Phase.PROGRESSING, "counted from the last progress (a resume), not the stage start"
    long_stage = policy(progress_deadline=300.0, stage={"minDuration": 3600})
    s, actions, _ = decide(status(), look(IN), T0 + 3000, long_stage, {})
    assert s.phase == Phase.PROGRESSING, "a stage longer than the deadline is not stalled inside its minimum"


def test_a_routing_change_still_failing_at_the_progress_deadline_pages_once_and_keeps_retrying() -> None:
    pol = policy(progress_deadline=300.0)
    intent = Intent(id="advance-s1", action="advance", from_weight=1, to_weight=25, recorded_at=T0, stage=1)
    s = status(intent=intent, reason="routing advance to 25% failed, retrying: admission webhook denied")
    _, actions, _ = decide(s, look(P), T0 + 100, pol, {})
    assert routes(actions) == [("set", 25)] and said(actions) == []
    late, actions, _ = decide(s, look(P), T0 + 300, pol, {})
    assert routes(actions) == [("set", 25)] and said(actions) == ["ProgressDeadlineExceeded"]
    assert [a.severity for a in actions if isinstance(a, Announce)] == ["critical"]
    again, actions, _ = decide(late, look(P), T0 + 330, pol, {})
    assert said(actions) == [], "paged once"
    done = applied(again, weight=25, now=T0 + 340)
    assert "progressDeadline" not in done.escalation and done.progressed_at == T0 + 340


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ({"stages": [{"weight": 0, "match": {"headers": {"x-canary": "1"}}}],
          "routing": {"kind": "smi", "name": "r", "canaryBackend": "c", "stableBackend": "s"}}, "cannot route by header"),
        ({"stages": [{"weight": 0, "mirror": 10}],
          "routing": {"kind": "nginx", "name": "r", "canaryBackend": "c", "stableBackend": "s"}}, "cannot mirror"),
    ],
)  # fmt: skip
def test_the_spec_rejects_deadlines_and_stage_routing_the_gate_cannot_honour(patch: dict, error: str) -> None:
    base: dict[str, Any] = {
        "name": "g",
        "scopes": {"canary": {"track": "canary"}, "baseline": {"track": "baseline"}},
        "signals": [{"name": "e", "kind": "ratio", "bad": "errors_total", "total": "requests_total"}],
    }
    with pytest.raises(ValueError, match=re.escape(error)):
        GateSpec.model_validate({**base, **patch})


def test_the_specs_routing_capability_table_matches_the_routers() -> None:
    import importlib

    from gatekeeper.routing import MatchRouter, MirrorRouter
    from gatekeeper.routing.base import KINDS
    from gatekeeper.spec import models

    def has(kind: str, proto: type) -> bool:
        module, _, cls = KINDS[kind].partition(":")
        impl = getattr(importlib.import_module(module), cls)
        return all(callable(getattr(impl, m, None)) for m in proto.__dict__ if m.startswith("set_"))

    assert {k for k in KINDS if has(k, MatchRouter)} == models._MATCH_KINDS
    assert {k for k in KINDS if has(k, MirrorRouter)} == models._MIRROR_KINDS
