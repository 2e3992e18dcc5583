"""The evidence report: one self-contained HTML file explaining a verdict (plotly, its JS inlined once).

Per signal: canary vs baseline, the e-value path against its threshold (log scale), the confidence sequence
of the effect against the tolerated limit, the queries behind every number, and the reason. With a replay
`timeline`, every chart runs over the looks and a stage/verdict timeline leads the page; a single judgement
(`gatekeeper evaluate --report`) shows the final interval and the e-value path of its window.

Opening the file needs no network: the plotly bundle is embedded (`include_plotlyjs=True` on the first
figure), no fonts or MathJax are fetched. Every text from a spec or a query is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from gatekeeper.judge import Judgement
from gatekeeper.spec.evidence import CountEvidence, KayentaEvidence, ThresholdEvidence
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.outcome import SignalOutcome

__all__ = ["VERDICT_COLOURS", "page", "render_report", "write_report"]

#: Verdict colours with at least 4.5:1 contrast against white text (WCAG AA), shared with the dashboard.
VERDICT_COLOURS = {
    "pass": "#1a7f37",
    "inconclusive": "#8a5a00",
    "nodata": "#6639ba",
    "error": "#b35900",
    "fail": "#cf222e",
}
_ARM_COLOURS = {"canary": "#cf222e", "baseline": "#0969da"}
_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["sendDataToCloud"]}


def write_report(
    path: str | Path, *, gate: GateSpec, judgement: Judgement, timeline: Any | None = None
) -> Path:
    """Write the report for `judgement` (and a replay's `timeline`, a `gatekeeper.ops.replay.Replay`)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(gate=gate, judgement=judgement, timeline=timeline), encoding="utf-8")
    return target


def render_report(
    *,
    gate: GateSpec | None,
    judgement: Judgement,
    timeline: Any | None = None,
    lead: str = "",
    title: str = "",
) -> str:
    """The report page. ``gate``: the spec the judgement was made with (None: unknown, e.g. a recorded
    decision whose spec was not kept); ``lead``: HTML placed before the facts (a recorded decision's own)."""
    figures = _Figures()
    looks = list(timeline.looks) if timeline is not None else []
    parts = [lead, _header(gate, judgement, timeline)] if lead else [_header(gate, judgement, timeline)]
    if looks:
        parts.append('<section aria-labelledby="timeline"><h2 id="timeline">Stage and verdict timeline</h2>')
        parts.append(figures.add(_timeline_figure(looks), "fig-timeline"))
        parts.append(_looks_table(looks))
        parts.append("</section>")
    for i, s in enumerate(judgement.signals):
        parts.append(_signal_section(i, s, judgement, gate, looks, figures))
    body = "\n".join(parts)
    title = title or f"gatekeeper evidence: {judgement.gate} — {judgement.verdict.value}"
    return page(title, body)


def page(title: str, body: str) -> str:
    """A whole report page around ``body`` (HTML, already escaped)."""
    return _PAGE.format(title=_e(title), css=_CSS, body=body)


class _Figures:
    """Serialises figures; the first one carries the plotly bundle, the rest reuse it."""

    def __init__(self) -> None:
        self._first = True

    def add(self, fig: go.Figure, div_id: str) -> str:
        fig.update_layout(
            template="plotly_white",
            height=330,
            margin={"l": 60, "r": 20, "t": 40, "b": 40},
            legend={"orientation": "h", "y": -0.2},
            font={"family": "system-ui, sans-serif", "size": 12},
        )
        out = fig.to_html(
            full_html=False, include_plotlyjs=self._first, config=_CONFIG, div_id=div_id, validate=True
        )
        self._first = False
        return f'<div class="figure">{out}</div>'


# --- header and tables ---------------------------------------------------------------------------------------


def _header(gate: GateSpec | None, j: Judgement, timeline: Any | None) -> str:
    w = j.window
    rows = [
        ("verdict", _badge(j.verdict.value)),
        ("reason", _e(j.reason)),
        ("window", f"{_ts(w.get('start'))} → {_ts(w.get('end'))} (step {w.get('step', 0):g}s)"),
        ("stage", f"{j.stage + 1}{_of(gate)} (canary weight {_num(j.weight)}%)"),
        (
            "mode",
            _e(f"{j.mode}" + (f", alpha {gate.alpha:g} over {len(gate.signals)} signals" if gate else "")),
        ),
    ]
    if j.owners:
        rows.append(("owners", _e(", ".join(j.owners))))
    if j.critical_failure:
        rows.append(("critical", "a critical signal failed: the gate may act before the stage minimum"))
    if timeline is not None:
        final = timeline.final
        rows.append(
            (
                "replay",
                _e(
                    f"{len(timeline.looks)} looks every {timeline.step:g}s from {_ts(timeline.start)}; "
                    f"final phase {final.phase.value} at stage {final.stage + 1}; actions by {timeline.policy}"
                ),
            )
        )
        rows.extend(("note", _e(n)) for n in timeline.notes)
    if j.side_effects:
        se = ", ".join(
            f"{k}: {v.get('count') if isinstance(v, dict) else v}" for k, v in j.side_effects.items()
        )
        rows.append(("canary side effects", _e(se)))
    table = "".join(f"<tr><th scope='row'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    desc = f"<p>{_e(gate.description)}</p>" if gate is not None and gate.description else ""
    return (
        f"<header><h1>Gate <code>{_e(j.gate)}</code></h1>{desc}<table class='facts'>{table}</table></header>"
    )


def _of(gate: GateSpec | None) -> str:
    return f" of {len(gate.stages)}" if gate is not None else ""


def _looks_table(looks: list[Any]) -> str:
    rows = []
    for lk in looks:
        acts = lk.action or "—"
        rows.append(
            f"<tr><td>{_ts(lk.time)}</td><td>{lk.stage + 1} ({_num(lk.weight)}%)</td>"
            f"<td>{_badge(lk.verdict.value)}</td><td>{_e(acts)}</td><td>{_e(lk.phase)}</td>"
            f"<td>{_e(lk.decision or lk.reason)}</td></tr>"
        )
    head = "<tr><th>time (UTC)</th><th>stage</th><th>verdict</th><th>action</th><th>phase</th><th>reason</th></tr>"
    return (
        "<details><summary>Every look</summary>"
        f"<table class='looks'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


def _signal_section(
    i: int, s: SignalOutcome, j: Judgement, gate: GateSpec | None, looks: list[Any], figures: _Figures
) -> str:
    tags = " (critical)" if s.critical else ""
    tags += " (dry run: shown, not voting)" if s.dry_run else ""
    spec = next((x for x in gate.signals if x.name == s.name), None) if gate is not None else None
    parts = [
        f'<section aria-labelledby="sig-{i}"><h2 id="sig-{i}">Signal <code>{_e(s.name)}</code>{_e(tags)} '
        f"{_badge(s.verdict.value)}</h2>",
        f"<p class='reason'>{_e(s.reason)}</p>",
    ]
    if spec is not None and getattr(spec, "description", ""):
        parts.append(f"<p class='muted'>{_e(spec.description)}</p>")
    parts.append(_numbers_table(s))
    series = [_signal_at(lk.judgement, s.name) for lk in looks]
    points = [(lk.time, x) for lk, x in zip(looks, series, strict=True) if x is not None]
    parts.append('<div class="grid">')
    parts.append(_slot(figures, _arms_figure(s, points), f"fig-{i}-arms"))
    e_fig = _evalue_figure(s, j, points)
    if e_fig is not None:
        parts.append(_slot(figures, e_fig, f"fig-{i}-evalue"))
    if s.effect is not None:
        parts.append(_slot(figures, _effect_figure(s, points), f"fig-{i}-effect"))
    parts.append("</div>")
    parts.append(_queries(s))
    evidence = {k: v for k, v in _evidence(s).items() if k not in _DRAWN}
    if evidence:
        parts.append(
            f"<details><summary>Evidence (raw)</summary><pre>{_e(json.dumps(_clean(evidence), indent=2))}</pre></details>"
        )
    parts.append("</section>")
    return "\n".join(parts)


_DRAWN = frozenset({"path", "path_t", "series", "values_t"})  # drawn as charts, not dumped as raw evidence


def _slot(figures: _Figures, fig: go.Figure | str, div_id: str) -> str:
    """A chart, or the sentence that says why there is none: a chart is never drawn empty."""
    if isinstance(fig, str):
        return f"<div class='figure no-chart' id='{_e(div_id)}'><p class='muted'>{_e(fig)}</p></div>"
    return figures.add(fig, div_id)


def _numbers_table(s: SignalOutcome) -> str:
    def arm(a: dict[str, Any]) -> str:
        if not a:
            return "—"
        return _e(", ".join(f"{k} {_num(v)}" for k, v in a.items()))

    rows = [("canary", arm(s.canary)), ("baseline", arm(s.baseline))]
    if s.effect is not None:
        e = s.effect
        rows.append(
            (
                e.measure,
                f"{_num(e.estimate)} [{_num(e.lower)}, {_num(e.upper)}], tolerated {_num(e.limit)}",
            )
        )
    ev = s.evidence
    if isinstance(ev, CountEvidence) and ev.e_value is not None:
        rows.append(("e-value", f"{_num(ev.e_value)} (fails at {_num(ev.threshold)})"))
    if isinstance(ev, CountEvidence) and ev.p_value is not None:
        rows.append(("p-value", f"{_num(ev.p_value)} (fails below {_num(ev.threshold)})"))
    elif isinstance(ev, KayentaEvidence):
        rows.append(("p-value", f"{_num(ev.p_value)} (fails below {_num(None)})"))
    body = "".join(f"<tr><th scope='row'>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='facts'>{body}</table>"


def _queries(s: SignalOutcome) -> str:
    if not s.queries:
        return "<p class='muted'>No queries (the signal did not reach its source).</p>"
    grouped: dict[str, list[str]] = {}  # one combined query can stand behind several numbers: show it once
    for k, q in s.queries.items():
        grouped.setdefault(q, []).append(k)
    items = "".join(
        f"<li><span class='qkey'>{_e(', '.join(keys))}</span><pre><code>{_e(q)}</code></pre></li>"
        for q, keys in grouped.items()
    )
    return f"<details open><summary>Queries behind these numbers</summary><ul class='queries'>{items}</ul></details>"


# --- figures -------------------------------------------------------------------------------------------------


def _timeline_figure(looks: list[Any]) -> go.Figure:
    fig = go.Figure()
    x = [_dt(lk.time) for lk in looks]
    fig.add_trace(
        go.Scatter(
            x=x, y=[lk.weight for lk in looks], mode="lines", line={"shape": "hv", "color": "#57606a"},
            name="canary weight (%)", hoverinfo="skip",
        )
    )  # fmt: skip
    for verdict, colour in VERDICT_COLOURS.items():
        sel = [lk for lk in looks if lk.verdict.value == verdict]
        if sel:
            fig.add_trace(
                go.Scatter(
                    x=[_dt(lk.time) for lk in sel], y=[lk.weight for lk in sel], mode="markers", name=verdict,
                    marker={"color": colour, "size": 9}, text=[lk.reason for lk in sel],
                    hovertemplate="%{x}<br>" + verdict + ": %{text}<extra></extra>",
                )
            )  # fmt: skip
    for lk in looks:
        if lk.action not in ("", "hold"):
            fig.add_annotation(
                x=_dt(lk.time), y=lk.weight, text=lk.action, showarrow=True, arrowhead=2, ay=-30
            )
    fig.update_layout(title="Stage weight and verdict at every look", yaxis_title="canary weight (%)")
    return fig


def _arms_figure(s: SignalOutcome, points: list[tuple[float, SignalOutcome]]) -> go.Figure | str:
    """Canary against baseline: per look (a replay), per step of the window (the counts in the evidence),
    the window's totals, or the reason there are no numbers."""
    key, label = _arm_key(s)
    if points and key:
        fig = go.Figure()
        for arm, colour in _ARM_COLOURS.items():
            fig.add_trace(
                go.Scatter(
                    x=[_dt(t) for t, p in points], y=[_finite((getattr(p, arm) or {}).get(key)) for _, p in points],
                    mode="lines+markers", name=arm, line={"color": colour},
                )
            )  # fmt: skip
        if _drawn(fig):
            fig.update_layout(title=f"Canary vs baseline {label} (stage so far)", yaxis_title=label)
            return fig
    steps = _series_figure(s) or _values_figure(s) or _ages_figure(s)
    if steps is not None:
        return steps
    values = [_finite((getattr(s, arm) or {}).get(key)) for arm in _ARM_COLOURS] if key else []
    if any(v is not None for v in values):
        fig = go.Figure(
            go.Bar(x=list(_ARM_COLOURS), y=values, marker_color=list(_ARM_COLOURS.values()), name=label)
        )
        fig.update_layout(title=f"Canary vs baseline: {label} over the window", yaxis_title=label)
        return fig
    return f"No canary/baseline chart: {_no_numbers(s)}"


def _series_figure(s: SignalOutcome) -> go.Figure | None:
    """Cumulative bad-event rate per arm at every step of the window, from the per-step counts."""
    series = s.evidence.series if isinstance(s.evidence, CountEvidence) else None
    if not isinstance(series, dict) or not series.get("t"):
        return None
    unit = str(series.get("unit", "requests"))
    xs = [_dt(t) for t in series["t"]]
    fig = go.Figure()
    for arm, colour in _ARM_COLOURS.items():
        counts = series.get(arm) or {}
        events, exposure = counts.get("events") or [], counts.get(unit) or []
        if len(events) != len(xs) or len(exposure) != len(xs):
            continue
        e_sum, n_sum, ys, text = 0.0, 0.0, [], []
        for e, n in zip(events, exposure, strict=True):
            e_sum, n_sum = e_sum + e, n_sum + n
            ys.append(e_sum / n_sum if n_sum > 0 else None)
            text.append(f"{e_sum:g} of {n_sum:g} {unit}")
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode=_mode(len(xs)), name=arm, line={"color": colour}, text=text,
                       hovertemplate="%{x}<br>" + arm + ": %{y:.4g} (%{text})<extra></extra>")
        )  # fmt: skip
    if not _drawn(fig):
        return None
    if len(xs) == 1:  # one step: a range around it, not a millisecond axis
        fig.update_xaxes(range=_span(xs, step=60.0))
    every = f", {series.get('bucket')} steps per point" if series.get("bucket", 1) > 1 else ""
    fig.update_layout(
        title=f"Canary vs baseline: cumulative rate per {unit[:-1] if unit.endswith('s') else unit}{every}",
        yaxis_title=f"bad events per {unit[:-1] if unit.endswith('s') else unit}",
    )
    return fig


def _values_figure(s: SignalOutcome) -> go.Figure | None:
    """A threshold signal's measurements per step against its bound."""
    ev = s.evidence
    if not isinstance(ev, ThresholdEvidence):
        return None
    values = [_finite(v) for v in ev.values]
    times = list(ev.values_t)
    if not any(v is not None for v in values) or len(times) != len(values):
        return None
    fig = go.Figure(go.Scatter(x=[_dt(t) for t in times], y=values, mode=_mode(len(values)), name="canary",
                               line={"color": _ARM_COLOURS["canary"]}))  # fmt: skip
    base = _finite((s.baseline or {}).get("value"))
    if base is not None:
        ends = _span([_dt(times[0]), _dt(times[-1])], step=60.0)
        fig.add_trace(go.Scatter(x=ends, y=[base, base], mode="lines",
                                 name="baseline (at the window end)", line={"color": _ARM_COLOURS["baseline"]}))  # fmt: skip
    fig.update_layout(title="Canary value per step", yaxis_title="value")
    return fig


def _mode(points: int) -> str:
    """Lines, with markers while there are few points (a single point has no line to draw)."""
    return "lines+markers" if points <= 40 else "lines"


def _span(xs: list[dt.datetime], *, step: float) -> list[dt.datetime]:
    """The time range for reference lines; a single instant is widened by half a step each way."""
    if xs and xs[0] == xs[-1]:
        half = dt.timedelta(seconds=max(step, 1.0) / 2)
        return [xs[0] - half, xs[0] + half]
    return xs


def _drawn(fig: go.Figure) -> bool:
    """True when some trace of ``fig`` has a finite y value to draw."""
    return any(any(_finite(y) is not None for y in (t.y or ())) for t in fig.data)


def _ages_figure(s: SignalOutcome) -> go.Figure | None:
    """A health signal: the age of each required series' newest sample, per arm (markers: 0 s is data)."""
    arms = {arm: (getattr(s, arm) or {}).get("age_seconds") for arm in _ARM_COLOURS}
    if not any(isinstance(a, dict) and a for a in arms.values()):
        return None
    fig = go.Figure()
    for arm, colour in _ARM_COLOURS.items():
        ages = arms[arm] if isinstance(arms[arm], dict) else {}
        fig.add_trace(go.Scatter(x=list(ages), y=[_finite(v) for v in ages.values()], mode="markers",
                                 name=arm, marker={"color": colour, "size": 11}))  # fmt: skip
    if not _drawn(fig):
        return None
    fig.update_layout(title="Age of each required series' newest sample", yaxis_title="seconds")
    fig.update_yaxes(rangemode="tozero")
    return fig


def _no_numbers(s: SignalOutcome) -> str:
    """Why a signal has nothing to draw, in words (plain text: the caller escapes it)."""
    if s.verdict.value in ("nodata", "error") or not (s.canary or s.baseline):
        return s.reason or "the signal produced no numbers"
    shown = "; ".join(
        f"{arm}: {_plain(getattr(s, arm))}" for arm in ("canary", "baseline") if getattr(s, arm)
    )
    return f"this {s.kind} signal has no rates or values to compare ({shown})"


def _plain(x: Any) -> str:
    if isinstance(x, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in x.items())
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _evalue_figure(
    s: SignalOutcome, j: Judgement, points: list[tuple[float, SignalOutcome]]
) -> go.Figure | None:
    seq = s.evidence.sequential if isinstance(s.evidence, CountEvidence) else None
    path = [_finite(x) for x in seq.path] if seq is not None else []
    threshold = _finite(seq.threshold) if seq is not None else None
    if not path and not any(_e_value(p) is not None for _, p in points):
        return None
    fig = go.Figure()
    xs: list[dt.datetime] = []
    if path:
        times = list(seq.path_t) if seq is not None else []
        if len(times) == len(path):
            xs = [_dt(t) for t in times]
        else:
            end, step = j.window.get("end", 0.0), j.window.get("step", 60.0)
            xs = [_dt(end - step * (len(path) - 1 - k)) for k in range(len(path))]
        fig.add_trace(
            go.Scatter(
                x=xs, y=[_positive(v) for v in path], mode=_mode(len(xs)), name="e-value per step (last look)"
            )
        )
    if points:
        fig.add_trace(
            go.Scatter(
                x=[_dt(t) for t, _ in points], y=[_positive(_e_value(p)) for _, p in points],
                mode="markers", name="e-value at each look", marker={"color": "#57606a"},
            )
        )  # fmt: skip
    # reference lines as traces: shapes on a log axis take log10 coordinates, traces take data values
    span = _span(sorted([*xs, *(_dt(t) for t, _ in points)]), step=j.window.get("step", 60.0))
    if threshold and span:
        fig.add_trace(go.Scatter(x=[span[0], span[-1]], y=[threshold, threshold], mode="lines",
                                 name=f"threshold {threshold:.3g} (= 1/alpha): fail",
                                 line={"color": VERDICT_COLOURS["fail"], "dash": "dash"}))  # fmt: skip
    if span:
        fig.add_trace(go.Scatter(x=[span[0], span[-1]], y=[1.0, 1.0], mode="lines", name="1 (no evidence)",
                                 line={"color": "#8c959f", "dash": "dot"}))  # fmt: skip
    fig.update_yaxes(type="log", title="e-value (log scale)")
    fig.update_layout(title="E-value vs its threshold")
    return fig


def _effect_figure(s: SignalOutcome, points: list[tuple[float, SignalOutcome]]) -> go.Figure | str:
    fig = go.Figure()
    e = s.effect
    assert e is not None
    if not points and all(_finite(x) is None for x in (e.estimate, e.lower, e.upper)):
        why = _no_numbers(s) if s.verdict.value in ("nodata", "error") else "no estimate and no bound yet"
        return f"No {e.measure} to draw: {why}"
    with_effect = [(t, p.effect) for t, p in points if p.effect is not None]
    if with_effect:
        xs = [_dt(t) for t, _ in with_effect]
        up = [_finite(x.upper) for _, x in with_effect]
        lo = [_finite(x.lower) for _, x in with_effect]
        fig.add_trace(go.Scatter(x=xs, y=up, mode="lines", name="upper bound", line={"color": "#0969da"}))
        fig.add_trace(go.Scatter(x=xs, y=lo, mode="lines", name="lower bound", line={"color": "#0969da"},
                                 fill="tonexty", fillcolor="rgba(9,105,218,0.15)"))  # fmt: skip
        fig.add_trace(go.Scatter(x=xs, y=[_finite(x.estimate) for _, x in with_effect], mode="lines+markers",
                                 name="estimate", line={"color": "#24292f"}))  # fmt: skip
        fig.update_layout(title=f"Confidence sequence: {e.measure}")
    else:
        est = _finite(e.estimate)
        err_hi = None if est is None or _finite(e.upper) is None else _finite(e.upper) - est
        err_lo = None if est is None or _finite(e.lower) is None else est - _finite(e.lower)
        if est is not None:
            fig.add_trace(
                go.Scatter(
                    x=[e.measure], y=[est], mode="markers", name="estimate with bounds", marker={"size": 12},
                    error_y={"type": "data", "array": [err_hi], "arrayminus": [err_lo], "symmetric": False},
                )
            )  # fmt: skip
        else:  # no estimate (e.g. a baseline without bad events): the bounds alone
            bounds = [(k, _finite(v)) for k, v in (("lower bound", e.lower), ("upper bound", e.upper))]
            fig.add_trace(go.Scatter(x=[k for k, v in bounds if v is not None], y=[v for _, v in bounds if v is not None],
                                     mode="markers", name="bounds (no estimate)", marker={"size": 12}))  # fmt: skip
        fig.update_layout(title=f"{e.measure}: estimate and bounds")
    if _finite(e.limit) is not None:
        fig.add_hline(y=e.limit, line={"color": VERDICT_COLOURS["fail"], "dash": "dash"},
                      annotation_text=f"tolerated {e.limit:.3g}")  # fmt: skip
    fig.update_yaxes(title=e.measure)
    return fig


# --- helpers -------------------------------------------------------------------------------------------------


def _signal_at(j: Judgement, name: str) -> SignalOutcome | None:
    return next((s for s in j.signals if s.name == name), None)


def _arm_key(s: SignalOutcome) -> tuple[str | None, str]:
    for a in (s.canary, s.baseline):
        if a and a.get("rate") is not None:
            return "rate", "bad-event rate"
        if a and "value" in a:
            return "value", "value"
    return None, ""


def _evidence(s: SignalOutcome) -> dict[str, Any]:
    return {} if s.evidence is None else s.evidence.to_dict()


def _e_value(s: SignalOutcome) -> float | None:
    return s.evidence.e_value if isinstance(s.evidence, CountEvidence) else None


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _positive(x: Any) -> float | None:
    v = _finite(x)
    return v if v is not None and v > 0 else None


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def _num(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return "inf" if math.isinf(x) else ("nan" if math.isnan(x) else f"{x:.4g}")
    return _e(str(x))


def _badge(verdict: str) -> str:
    return f"<span class='badge v-{_e(verdict)}'>{_e(verdict.upper())}</span>"


def _dt(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC)


def _ts(t: Any) -> str:
    if not isinstance(t, int | float):
        return "?"
    return _dt(float(t)).strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


_BADGES = "".join(f".v-{v}{{background:{c}}}" for v, c in VERDICT_COLOURS.items())
_CSS = (
    "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#24292f}"
    "h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-top:1px solid #d0d7de;padding-top:1rem}"
    "table{border-collapse:collapse}th,td{text-align:left;padding:.25rem .6rem;vertical-align:top}"
    "table.facts th{color:#57606a;font-weight:600}table.looks td,table.looks th{border-bottom:1px solid #eaeef2}"
    ".badge{color:#fff;border-radius:.8rem;padding:.1rem .6rem;font-weight:700;font-size:.8rem}"
    + _BADGES
    + ""
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:1rem}.figure{min-width:0}"
    "pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;white-space:pre-wrap}ul.queries{list-style:none;padding:0}"
    ".qkey{font-weight:600;color:#57606a}.muted{color:#57606a}.reason{font-size:1.05rem}"
)
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{css}</style></head>
<body><main>
{body}
</main><footer class="muted"><p>Generated by gatekeeper. Self-contained: no network is needed to open it.</p></footer>
</body></html>
"""
