"""Recorded decisions for people: list a Gate's decisions, read one, rebuild its judgement and spec for the
report. The CLI (`gatekeeper report`), the dashboard's decision pages, replay and the demo all render a
decision through `RecordedDecision`, so a report shows the numbers the decision was made on and never asks
the source again.

Errors (`gatekeeper.ops.errors`): `DecisionNotFound` (an `InvalidAction`: the message says which decisions
are kept), `Refused` (no read access to ConfigMaps: the message names the permission), `Unreachable`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gatekeeper.controller.decision_store import DecisionStore, NotOurs, Stored, StoreUnavailable
from gatekeeper.controller.decisions import build_record, decisions_between, decode, encode
from gatekeeper.controller.kube import parse_gate
from gatekeeper.judge import Judgement
from gatekeeper.ops.errors import InvalidAction, Refused, Unreachable
from gatekeeper.spec import GateSpec, SpecError
from gatekeeper.spec.evidence import evidence_from_dict
from gatekeeper.spec.fingerprint import spec_hash
from gatekeeper.spec.outcome import Effect, SignalOutcome, Verdict
from gatekeeper.spec.status import GateStatus

__all__ = [
    "DecisionNotFound",
    "RecordedDecision",
    "describe",
    "dumps",
    "list_decisions",
    "read_decision",
    "replay_decisions",
]


class DecisionNotFound(InvalidAction, LookupError):
    """No such recorded decision; the message says which exist."""


def _unavailable(e: Exception) -> Exception:
    """A store failure as the error tree's: refused (403: the permission named) or unreachable."""
    if " 403 " in f" {e} ":
        return Refused(f"{e}; reading decision records needs get on configmaps (the chart's viewer role)")
    return Unreachable(str(e))


@dataclass(frozen=True)
class RecordedDecision:
    """One decision as recorded: ``seq`` (its number for the Gate, 0 for one that was never stored, e.g. a
    replay's) and the record (`gatekeeper.controller.decisions`)."""

    seq: int
    record: dict[str, Any]

    @property
    def namespace(self) -> str:
        return str((self.record.get("gate") or {}).get("namespace") or "")

    @property
    def name(self) -> str:
        return str((self.record.get("gate") or {}).get("name") or "")

    @property
    def action(self) -> str:
        return "hold for a human" if self.record.get("human_hold") else str(self.record.get("action", ""))

    @property
    def time(self) -> float:
        return float(self.record.get("time", 0.0))

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(str(n) for n in self.record.get("notes") or ())

    def judgement(self) -> Judgement | None:
        """The judgement of the look the decision acted on, as the judge returned it (None: none recorded)."""
        j = self.record.get("judgement")
        if not isinstance(j, dict):
            return None
        return Judgement(
            gate=str(j.get("gate") or self.name),
            verdict=Verdict(j.get("verdict", "nodata")),
            reason=str(j.get("reason", "")),
            signals=tuple(_outcome(s) for s in j.get("signals") or ()),
            window={k: float(v) for k, v in (j.get("window") or {}).items() if _number(v) is not None},
            stage=int(j.get("stage", 0)),
            weight=_number(j.get("weight")),
            mode=str(j.get("mode", "sequential")),
            critical_failure=bool(j.get("critical_failure", False)),
            side_effects=_numbers(j.get("side_effects") or {}),
            owners=tuple(j.get("owners") or ()),
        )

    def gate(self) -> GateSpec | None:
        """The gate as it was when it decided (its recorded spec); None when the spec was not kept or no
        longer validates (the report then draws what the record holds without the spec's descriptions)."""
        spec = self.record.get("spec")
        if not isinstance(spec, dict) or not spec:
            return None
        obj = {
            "metadata": {"name": self.name or "gate", "namespace": self.namespace or "default"},
            "spec": spec,
        }
        try:
            return parse_gate(obj)
        except SpecError:
            return None

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, **self.record}


def describe(d: RecordedDecision | Stored) -> str:
    """One line: ``#3 revert at stage 1 (1%), 2026-11-25T14:03:00Z``."""
    weight: float | None
    if isinstance(d, Stored):
        action = "hold for a human" if d.human_hold else d.action
        seq, stage, weight, t = d.seq, d.stage, d.weight, d.time
    else:
        r = d.record
        action, seq, stage, weight, t = d.action, d.seq, int(r.get("stage", 0)), r.get("weight"), d.time
    when = dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    number = f"#{seq} " if seq else ""
    return f"{number}{action} at stage {stage + 1} ({_pct(weight)}), {when}"


# -- reading the store ----------------------------------------------------------------------------------------
def list_decisions(
    store: DecisionStore, *, namespace: str, name: str, uid: str | None = None
) -> list[Stored]:
    """The Gate's recorded decisions, oldest first."""
    try:
        return store.index(namespace, name, uid=uid)
    except StoreUnavailable as e:
        raise _unavailable(e) from e


def read_decision(
    store: DecisionStore,
    *,
    namespace: str,
    name: str,
    seq: int | None = None,
    at: float | None = None,
    uid: str | None = None,
) -> RecordedDecision:
    """Decision number ``seq``, the one made at ``at``, or the newest."""
    try:
        found = store.read(namespace, name, seq=seq, at=at, uid=uid)
        if found is None:
            index = store.index(namespace, name, uid=uid)
    except (StoreUnavailable, NotOurs) as e:
        raise _unavailable(e) from e
    except (ValueError, OSError, gzip.BadGzipFile) as e:
        raise Unreachable(f"the record of {namespace}/{name} cannot be read: {e}") from e
    if found is not None:
        return RecordedDecision(seq=found[0].seq, record=found[1])
    if not index:
        raise DecisionNotFound(
            f"Gate {namespace}/{name} has no recorded decision: it has not advanced, reverted, halted, been "
            "promoted or held for a human yet (routine looks are not recorded)"
        )
    which = f"decision #{seq}" if seq is not None else f"a decision at {at}"
    kept = ", ".join(f"#{s.seq} {s.action}" for s in index)
    raise DecisionNotFound(
        f"Gate {namespace}/{name} has no {which} (kept: {kept}; only the newest are kept); "
        "list them with gatekeeper report GATE --list"
    )


# -- replay: the same records, made in memory -----------------------------------------------------------------
def replay_decisions(
    gate: GateSpec, looks: Sequence[Any], *, start: GateStatus | None = None, namespace: str = ""
) -> list[RecordedDecision]:
    """The records the controller would have stored for a replay's looks (`gatekeeper.ops.replay.Look`),
    encoded and decoded as stored, so a replay's report is drawn exactly as a recorded decision's."""
    spec = gate.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"name"})
    obj = {"metadata": {"name": gate.name, "namespace": namespace}, "spec": spec}
    digest = spec_hash(spec)
    before = start if start is not None else GateStatus()
    out: list[RecordedDecision] = []
    for look in looks:
        for d in decisions_between(before, look.status):
            record = build_record(
                decision=d, gate=obj, status=look.status, judgement=look.judgement, spec_hash=digest
            )
            record["notes"].append("replayed: what the gate would have decided, not what it decided")
            blob, _ = encode(record)
            out.append(RecordedDecision(seq=0, record=decode(blob)))
        before = look.status
    return out


# -- rebuilding outcomes --------------------------------------------------------------------------------------
def _outcome(s: dict[str, Any]) -> SignalOutcome:
    effect = s.get("effect")
    return SignalOutcome(
        name=str(s.get("name", "?")),
        kind=str(s.get("kind", "")),
        verdict=Verdict(s.get("verdict", "nodata")),
        reason=str(s.get("reason", "")),
        canary=_numbers(s.get("canary") or {}),
        baseline=_numbers(s.get("baseline") or {}),
        effect=Effect(
            measure=str(effect.get("measure", "")),
            estimate=_number(effect.get("estimate")),
            lower=_number(effect.get("lower")),
            upper=_number(effect.get("upper")),
            limit=_number(effect.get("limit")),
        )
        if isinstance(effect, dict)
        else None,
        queries={str(k): str(v) for k, v in (s.get("queries") or {}).items()},
        evidence=evidence_from_dict(_numbers(s.get("evidence") or {})),
        critical=bool(s.get("critical", False)),
        dry_run=bool(s.get("dry_run", False)),
    )


_SPECIAL = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _number(x: Any) -> float | None:
    if isinstance(x, str) and x in _SPECIAL:
        return _SPECIAL[x]
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x)


def _numbers(x: Any) -> Any:
    """The record keeps NaN and infinities as strings (JSON has none): back to floats."""
    if isinstance(x, str) and x in _SPECIAL:
        return _SPECIAL[x]
    if isinstance(x, dict):
        return {k: _numbers(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_numbers(v) for v in x]
    return x


def _pct(weight: Any) -> str:
    return f"{float(weight):g}%" if isinstance(weight, int | float) else "?"


def dumps(d: RecordedDecision) -> str:
    """The record as JSON (what `gatekeeper report -o json` prints)."""
    return json.dumps(d.to_dict(), indent=2, sort_keys=True)
