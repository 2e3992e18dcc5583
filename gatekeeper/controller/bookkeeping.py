"""Pure bookkeeping of a Gate's status: conditions from the phase, the bounded history, evidence summaries.

No I/O and no clock: times arrive as arguments (unix seconds of the gate's clock).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from gatekeeper.judge import Judgement
from gatekeeper.spec.status import HISTORY_LIMIT, Condition, GateStatus, HistoryEntry, Phase

__all__ = ["CONDITION_TYPES", "conditions_for", "evidence_of", "push_history", "rfc3339", "side_effect_count"]

# condition type -> the phases in which it is True
CONDITION_TYPES: dict[str, frozenset[Phase]] = {
    "Progressing": frozenset({Phase.PROGRESSING, Phase.AWAITING_APPROVAL}),
    "AwaitingApproval": frozenset({Phase.AWAITING_APPROVAL}),
    "Halted": frozenset({Phase.HALTED}),
    "RolledBack": frozenset({Phase.ROLLED_BACK, Phase.ABORTED}),
    "Promoted": frozenset({Phase.PROMOTED}),
}


def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_for(s: GateStatus, now: float) -> list[Condition]:
    """One condition per type; ``lastTransitionTime`` moves only when the condition's status flips."""
    old = {c.type: c for c in s.conditions}
    out: list[Condition] = []
    for kind, phases in CONDITION_TYPES.items():
        status = "True" if s.phase in phases else "False"
        prev = old.get(kind)
        since = prev.last_transition_time if prev is not None and prev.status == status else rfc3339(now)
        out.append(
            Condition(
                type=kind,
                status=status,
                reason=s.phase.value,
                message=s.reason if status == "True" else "",
                last_transition_time=since,
            )
        )
    return out


def evidence_of(j: Judgement) -> tuple[dict[str, str], dict[str, Any]]:
    """Per signal: its verdict, and the few numbers that explain it (effect bounds, e-value, samples)."""
    verdicts: dict[str, str] = {}
    evidence: dict[str, Any] = {}
    for o in j.signals:
        verdicts[o.name] = o.verdict.value
        e: dict[str, Any] = o.evidence.recorded() if o.evidence is not None else {}
        if o.effect is not None:
            e |= {"estimate": o.effect.estimate, "lower": o.effect.lower, "upper": o.effect.upper}
            e["limit"] = o.effect.limit
        if o.dry_run:
            e["dryRun"] = True
        evidence[o.name] = _finite(e)
    return verdicts, evidence


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN/inf: such values become None."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            v = None
        out[k] = v
    return out


def side_effect_count(side_effects: dict[str, Any]) -> tuple[int, bool]:
    """(total canary side effects, known?). A query error is unknown; an absent series counts as zero."""
    if "error" in side_effects:
        return 0, False
    total = 0
    for entry in side_effects.values():
        count = entry.get("count") if isinstance(entry, dict) else None
        total += int(count or 0)
    return total, True


def push_history(
    s: GateStatus,
    *,
    time: float,
    action: str,
    verdict: str,
    signals: dict[str, str],
    evidence: dict[str, Any],
) -> GateStatus:
    """Append one entry, newest last, at most ``HISTORY_LIMIT``. A hold that repeats the previous hold's stage
    and verdict replaces it, so a long wait takes one entry (with the newest evidence) and transitions stay."""
    entry = HistoryEntry(
        time=time,
        stage=s.stage,
        weight=s.weight,
        verdict=verdict,
        reason=s.reason,
        action=action,
        signals=signals,
        evidence=evidence,
    )
    history = list(s.history)
    if history and action == "hold":
        last = history[-1]
        if last.action == "hold" and last.stage == s.stage and last.verdict == verdict:
            history.pop()
    history.append(entry)
    return s.model_copy(update={"history": history[-HISTORY_LIMIT:]})
