"""dashboard: HTML pages of the gate list and of one gate, rendered from `gatekeeper.ops.pages` view models.

Pages are plain HTML + one CSS file + one small script (`static/live.js`, same origin, no external fonts), so
they work with the keyboard, screen readers and without network. The script only refreshes the `#live` part of
a page from `?fragment=live` every few seconds (rendered here too); without it the pages still work, and a
Refresh link reloads them. Every value is HTML-escaped here, in one place (`_e`). `templates/layout.html`
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

from gatekeeper.ops.pages import DecisionLink, GateDetail, GateRow

__all__ = [
    "STATIC_DIR",
    "badge",
    "format_age",
    "render_decision",
    "render_detail",
    "render_list",
    "render_live_detail",
    "render_live_list",
    "render_message",
]  # fmt: skip

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
    live = f"<p id='gates-caption' class='muted'>{_e(counts)}</p>{table}"
    body = f"<h1>Gates</h1>{notice}{_live(live, root + '/')}"
    return _page("gatekeeper: gates", body, root=root, writable=writable)


def render_live_list(rows: list[GateRow], *, root: str = "") -> str:
    """The part of the gate list that updates by itself (`#live`)."""
    html_ = render_list(rows, root=root)
    return html_[html_.index("<div id='live'") : html_.index("<!--/live-->")]


def _live(inner: str, src: str) -> str:
    return (
        f"<div id='live' data-src='{_e(src)}'>{inner}</div><!--/live-->"
        "<p class='muted live-note'><span id='updated'>Updates by itself every "
        f"5 s.</span> <a href='{_e(src)}'>Refresh</a></p>"
    )


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
    if d.escalation:
        items = "".join(
            f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in d.escalation.items() if v not in (None, "")
        )
        parts.append(
            f"<section class='escalation' aria-labelledby='esc'><h2 id='esc'>Escalation</h2><ul>{items}</ul></section>"
        )
    if writable and (r.can_approve or r.can_abort):
        parts.append(_action_forms(root, r))
    parts.append(_live(render_live_detail(d, root=root), _gate_url(root, r)))
    if d.spec_yaml:
        parts.append(f"<details><summary>Spec</summary><pre>{_e(d.spec_yaml)}</pre></details>")
    return _page(f"gatekeeper: {r.namespace}/{r.name}", "\n".join(parts), root=root, writable=writable)


def render_live_detail(d: GateDetail, *, root: str = "") -> str:
    """The part of a gate page that updates by itself: where it stands, the evidence, the decisions."""
    r = d.row
    parts = []
    facts = [
        ("phase", _e(r.phase)),
        ("stage", f"{r.stage} of {r.stages}"),
        ("canary weight", f"{r.weight:g}%"),
        ("verdict", badge(r.verdict)),
        ("reason", _e(r.reason) or "—"),
        ("time in stage", format_age(d.in_stage_seconds)),
        ("age", format_age(r.age_seconds)),
        ("last look", format_age(r.last_look_seconds) + (" ago" if r.last_look_seconds is not None else "")),
        ("owners", _e(", ".join(d.owners)) or "—"),
        ("approvals", _e(", ".join(d.approvals)) or "—"),
    ]
    if r.problem:
        facts.append(("problem", f"<span class='problem'>{_e(r.problem)}</span>"))
    parts.append("<dl class='facts'>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>")
    parts.append(_progress(d))
    parts.append(_signals(d))
    parts.append(_signal_cards(d))
    parts.append(_decisions(d, root))
    parts.append(_history(d))
    if d.conditions:
        parts.append(_conditions(d))
    return "\n".join(parts)


def render_decision(namespace: str, name: str, h: Any, *, root: str = "") -> str:
    """A recorded decision without its full report: the history entry as it was recorded."""
    base = f"{root}/gates/{_q(namespace)}/{_q(name)}"
    rows = "".join(
        f"<tr><th scope='row'>{_e(sig)}</th><td>{badge(str(v))}</td><td>{_e(_evidence_text(h.evidence.get(sig)))}</td></tr>"
        for sig, v in h.signals.items()
    )
    body = (
        f"<p><a href='{_e(base)}'>Back to {_e(namespace)}/{_e(name)}</a></p>"
        f"<h1>Decision: {_e(h.action)} at stage {h.stage + 1} ({h.weight:g}%)</h1>"
        f"<p>{_ts(h.time)} UTC · {badge(h.verdict)} · {_e(h.reason)}</p>"
        "<p class='notice'>No evidence record is kept for this decision (only the newest decisions are kept, and "
        "a controller stopped right after deciding may not have stored one): this is its entry in the Gate's "
        "history.</p>"
        "<table><thead><tr><th scope='col'>signal</th><th scope='col'>verdict</th>"
        f"<th scope='col'>recorded evidence</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return _page(f"gatekeeper: decision of {namespace}/{name}", body, root=root, writable=False)


def _evidence_text(ev: Any) -> str:
    if not isinstance(ev, dict):
        return "—"
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in ev.items())


def _q(x: str) -> str:
    from urllib.parse import quote

    return quote(x, safe="")


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
    return (
        "<h2 id='evidence'>Evidence at the last look</h2>"
        f"<table aria-labelledby='evidence'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _progress(d: GateDetail) -> str:
    """The stages as a strip: done, current (weight, time in stage, rollback window), pending."""
    if not d.stages:
        return ""
    items = []
    for st in d.stages:
        state = d.state_of(st)
        here = state == "current"
        window = st.window_detail
        if here and d.window_closed:
            window = "closed: forward fix only"
        elif here and window.startswith("closes") and d.side_effects:
            window += f" ({d.side_effects} so far)"
        extra = f"<span class='st-time'>in stage {format_age(d.in_stage_seconds)}</span>" if here else ""
        label = {"done": "done", "current": "current stage", "pending": "not yet"}[state]
        current = " aria-current='step'" if here else ""
        items.append(
            f"<li class='stage st-{state}'{current}>"
            f"<span class='st-name'>Stage {st.index + 1}</span><span class='st-weight'>{st.weight:g}%</span>"
            f"<span class='st-state'>{label}</span>{extra}"
            f"<span class='st-window'>rollback: {_e(window)}</span></li>"
        )
    return f"<h2 id='stages'>Stages</h2><ol class='progress' aria-labelledby='stages'>{''.join(items)}</ol>"


def _signal_cards(d: GateDetail) -> str:
    """Per signal: its e-value per look against its threshold (log scale), and the canary/baseline rates
    (or, where the record has no per-arm rates, the effect with its bounds against the tolerated limit)."""
    looks = list(reversed(d.history))
    names = [s.name for s in d.signals] or sorted({n for h in looks for n in h.evidence})
    cards = []
    for name in names:
        evs = [h.evidence.get(name) if isinstance(h.evidence.get(name), dict) else {} for h in looks]
        e_vals = [_pos(ev.get("e_value")) for ev in evs]
        thr = next((_pos(ev.get("threshold")) for ev in reversed(evs) if _pos(ev.get("threshold"))), None)
        charts = []
        if sum(v is not None for v in e_vals) >= 1:
            charts.append(_chart(
                {"e-value": [math.log10(v) if v else None for v in e_vals]},
                ref=math.log10(thr) if thr else None, ref_label=f"threshold {_n(thr)}",
                title=f"{name}: e-value per look (log scale)", fmt=lambda y: _n(10**y),
            ))  # fmt: skip
        else:
            charts.append("<p class='muted'>No e-value recorded: this signal is judged another way "
                          "(threshold, health or scoring); see its reason above.</p>")  # fmt: skip
        rates = {arm: [_rate(ev, arm) for ev in evs] for arm in ("canary", "baseline")}
        if any(v is not None for vals in rates.values() for v in vals):
            charts.append(_chart(rates, ref=None, ref_label="", title=f"{name}: canary and baseline rates",
                                 fmt=lambda y: f"{100 * y:.3g}%"))  # fmt: skip
        else:
            est = [ev.get("estimate") if _finite(ev.get("estimate")) else None for ev in evs]
            limit = next((ev.get("limit") for ev in reversed(evs) if _finite(ev.get("limit"))), None)
            if any(v is not None for v in est):
                series = {"effect": est, "upper bound": [ev.get("upper") if _finite(ev.get("upper")) else None
                                                          for ev in evs]}  # fmt: skip
                charts.append(_chart(series, ref=limit, ref_label=f"tolerated {_n(limit)}",
                                     title=f"{name}: canary vs baseline effect per look", fmt=_n))  # fmt: skip
        verdict = next((s.verdict for s in d.signals if s.name == name), "")
        cards.append(
            f"<section class='card' aria-label='{_e(name)}'><h3>{_e(name)} {badge(verdict)}</h3>"
            + "".join(charts)
            + "</section>"
        )
    if not cards:
        return ""
    return "<h2 id='trends'>Evidence over the looks</h2><div class='cards'>" + "".join(cards) + "</div>"


_ARM_COLOURS = {"e-value": "#0550ae", "canary": "#b35900", "baseline": "#0550ae", "effect": "#b35900",
                "upper bound": "#57606a"}  # fmt: skip


def _chart(
    series: dict[str, list[float | None]], *, ref: float | None, ref_label: str, title: str, fmt: Any
) -> str:
    """A small line chart with its scale written on it (top and bottom values, the reference line labelled)."""
    values = [v for vals in series.values() for v in vals if v is not None]
    if ref is not None:
        values.append(ref)
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    width, height, left, pad = 320, 110, 56, 8

    def y_of(v: float) -> float:
        return height - pad - (height - 2 * pad) * ((v - lo) / (hi - lo))

    n = max(len(v) for v in series.values())
    parts = [
        f"<text x='{left - 4}' y='{pad + 4}' text-anchor='end' class='tick'>{_e(fmt(hi))}</text>",
        f"<text x='{left - 4}' y='{height - pad}' text-anchor='end' class='tick'>{_e(fmt(lo))}</text>",
        f"<line x1='{left}' x2='{left}' y1='{pad}' y2='{height - pad}' class='axis'/>",
    ]
    if ref is not None:
        y = y_of(ref)
        parts.append(f"<line x1='{left}' x2='{width}' y1='{y:.1f}' y2='{y:.1f}' class='ref'/>")
        parts.append(
            f"<text x='{width - 2}' y='{y - 3:.1f}' text-anchor='end' class='tick'>{_e(ref_label)}</text>"
        )
    legend = []
    for label, vals in series.items():
        colour = _ARM_COLOURS.get(label, "#24292f")
        pts = [
            f"{left + (width - left - pad) * (i / max(n - 1, 1)):.1f},{y_of(v):.1f}"
            for i, v in enumerate(vals) if v is not None
        ]  # fmt: skip
        if len(pts) == 1:
            x, y = pts[0].split(",")
            parts.append(f"<circle cx='{x}' cy='{y}' r='3' fill='{colour}'/>")
        elif pts:
            parts.append(
                f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{' '.join(pts)}'/>"
            )
        last = next((v for v in reversed(vals) if v is not None), None)
        legend.append(
            f"<span class='key'><svg width='12' height='12' aria-hidden='true'><rect width='12' height='12' "
            f"fill='{colour}'/></svg> {_e(label)} {_e(fmt(last)) if last is not None else '—'}</span>"
        )
    return (
        f"<figure class='chart'><svg class='spark' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='{_e(title)}'>{''.join(parts)}</svg>"
        f"<figcaption>{_e(title)}: {' '.join(legend)}</figcaption></figure>"
    )


def _pos(x: Any) -> float | None:
    return float(x) if _finite(x) and x > 0 else None


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _rate(ev: dict[str, Any], arm: str) -> float | None:
    rates = ev.get("rates")
    if isinstance(rates, dict) and _finite(rates.get(arm)):
        return float(rates[arm])
    events, samples = ev.get("events"), ev.get("samples")
    if isinstance(events, dict) and isinstance(samples, dict):
        e, n = events.get(arm), samples.get(arm)
        if _finite(e) and _finite(n) and n > 0:
            return float(e) / float(n)
    return None


_DECISIONS = ("advance", "revert", "halt", "promote", "await-approval", "abort")  # looks that acted


def _decisions(d: GateDetail, root: str) -> str:
    """Every decision (a look that acted), newest first, each linked to its report: the recorded ones when
    the repository keeps records, else those the bounded history still names."""
    if d.decisions is not None:
        acted = list(d.decisions)
    else:
        acted = [
            DecisionLink(h.time, h.action, h.stage, h.weight, h.verdict)
            for h in d.history
            if h.action in _DECISIONS
        ]
    if not acted:
        return (
            "<h2 id='decisions'>Decisions</h2><p class='muted'>No decision yet: no look has acted so far.</p>"
        )
    base = _gate_url(root, d.row)
    items = "".join(
        f"<li><a href='{_e(base)}/decisions/{h.time:.3f}'>{'#' + str(h.seq) + ' ' if h.seq else ''}{_e(h.action)} "
        f"(stage {h.stage + 1}, {h.weight:g}%)</a> <span class='muted'>{_ts(h.time)} UTC</span> {badge(h.verdict)}</li>"
        for h in acted
    )
    return f"<h2 id='decisions'>Decisions</h2><ul class='decisions'>{items}</ul>"


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
