"""Rendering helpers shared by commands: judgement tables and one-paragraph errors."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

_COLOURS = {
    "pass": "green",
    "fail": "bold red",
    "inconclusive": "yellow",
    "nodata": "magenta",
    "error": "red",
}

out = Console()
err = Console(stderr=True)


def verdict_text(v: str) -> str:
    return f"[{_COLOURS.get(v, 'white')}]{v.upper()}[/]"


def fail(message: str, *, code: int = 2) -> None:
    """Print one paragraph to stderr and exit with `code` (2: bad input or usage)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_default, allow_nan=False) + "\n")


def _default(o: Any) -> Any:
    if isinstance(o, float):
        return None
    return str(o)


def sanitize(obj: Any) -> Any:
    """JSON has no NaN/Inf: write them as strings so nothing is lost and the output stays valid."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    if isinstance(obj, dict):
        return {k: sanitize(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [sanitize(v) for v in obj]
    return obj


WIDE_COLUMNS = 140  # a terminal at least this wide gets the wide table unless told otherwise


def judgement_table(j: dict[str, Any], *, wide: bool | None = None, now: float | None = None) -> None:
    """The judgement as a table: compact (readable at 80 columns: signal, verdict, effect, then one line per
    signal with its reason and what it still needs) or wide (every column, reasons in the table)."""
    import time

    from gatekeeper.cli.humanize import duration, needs, when

    now = time.time() if now is None else now
    wide = out.size.width >= WIDE_COLUMNS if wide is None else wide
    w = j["window"]
    span = max(float(w["end"]) - float(w["start"]), 0.0)
    title = f"gate [bold]{j['gate']}[/] · stage {j['stage'] + 1} ({j['weight']:g}%) · {verdict_text(j['verdict'])}"
    t = Table(title=title, title_justify="left", expand=False, pad_edge=False, box=None, header_style="bold")
    cols = ["SIGNAL", "VERDICT", "CANARY", "BASELINE", "EFFECT [BOUNDS]", "REASON"] if wide else [
        "SIGNAL", "VERDICT", "EFFECT [BOUNDS]", "NEEDS"]  # fmt: skip
    for col in cols:
        t.add_column(col, overflow="fold", no_wrap=col in ("VERDICT",))
    notes: list[tuple[str, str]] = []
    for s in j["signals"]:
        name = s["name"] + (" !" if s["critical"] else "") + (" [dim](dry)[/]" if s["dry_run"] else "")
        need = needs(s, window_seconds=span)
        if wide:
            reason = s["reason"] + (f"; {need}" if need else "")
            t.add_row(name, verdict_text(s["verdict"]), _arm(s["canary"]), _arm(s["baseline"]),
                      _effect(s.get("effect")), reason)  # fmt: skip
        else:
            t.add_row(name, verdict_text(s["verdict"]), _effect(s.get("effect")), _short_need(need))
            notes.append((s["name"], s["reason"]))
    out.print(t)
    for name, reason in notes:
        out.print(f"  [bold]{name}[/]: {reason}", highlight=False)
    out.print(
        f"window {when(float(w['start']), now=now)} → {when(float(w['end']), now=now)} "
        f"({duration(span)}, step {w['step']:g}s)",
        highlight=False,
    )
    out.print(j["reason"], highlight=False)
    if any(s["critical"] for s in j["signals"]):
        out.print("[dim]! critical: a failure fails the gate whatever the others say[/]", highlight=False)
    if j.get("side_effects"):
        parts = [f"{k}: {v.get('count')}" for k, v in j["side_effects"].items() if isinstance(v, dict)]
        out.print("canary side effects in window: " + ", ".join(parts), highlight=False)


def _short_need(need: str | None) -> str:
    """`~N req (~T)` for the compact table's NEEDS column; `—` when nothing is owed."""
    if not need:
        return "—"
    import re

    m = re.match(r"needs ~([\d,]+) more canary \S+(?: \(~(.+) at current traffic\))?", need)
    if not m:
        return need
    return f"~{m.group(1)}" + (f" (~{m.group(2)})" if m.group(2) else "")


def _arm(a: dict[str, Any]) -> str:
    if not a:
        return "—"
    if "rate" in a and a.get("rate") is not None:
        unit = next((k for k in a if k not in ("events", "rate")), "n")
        return f"{a['events']}/{a[unit]} ({100 * a['rate']:.2f}%)"
    if "value" in a:
        v = a["value"]
        return f"{v:.4g}" if isinstance(v, int | float) else str(v)
    return ", ".join(f"{k}={v}" for k, v in list(a.items())[:3])


def _effect(e: dict[str, Any] | None) -> str:
    if not e or e.get("estimate") is None:
        return "—"

    def f(x: Any) -> str:
        return "n/a" if x is None else (x if isinstance(x, str) else f"{x:.3g}")

    bounds = (
        f" [{f(e.get('lower'))}, {f(e.get('upper'))}]"
        if e.get("lower") is not None or e.get("upper") is not None
        else ""
    )
    return f"{f(e['estimate'])}{bounds}"
