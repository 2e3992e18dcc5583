"""Times, durations and "how much more" as people read them: RFC 3339 with a relative part ("12 min ago"),
short durations ("3m 20s"), and one sentence for what a signal still needs, whatever its kind.

Pure functions (no I/O); the CLI and its tests call them with an explicit `now`.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

__all__ = ["ago", "duration", "needs", "rfc3339", "when"]


def rfc3339(t: float) -> str:
    """Unix seconds as RFC 3339 in UTC, to the second: `2026-11-24T14:00:00Z`."""
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float) -> str:
    """A short duration, two units at most: `45s`, `3m 20s`, `2h 5m`, `3d 4h`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if s >= size:
            major, rest = divmod(s, size)
            minor = rest // sub_size
            return f"{major}{unit}" + (f" {minor}{sub}" if minor else "")
    return f"{s}s"  # pragma: no cover - the loop always returns for s >= 60


def ago(t: float, *, now: float) -> str:
    """`12 min ago`, `in 3 min`, `just now` (kubectl's AGE in words)."""
    delta = now - t
    if abs(delta) < 5:
        return "just now"
    words = _coarse(abs(delta))
    return f"{words} ago" if delta > 0 else f"in {words}"


def when(t: float, *, now: float) -> str:
    """`2026-11-24T14:00:00Z (12 min ago)`."""
    return f"{rfc3339(t)} ({ago(t, now=now)})"


def _coarse(seconds: float) -> str:
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{round(seconds / 86400)} d"


def needs(signal: dict[str, Any], *, window_seconds: float) -> str | None:
    """One sentence for an undecided signal: `needs ~N more canary requests (~T at current traffic)`.

    N is read from the signal's evidence (`more_needed`), which the statistics that decide compute; nothing
    is recomputed here. T divides N by the canary's traffic in the window (`evidence.samples.canary`).
    None when the signal is decided or its kind reports no such number."""
    if signal.get("verdict") != "inconclusive":
        return None
    evidence = signal.get("evidence") or {}
    more = evidence.get("more_needed")
    if not isinstance(more, int | float) or isinstance(more, bool) or not math.isfinite(more) or more <= 0:
        return None
    unit = str(evidence.get("unit") or "requests")
    text = f"needs ~{_count(more)} more canary {unit}"
    samples = (
        (evidence.get("samples") or {}).get("canary") if isinstance(evidence.get("samples"), dict) else None
    )
    if isinstance(samples, int | float) and samples > 0 and window_seconds > 0:
        rate = samples / window_seconds
        text += f" (~{duration(more / rate)} at current traffic)"
    return text


def _count(n: float) -> str:
    return f"{round(n):,}"
