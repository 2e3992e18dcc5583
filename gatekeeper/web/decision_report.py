"""The report of a recorded decision: what the gate decided, when and why, then the evidence report of the
look it acted on, drawn from the record alone (`gatekeeper.ops.decisions.RecordedDecision`). No query is
made: the numbers are the look's, whenever the page is opened.

`gatekeeper report`, the dashboard's decision pages, `gatekeeper replay --report` and the demo all render
decisions here.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

from gatekeeper.ops.decisions import RecordedDecision
from gatekeeper.web.report import page, render_report

__all__ = ["render_decision_report", "write_decision_report"]


def write_decision_report(
    path: str | Path, decision: RecordedDecision, *, timeline: Any | None = None
) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_decision_report(decision, timeline=timeline), encoding="utf-8")
    return target


def render_decision_report(decision: RecordedDecision, *, timeline: Any | None = None, back: str = "") -> str:
    """The page for ``decision`` (and a replay's ``timeline``, drawn beside it); ``back``: a link to the
    gate's dashboard page (when served)."""
    r = decision.record
    where = f"{decision.namespace}/{decision.name}" if decision.namespace else decision.name
    number = f" #{decision.seq}" if decision.seq else ""
    title = f"gatekeeper decision{number}: {where} {decision.action} at stage {int(r.get('stage', 0)) + 1}"
    lead = _lead(decision, where)
    if back:
        lead = f"<p><a href='{_e(back)}'>Back to {_e(where)}</a></p>{lead}"
    judgement = decision.judgement()
    if judgement is None:
        why = "; ".join(decision.notes) or "the record holds no judgement"
        body = f"{lead}<p class='muted'>No evidence was recorded with this decision: {_e(why)}.</p>"
        return page(title, body)
    return render_report(gate=decision.gate(), judgement=judgement, timeline=timeline, lead=lead, title=title)


def _lead(d: RecordedDecision, where: str) -> str:
    r = d.record
    stage = int(r.get("stage", 0)) + 1
    move = f"{_pct(r.get('weight'))} → {_pct(r.get('to_weight'))}" if r.get("to_weight") is not None else ""
    rows = [
        ("decided", f"{_e(d.action)} at stage {stage}" + (f" (canary {_e(move)})" if move else "")),
        ("at", _e(_ts(d.time))),
        ("phase after", _e(r.get("phase", ""))),
        ("why", _e(r.get("reason", ""))),
    ]
    if r.get("by"):
        rows.append(("by", _e(r["by"])))
    digest = str(r.get("spec_hash", ""))
    if digest:
        rows.append(
            ("spec", f"<code>{_e(digest[:16])}</code> (sha256 of the spec as written, recorded with it)")
        )
    for note in d.notes:
        rows.append(("note", _e(note)))
    source = (
        "Replayed: drawn from the record the controller would have stored."
        if not d.seq
        else "Drawn from the decision's record: no query is made; these are the numbers the gate acted on."
    )
    table = "".join(f"<tr><th scope='row'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    number = f" #{d.seq}" if d.seq else ""
    return (
        f"<section aria-labelledby='decision'><h1 id='decision'>Decision{_e(number)} of <code>{_e(where)}</code>: "
        f"{_e(d.action)}</h1><p class='muted'>{_e(source)}</p><table class='facts'>{table}</table></section>"
    )


def _pct(x: Any) -> str:
    return f"{float(x):g}%" if isinstance(x, int | float) else "?"


def _ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)
