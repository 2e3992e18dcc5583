"""dashboard: HTML pages of the gate list and of one gate, rendered from `gatekeeper.ops.views` view models.

Pages are plain HTML + one CSS file (no scripts, no external fonts), so they work with the keyboard, screen
readers and without network. Every value is HTML-escaped here, in one place (`_e`). `templates/layout.html`
is a `string.Template`; bodies are built by the functions below.

Must not: fetch data or decide anything; it renders the view models it is given.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from importlib import resources
from string import Template
from typing import Any

from gatekeeper.ops.views import GateDetail, GateRow

__all__ = ["STATIC_DIR", "format_age", "render_detail", "render_list", "render_message"]

STATIC_DIR = str(resources.files(__package__) / "static")
_LAYOUT = Template((resources.files(__package__) / "templates" / "layout.html").read_text(encoding="utf-8"))


def _page(title: str, body: str, *, root: str, writable: bool) -> str:
    mode = "approve/abort enabled (token required)" if writable else "read-only"
    return _LAYOUT.substitute(title=_e(title), body=body, root=_e(root), mode=_e(mode))


def render_list(rows: list[GateRow], *, root: str = "", writable: bool = False, problem: str = "") -> str:
    head = "".join(
        f"<th scope='col'>{c}</th>"
        for c in ("gate", "namespace", "phase", "stage", "weight", "verdict", "age", "last look", "reason")
    )
    body_rows = []
    for r in rows:
        link = f"<a href='{_e(_gate_url(root, r))}'>{_e(r.name)}</a>"
        reason = _e(r.reason) if not r.problem else f"<span class='problem'>{_e(r.problem)}</span>"
        body_rows.append(
            f"<tr><th scope='row'>{link}</th><td>{_e(r.namespace)}</td><td>{_e(r.phase)}</td>"
            f"<td class='num'>{r.stage} of {r.stages}</td><td class='num'>{r.weight:g}%</td>"
            f"<td>{badge(r.verdict)}</td><td class='num'>{format_age(r.age_seconds)}</td>"
            f"<td class='num'>{format_age(r.last_look_seconds)}</td><td>{reason}</td></tr>"
        )
    if not body_rows:
        table = "<p class='muted'>No gates found.</p>"
    else:
        table = (
            f"<table aria-describedby='gates-caption'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body_rows)}</tbody></table>"
        )
    notice = f"<p class='notice error' role='alert'>{_e(problem)}</p>" if problem else ""
    counts = _counts(rows)
    body = (
        f"<h1>Gates</h1>{notice}<p id='gates-caption' class='muted'>{_e(counts)}</p>{table}"
        f"<p><a href='{_e(root)}/'>Refresh</a></p>"
    )
    return _page("gatekeeper: gates", body, root=root, writable=writable)


def render_detail(
    d: GateDetail, *, root: str = "", writable: bool = False, notice: str = "", notice_error: bool = False
) -> str:
    r = d.row
    parts = [f"<p><a href='{_e(root)}/'>All gates</a></p>", f"<h1>Gate {_e(r.namespace)}/{_e(r.name)}</h1>"]
    if notice:
        cls = "notice error" if notice_error else "notice"
        parts.append(f"<p class='{cls}' role='status'>{_e(notice)}</p>")
    if d.description:
        parts.append(f"<p>{_e(d.description)}</p>")
    facts = [
        ("phase", _e(r.phase)),
        ("stage", f"{r.stage} of {r.stages}"),
        ("canary weight", f"{r.weight:g}%"),
        ("verdict", badge(r.verdict)),
        ("reason", _e(r.reason) or "—"),
        ("age", format_age(r.age_seconds)),
        ("last look", format_age(r.last_look_seconds) + (" ago" if r.last_look_seconds is not None else "")),
        ("owners", _e(", ".join(d.owners)) or "—"),
        ("approvals", _e(", ".join(d.approvals)) or "—"),
    ]
    if r.problem:
        facts.append(("problem", f"<span class='problem'>{_e(r.problem)}</span>"))
    parts.append("<dl class='facts'>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>")
    if d.escalation:
        items = "".join(
            f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in d.escalation.items() if v not in (None, "")
        )
        parts.append(
            f"<section class='escalation' aria-labelledby='esc'><h2 id='esc'>Escalation</h2><ul>{items}</ul></section>"
        )
    if writable and (r.can_approve or r.can_abort):
        parts.append(_action_forms(root, r))
    parts.append(_signals(d))
    parts.append(_history(d))
    if d.conditions:
        parts.append(_conditions(d))
    if d.spec_yaml:
        parts.append(f"<details><summary>Spec</summary><pre>{_e(d.spec_yaml)}</pre></details>")
    return _page(f"gatekeeper: {r.namespace}/{r.name}", "\n".join(parts), root=root, writable=writable)


def render_message(title: str, message: str, *, root: str = "", writable: bool = False) -> str:
    body = f"<h1>{_e(title)}</h1><p>{_e(message)}</p><p><a href='{_e(root)}/'>All gates</a></p>"
    return _page(f"gatekeeper: {title}", body, root=root, writable=writable)


# --- pieces --------------------------------------------------------------------------------------------------


def _action_forms(root: str, r: GateRow) -> str:
    base = _gate_url(root, r)
    forms = []
    if r.can_approve:
        forms.append(
            f"<form method='post' action='{_e(base)}/approve' aria-label='Approve the current stage'>"
            "<label>Your name<input name='by' autocomplete='username' required></label>"
            "<label>Token<input name='token' type='password' autocomplete='current-password' required></label>"
            "<button class='approve' type='submit'>Approve stage</button></form>"
        )
    if r.can_abort:
        forms.append(
            f"<form method='post' action='{_e(base)}/abort' aria-label='Abort the rollout'>"
            "<label>Your name<input name='by' autocomplete='username' required></label>"
            "<label>Reason<input name='reason' required></label>"
            "<label>Token<input name='token' type='password' autocomplete='current-password' required></label>"
            "<button class='abort' type='submit'>Abort rollout</button></form>"
        )
    return "<section class='actions' aria-label='Operator actions'>" + "".join(forms) + "</section>"


def _signals(d: GateDetail) -> str:
    if not d.signals:
        return "<h2>Evidence</h2><p class='muted'>No look recorded yet.</p>"
    rows = []
    for s in d.signals:
        ev = s.evidence
        effect = "—"
        if ev.get("estimate") is not None or ev.get("upper") is not None:
            effect = f"{_n(ev.get('estimate'))} [{_n(ev.get('lower'))}, {_n(ev.get('upper'))}]"
        e_value = "—" if ev.get("e_value") is None else f"{_n(ev.get('e_value'))} / {_n(ev.get('threshold'))}"
        samples = ev.get("samples") if isinstance(ev.get("samples"), dict) else {}
        sample_text = ", ".join(f"{_e(k)} {_n(v)}" for k, v in samples.items()) or "—"
        dry = " <span class='muted'>(dry run)</span>" if ev.get("dryRun") else ""
        rows.append(
            f"<tr><th scope='row'>{_e(s.name)}{dry}</th><td>{badge(s.verdict)}</td><td class='num'>{e_value}</td>"
            f"<td class='num'>{effect}</td><td class='num'>{_n(ev.get('limit'))}</td><td>{sample_text}</td></tr>"
        )
    head = "".join(
        f"<th scope='col'>{c}</th>"
        for c in ("signal", "verdict", "e-value / threshold", "effect [bounds]", "tolerated", "samples")
    )
    spark = _sparkline(d)
    return (
        "<h2 id='evidence'>Evidence at the last look</h2>"
        f"<table aria-labelledby='evidence'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + spark
    )


def _history(d: GateDetail) -> str:
    if not d.history:
        return ""
    rows = "".join(
        f"<tr><td class='num'>{_ts(h.time)}</td><td class='num'>{h.stage + 1}</td><td class='num'>{h.weight:g}%</td>"
        f"<td>{badge(h.verdict)}</td><td>{_e(h.action or '—')}</td><td>{_e(h.reason)}</td></tr>"
        for h in d.history
    )
    head = "".join(
        f"<th scope='col'>{c}</th>" for c in ("time (UTC)", "stage", "weight", "verdict", "action", "reason")
    )
    return (
        "<h2 id='history'>History (newest first)</h2>"
        f"<table aria-labelledby='history'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def _conditions(d: GateDetail) -> str:
    rows = "".join(
        f"<tr><td>{_e(c.get('type'))}</td><td>{_e(c.get('status'))}</td><td>{_e(c.get('reason'))}</td>"
        f"<td>{_e(c.get('message'))}</td><td>{_e(c.get('last_transition_time'))}</td></tr>"
        for c in d.conditions
    )
    head = "".join(f"<th scope='col'>{c}</th>" for c in ("type", "status", "reason", "message", "since"))
    return (
        "<details><summary>Conditions</summary>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></details>"
    )


def _sparkline(d: GateDetail) -> str:
    """E-value of each signal over the recorded looks (log scale) against its threshold, as inline SVG."""
    looks = list(reversed(d.history))
    series: dict[str, list[float]] = {}
    threshold: dict[str, float] = {}
    for h in looks:
        for name, ev in h.evidence.items():
            v = ev.get("e_value") if isinstance(ev, dict) else None
            if isinstance(v, int | float) and v > 0 and math.isfinite(v):
                series.setdefault(name, []).append(math.log10(v))
                t = ev.get("threshold")
                if isinstance(t, int | float) and t > 0:
                    threshold[name] = math.log10(t)
    series = {k: v for k, v in series.items() if len(v) >= 2}
    if not series:
        return ""
    width, height, pad = 600, 140, 10
    lo = min(min(min(v) for v in series.values()), 0.0)
    hi = max(max(max(v) for v in series.values()), *threshold.values(), 1.0)
    colours = ["#0969da", "#8250df", "#1a7f37", "#b35900", "#57606a"]

    def xy(i: int, n: int, y: float) -> str:
        x = pad + (width - 2 * pad) * (i / max(n - 1, 1))
        yy = height - pad - (height - 2 * pad) * ((y - lo) / (hi - lo or 1))
        return f"{x:.1f},{yy:.1f}"

    lines = []
    for k, (name, vals) in enumerate(series.items()):
        pts = " ".join(xy(i, len(vals), v) for i, v in enumerate(vals))
        lines.append(
            f"<polyline fill='none' stroke='{colours[k % len(colours)]}' stroke-width='2' points='{pts}'>"
            f"<title>{_e(name)} e-value</title></polyline>"
        )
    for name, t in threshold.items():
        y = xy(0, 2, t).split(",")[1]
        lines.append(
            f"<line x1='{pad}' x2='{width - pad}' y1='{y}' y2='{y}' stroke='#cf222e' stroke-dasharray='6 4'>"
            f"<title>{_e(name)} threshold</title></line>"
        )
    legend = " ".join(
        f"<svg width='12' height='12' aria-hidden='true'><rect width='12' height='12' "
        f"fill='{colours[k % len(colours)]}'/></svg> {_e(n)}"
        for k, n in enumerate(series)
    )
    return (
        f"<figure><svg class='spark' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='E-value per look, log scale, against the failure threshold (dashed)'>{''.join(lines)}</svg>"
        f"<figcaption class='muted'>E-value per look (log scale) vs threshold (dashed): {legend}</figcaption></figure>"
    )


# --- formatting ----------------------------------------------------------------------------------------------


def badge(verdict: str) -> str:
    v = verdict if verdict in ("pass", "inconclusive", "nodata", "error", "fail") else "none"
    text = verdict.upper() if verdict else "NOT YET"
    return f"<span class='badge v-{v}'>{_e(text)}</span>"


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def _counts(rows: list[GateRow]) -> str:
    if not rows:
        return "0 gates"
    by: dict[str, int] = {}
    for r in rows:
        by[r.verdict or "not yet judged"] = by.get(r.verdict or "not yet judged", 0) + 1
    return f"{len(rows)} gate(s): " + ", ".join(f"{n} {v}" for v, n in sorted(by.items()))


def _gate_url(root: str, r: GateRow) -> str:
    from urllib.parse import quote

    return f"{root}/gates/{quote(r.namespace, safe='')}/{quote(r.name, safe='')}"


def _plain(key: str, value: Any) -> str:
    """Escalation values for people: times as UTC, lists joined."""
    if (key == "at" or key.endswith("At")) and isinstance(value, int | float):
        return _ts(float(value)) + " UTC"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _n(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return "inf" if math.isinf(x) else f"{x:.4g}"
    return _e(x)


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)
