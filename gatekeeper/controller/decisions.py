"""Recorded decisions: what a look that acted saw, kept so its report never needs the source again.

A decision is a transition the machine made on a look, or an operator's abort: ``advance``, ``promote``,
``revert``, ``halt``, ``await-approval``, ``abort``, and a ``hold`` that stops the rollout for a human (the
phase turns Paused). Routine holds, pauses and resumes are not decisions and record nothing.

A record holds the judgement as the judge returned it (`Judgement.to_dict`: every signal's verdict, reason,
canary and baseline numbers, effect with its bounds, exact queries, and evidence: e-value and its path,
threshold, samples, per-step counts), the window and stage, the machine's reason, the spec as written and its
hash (the report draws the signals the gate had then, whatever the spec says now). The sequential state
carried between stages (``SignalOutcome.carry``, ``status.carried``) is not copied: it is the machine's, not
the reader's.

Bounded: a record is compressed (gzip) and must fit `RECORD_BYTES`; a larger one is thinned step by step
(per-step counts and e-value paths to fewer points, then without them, then without the spec), and says so in
``notes``. Pure: no I/O and no clock; `gatekeeper.controller.decision_store` keeps records beside the Gate.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gatekeeper.judge import Judgement
from gatekeeper.spec.status import GateStatus, HistoryEntry, Phase

__all__ = [
    "ACTIONS",
    "RECORD_BYTES",
    "RECORD_VERSION",
    "Decision",
    "build_record",
    "decisions_between",
    "decode",
    "encode",
    "summary_of",
]

RECORD_VERSION = 1
RECORD_BYTES = 96 * 1024  # compressed bytes of one record at most
ACTIONS = frozenset({"advance", "promote", "revert", "halt", "await-approval", "abort"})
_FLOAT_DIGITS = 7  # significant digits kept of every float (e-values, bounds, rates)


@dataclass(frozen=True)
class Decision:
    """One transition to record: its history entry and whether it stopped the rollout for a human."""

    entry: HistoryEntry
    human_hold: bool = False

    @property
    def action(self) -> str:
        return self.entry.action


def decisions_between(before: GateStatus, after: GateStatus) -> list[Decision]:
    """The decisions a write added: new history entries that act, and a hold that paused the rollout."""
    seen = {(h.time, h.action) for h in before.history}
    new = [h for h in after.history if (h.time, h.action) not in seen]
    out = [Decision(h) for h in new if h.action in ACTIONS]
    paused = after.phase == Phase.PAUSED and before.phase != Phase.PAUSED
    holds = [h for h in new if h.action == "hold"]
    if paused and holds:
        out.append(Decision(holds[-1], human_hold=True))
    return sorted(out, key=lambda d: d.entry.time)


def build_record(
    *,
    decision: Decision,
    gate: dict[str, Any],
    status: GateStatus,
    judgement: Judgement | None,
    spec_hash: str,
    by: str = "",
) -> dict[str, Any]:
    """The record of ``decision`` on the Gate object ``gate`` (its metadata and spec as written); ``status``
    is the status after the decision, ``judgement`` the look it acted on (None: an abort without a look of
    this stage in memory)."""
    meta = gate.get("metadata") or {}
    h = decision.entry
    intent = status.intent
    to_weight = intent.to_weight if intent is not None and abs(intent.recorded_at - h.time) < 1e-6 else None
    notes: list[str] = []
    judged = judgement.to_dict() if judgement is not None else None
    # the stage judged: an advance's history entry already names the next stage
    stage = judgement.stage if judgement is not None else h.stage
    if judgement is not None and h.action == "abort" and judgement.stage != h.stage:
        notes.append(
            f"the last look kept in memory judged stage {judgement.stage + 1}, not stage {h.stage + 1}"
        )
    if judged is None and h.action == "abort":
        notes.append("no look of this stage was in memory when it was aborted: the record has no evidence")
    elif judged is None:
        notes.append("decided without a look (e.g. another writer kept changing the route): no evidence")
    return {
        "version": RECORD_VERSION,
        "gate": {"namespace": meta.get("namespace"), "name": meta.get("name"), "uid": meta.get("uid")},
        "time": h.time,
        "action": h.action,
        "human_hold": decision.human_hold,
        "stage": stage,
        "weight": h.weight,
        "to_weight": to_weight,
        "verdict": h.verdict,
        "phase": status.phase.value,
        "reason": h.reason,
        "by": by,
        "spec_hash": spec_hash,
        "spec": gate.get("spec") or {},
        "generation": meta.get("generation"),
        "judgement": judged,
        "notes": notes,
    }


def summary_of(record: dict[str, Any]) -> dict[str, Any]:
    """The few fields a list of decisions shows (kept in the store's index)."""
    return {k: record.get(k) for k in ("time", "action", "human_hold", "stage", "weight", "verdict", "phase")}


# -- encoding -------------------------------------------------------------------------------------------------
def encode(record: dict[str, Any], *, limit: int = RECORD_BYTES) -> tuple[bytes, dict[str, Any]]:
    """gzip of the record's JSON, thinned until it fits ``limit`` bytes; the record as stored is returned too.
    Floats below 1e6 keep 7 significant digits (larger ones, times among them, stay exact); NaN and
    infinities become strings ("nan", "inf", "-inf")."""
    record = _clean(record)
    for name, thin in _THINNING:
        blob = _gzip(record)
        if len(blob) <= limit:
            return blob, record
        record = thin(record)
        record["notes"] = [*record.get("notes", []), f"{name} to fit the record limit of {limit} bytes"]
    blob = _gzip(record)
    if len(blob) > limit:
        raise ValueError(
            f"a decision record is {len(blob)} bytes compressed even when thinned (limit {limit})"
        )
    return blob, record


def decode(blob: bytes) -> dict[str, Any]:
    record = json.loads(gzip.decompress(blob))
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        raise ValueError(f"not a version {RECORD_VERSION} decision record")
    return record


def _gzip(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, separators=(",", ":"), sort_keys=True)
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x if abs(x) >= 1e6 else float(f"{x:.{_FLOAT_DIGITS}g}")  # times (unix seconds) stay exact
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def _evidence_map(
    record: dict[str, Any], change: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    judged = record.get("judgement")
    if not isinstance(judged, dict):
        return record
    signals = [{**s, "evidence": change(dict(s.get("evidence") or {}))} for s in judged.get("signals") or []]
    return {**record, "judgement": {**judged, "signals": signals}}


def _fewer_points(ev: dict[str, Any]) -> dict[str, Any]:
    from gatekeeper.signals.steps import rebucket

    series = ev.get("series")
    if isinstance(series, dict):
        ev["series"] = rebucket(series, points=30)
    for key, times in (("path", "path_t"), ("values", "values_t")):
        if isinstance(ev.get(key), list) and len(ev[key]) > 30:
            ev[key] = ev[key][-30:]
            if isinstance(ev.get(times), list):
                ev[times] = ev[times][-30:]
    return ev


def _no_points(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k not in ("series", "path", "path_t", "values", "values_t")}


def _no_spec(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "spec": {}}


_THINNING: tuple[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]], ...] = (
    ("per-step counts and e-value paths cut to 30 points", lambda r: _evidence_map(r, _fewer_points)),
    ("per-step counts and e-value paths left out", lambda r: _evidence_map(r, _no_points)),
    ("the spec left out (its hash is kept)", _no_spec),
)
