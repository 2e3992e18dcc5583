"""Another writer on the route: restore gatekeeper's weights a few times, then stop fighting and hold.

A GitOps sync (Argo CD self-heal, Flux) or a person may write the route's weights back to what they hold
true, every few seconds. Each look reads the route before deciding; when its canary weight is not the one the
Gate recorded (and no routing change of gatekeeper's is in flight), that is a fight:

* up to ``routing.fightLimit`` looks in a row: restore the recorded weight (with the stage's A/B rule and
  mirror) through the same intent protocol as any routing change, so a crash in between neither loses nor
  doubles the restore; the stage clock is not reset. An Event names the writer (``RouteRestored``);
* the next one: stop writing the route, hold for a human (``Paused``) and page the owners
  (``RouteContested``, critical), naming the field manager that wrote the weights
  (``metadata.managedFields``) and what it wrote. A resume starts the count again.

A look that finds the weights as recorded ends the fight (the count goes back to 0). Pure: the router's
reading comes in as arguments; the executor reads the route and performs the actions.
"""

from __future__ import annotations

from gatekeeper.controller.bookkeeping import conditions_for, push_history
from gatekeeper.controller.machine import Action, Announce, Route
from gatekeeper.spec.status import GateStatus, Intent, Phase, RouteContest

__all__ = ["GUARDED", "guard"]

GUARDED = frozenset({Phase.PROGRESSING, Phase.AWAITING_APPROVAL, Phase.PAUSED})


def guard(
    state: GateStatus, *, found: float, by: str | None, where: str, now: float, limit: int
) -> tuple[GateStatus, tuple[Action, ...]]:
    """The next status and actions after a look found the canary at ``found`` percent on ``where`` (the route's
    kind and name), last written by field manager ``by``. ``state`` has no routing change in flight."""
    contest = state.route_contest
    if abs(found - state.weight) < 1e-6:
        if contest is None:
            return state, ()
        return state.model_copy(update={"route_contest": None}), ()  # the other writer stopped
    if state.phase == Phase.PAUSED and contest is not None and contest.fights > limit:
        return state, ()  # held for a human already: no more writes to the route
    resumed = contest is not None and (state.progressed_at or 0.0) > contest.at
    fights = 1 if contest is None or resumed else contest.fights + 1
    who = by or "an unknown writer (no managedFields entry names the weights)"
    seen = RouteContest(fights=fights, by=by or "", weight=found, at=now)
    if fights > limit:
        reason = (
            f"held for a human: {where} had its canary weight changed to {found:g}% by {who} {fights} looks in a row "
            f"(gatekeeper restored {state.weight:g}% {limit} times and stopped fighting); stop that writer or let "
            "it leave the weights to gatekeeper, then resume or abort"
        )
        esc = {**state.escalation, "reason": reason, "routeChangedBy": by or "", "at": now}
        s = state.model_copy(update={"phase": Phase.PAUSED, "reason": reason, "route_contest": seen,
                                     "escalation": esc})  # fmt: skip
        return _done(
            s, now, "hold", (Announce("RouteContested", f"{reason}. Paging the owners", "critical"),)
        )
    intent = Intent(
        id=f"restore-s{state.stage}-w{state.weight:g}-{now:.3f}",
        action="restore",
        from_weight=found,
        to_weight=state.weight,
        recorded_at=now,
        stage=state.stage,
    )
    message = (
        f"{where}: canary weight changed to {found:g}% by {who}; restoring {state.weight:g}% "
        f"(fight {fights} of {limit} before holding)"
    )
    s = state.model_copy(update={"intent": intent, "route_contest": seen})
    return _done(s, now, "restore", (Route("set", intent), Announce("RouteRestored", message, "warning")))


def _done(
    s: GateStatus, now: float, action: str, actions: tuple[Action, ...]
) -> tuple[GateStatus, tuple[Action, ...]]:
    s = s.model_copy(update={"conditions": conditions_for(s, now)})
    s = push_history(s, time=now, action=action, verdict=s.verdict, signals={}, evidence={})
    return s, actions
