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


def judgement_table(j: dict[str, Any]) -> None:
    w = j["window"]
    title = (
        f"gate [bold]{j['gate']}[/] — stage {j['stage'] + 1} (weight {j['weight']:g}%) — "
        f"{verdict_text(j['verdict'])}"
    )
    t = Table(title=title, title_justify="left", show_lines=False, expand=False)
    for col in ("signal", "verdict", "canary", "baseline", "effect [bounds]", "reason"):
        t.add_column(col, overflow="fold")
    for s in j["signals"]:
        name = (
            s["name"]
            + (" (critical)" if s["critical"] else "")
            + (" [dim](dry run)[/]" if s["dry_run"] else "")
        )
        t.add_row(
            name,
            verdict_text(s["verdict"]),
            _arm(s["canary"]),
            _arm(s["baseline"]),
            _effect(s.get("effect")),
            s["reason"],
        )
    out.print(t)
    out.print(
        f"window {w['start']:.0f} → {w['end']:.0f} (step {w['step']:g}s); {j['reason']}", highlight=False
    )
    if j.get("side_effects"):
        parts = [f"{k}: {v.get('count')}" for k, v in j["side_effects"].items() if isinstance(v, dict)]
        out.print("canary side effects in window: " + ", ".join(parts), highlight=False)


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
