"""Per-step counts of a count signal, kept in its evidence so a report can draw canary against baseline over
the stage without asking the source again (a recorded decision is rendered from its record alone).

Bounded: at most `SERIES_POINTS` points. A longer window is summed into equal buckets of adjacent steps, so
each bucket's counts are exact sums and the cumulative rates at bucket ends are the same as step by step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["SERIES_POINTS", "rebucket", "step_series"]

SERIES_POINTS = 120


def step_series(
    *,
    timestamps: np.ndarray,
    canary: tuple[np.ndarray, np.ndarray],
    baseline: tuple[np.ndarray, np.ndarray],
    unit: str,
    points: int = SERIES_POINTS,
) -> dict[str, Any] | None:
    """``{"t", "canary": {"events", unit}, "baseline": {...}, "unit", "bucket"}`` from per-step
    ``(events, exposure)`` arrays on ``timestamps``; ``bucket`` is how many steps each point sums. None when
    the arrays do not line up (nothing is drawn rather than something wrong)."""
    n = len(timestamps)
    arrays = (*canary, *baseline)
    if n == 0 or any(len(a) != n for a in arrays) or points < 1:
        return None
    k = max(1, math.ceil(n / points))
    ends = list(range(k - 1, n, k))
    if ends[-1] != n - 1:
        ends.append(n - 1)  # the last, partial bucket ends at the newest step
    starts = [0, *(e + 1 for e in ends[:-1])]

    def summed(a: np.ndarray) -> list[float | int]:
        cum = np.concatenate([[0.0], np.cumsum(np.asarray(a, dtype=float))])
        return [_compact(cum[e + 1] - cum[s]) for s, e in zip(starts, ends, strict=True)]

    return {
        "t": [_compact(float(timestamps[e])) for e in ends],
        "canary": {"events": summed(canary[0]), unit: summed(canary[1])},
        "baseline": {"events": summed(baseline[0]), unit: summed(baseline[1])},
        "unit": unit,
        "bucket": k,
    }


def rebucket(series: dict[str, Any], *, points: int) -> dict[str, Any]:
    """``series`` (from `step_series`) summed again into at most ``points`` points; unchanged when it fits or
    does not have the expected shape."""
    t = series.get("t") or []
    unit = series.get("unit", "requests")
    arms = [series.get(arm) or {} for arm in ("canary", "baseline")]
    columns = [a.get(k) for a in arms for k in ("events", unit)]
    if len(t) <= points or any(not isinstance(c, list) or len(c) != len(t) for c in columns):
        return series
    out = step_series(
        timestamps=np.asarray(t, dtype=float),
        canary=(np.asarray(columns[0], dtype=float), np.asarray(columns[1], dtype=float)),
        baseline=(np.asarray(columns[2], dtype=float), np.asarray(columns[3], dtype=float)),
        unit=unit,
        points=points,
    )
    if out is None:
        return series
    return {**out, "bucket": out["bucket"] * int(series.get("bucket", 1))}


def _compact(x: float) -> float | int:
    """Counts are whole numbers almost always: store them as ints; anything else with 3 decimals."""
    x = float(x)
    if not math.isfinite(x):
        return 0
    r = round(x)
    return int(r) if abs(x - r) < 1e-9 else round(x, 3)
