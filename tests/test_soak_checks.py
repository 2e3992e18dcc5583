"""The soak's checker on hand-made API server records (no cluster): what counts as lost, doubled or pending."""

from __future__ import annotations

from typing import Any

import pytest

from tests.soak.checks import check_gate
from tests.soak.world import NG, STAGE_WEIGHTS, Stored


def _gate(rv: int, status: dict[str, Any]) -> Stored:
    return Stored(rv, 0.0, "gate", "g", "MODIFIED", {"status": status})


def _route(rv: int, weight: int) -> Stored:
    return Stored(
        rv, 0.0, "nginx", "r", "MODIFIED", {"metadata": {"annotations": {NG + "canary-weight": str(weight)}}}
    )


def _intent(stage: int, frm: int, to: int, *, done: bool) -> dict[str, Any]:
    return {"id": f"advance-s{stage}", "action": "advance", "stage": stage, "fromWeight": frm, "toWeight": to,
            "done": done, "recordedAt": 1.0}  # fmt: skip


def _walk(upto: int) -> list[Stored]:
    """A rollout that reached stage ``upto`` with every routing change made."""
    log, rv = [], 1
    for stage, w in enumerate(STAGE_WEIGHTS[: upto + 1]):
        status = {"phase": "Progressing", "stage": stage, "weight": w, "stageStartedAt": 100.0 * stage}
        log += [_gate(rv, {**status, "weight": STAGE_WEIGHTS[stage - 1] if stage else 0,
                           "intent": _intent(stage, 0, w, done=False)}), _route(rv + 1, w), _gate(rv + 2, status)]  # fmt: skip
        rv += 3
    return log


@pytest.mark.parametrize(
    ("route_written", "lost"),
    [(False, 0), (True, 0)],
    ids=["intent pending, route not yet written", "intent pending, route written"],
)
def test_an_unfinished_rollout_with_a_pending_intent_has_lost_nothing(route_written: bool, lost: int) -> None:
    log = _walk(2)  # stages 1-3 done (1, 5, 25)
    to = STAGE_WEIGHTS[3]
    log.append(_gate(90, {"phase": "Progressing", "stage": 3, "weight": STAGE_WEIGHTS[2], "stageStartedAt": 200.0,
                          "intent": _intent(3, STAGE_WEIGHTS[2], to, done=False)}))  # fmt: skip
    if route_written:
        log.append(_route(91, to))
    fig = check_gate(log, gate="g", kind="nginx", route="r", weights=STAGE_WEIGHTS, min_duration=60.0)
    assert (fig.lost, fig.doubled, fig.exceeding) == (lost, 0, [])
    assert fig.weights == [*STAGE_WEIGHTS[:3], *([to] if route_written else [])]


def test_a_routing_change_missing_behind_a_finished_stage_is_lost() -> None:
    log = [s for s in _walk(3) if not (s.what == "nginx" and s.weight == STAGE_WEIGHTS[2])]
    fig = check_gate(log, gate="g", kind="nginx", route="r", weights=STAGE_WEIGHTS, min_duration=60.0)
    assert fig.lost == 1 and fig.doubled == 0


def test_a_record_ending_inside_a_start_or_a_revert_is_neither_lost_nor_doubled() -> None:
    start = _intent(0, 0, STAGE_WEIGHTS[0], done=False)
    for route_written in (False, True):  # a start whose routing write may or may not have been made
        log = [_gate(1, {"phase": "Progressing", "stage": 0, "weight": 0, "intent": start})]
        log += [_route(2, STAGE_WEIGHTS[0])] if route_written else []
        fig = check_gate(log, gate="g", kind="nginx", route="r", weights=STAGE_WEIGHTS, min_duration=60.0)
        assert (fig.lost, fig.doubled) == (0, 0), route_written
    revert = {**_intent(1, STAGE_WEIGHTS[1], 0, done=False), "action": "revert"}
    log = [
        *_walk(1),
        _gate(90, {"phase": "RolledBack", "stage": 1, "weight": STAGE_WEIGHTS[1], "intent": revert}),
    ]
    fig = check_gate(log, gate="g", kind="nginx", route="r", weights=STAGE_WEIGHTS, min_duration=60.0)
    assert (fig.lost, fig.doubled) == (0, 0)
