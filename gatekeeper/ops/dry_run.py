"""What `gatekeeper evaluate` and `replay` share: the window from command-line options, times, exit codes.

The evaluation itself is `gatekeeper.evaluation.safe_judgement` (a dry run: it never acts)."""

from __future__ import annotations

import datetime as dt
import math

from gatekeeper.spec.durations import parse_duration
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.outcome import Verdict
from gatekeeper.spec.window import Window

EXIT_CODES = {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.INCONCLUSIVE: 3, Verdict.NODATA: 3, Verdict.ERROR: 3}
EXIT_BAD_INPUT = 2


def exit_code_for(verdict: Verdict) -> int:
    return EXIT_CODES[verdict]


def parse_time(value: str) -> float:
    """Unix seconds or RFC 3339 (`2026-11-25T14:00:00Z`)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(
            f"'{value}' is not a time: use unix seconds or RFC 3339 like 2026-11-25T14:00:00Z"
        ) from e
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def resolve_window(
    *,
    gate: GateSpec,
    now: float,
    window: str | None = None,
    start: str | None = None,
    end: str | None = None,
    step: str | None = None,
) -> Window:
    """`--window 10m` ends now; `--start/--end` give an explicit range. The step defaults to the source's."""
    step_s = parse_duration(step) if step else gate.source.prometheus.step
    if start or end:
        if not (start and end):
            raise ValueError("give both --start and --end, or --window")
        t0, t1 = parse_time(start), parse_time(end)
    else:
        length = parse_duration(window or "10m")
        # end a little in the past so late scrapes have landed; align to the step so reruns query one grid
        t1 = math.floor((now - gate.source.prometheus.delay) / step_s) * step_s
        t0 = t1 - length
    if t1 <= t0:
        raise ValueError("the window ends before it starts: --end must be after --start")
    if (t1 - t0) < step_s:
        raise ValueError(
            f"the window ({t1 - t0:g}s) is shorter than one step ({step_s:g}s): widen it or pass --step"
        )
    return Window(start=t0, end=t1, step=step_s)
