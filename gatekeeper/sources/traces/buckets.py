"""Sparse time buckets of small count vectors, with a hard cap on how many buckets one series may hold.

Bucket `b` covers [b·resolution, (b+1)·resolution) in span time (unix seconds). Summing onto a window's step
grid uses half-open steps [e − step, e) ending at the grid points `end − step·(n−1) … end` (the grid of
`gatekeeper.signals.fetch.grid`), so a resolution that divides the step makes the sums exact.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Buckets", "step_grid"]


def step_grid(start: float, end: float, step: float) -> np.ndarray:
    """End-aligned step ends covering [start, end]: n = round((end − start)/step) points, the last at `end`."""
    if step <= 0 or not math.isfinite(step):
        raise ValueError(f"step must be a positive number of seconds, got {step!r}")
    if not end > start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    n = max(round((end - start) / step), 1)
    return end - step * np.arange(n - 1, -1, -1, dtype=float)


class Buckets:
    """`width` counters per bucket; the last counter may instead keep a maximum (`keep_max=True`)."""

    __slots__ = ("_data", "keep_max", "max_buckets", "resolution", "width")

    def __init__(self, *, resolution: float, width: int, max_buckets: int, keep_max: bool = False) -> None:
        self.resolution = resolution
        self.width = width
        self.max_buckets = max_buckets
        self.keep_max = keep_max
        self._data: dict[int, list[float]] = {}

    def __len__(self) -> int:
        return len(self._data)

    def add(self, t: float, values: tuple[float, ...]) -> bool:
        """Add `values` at span time `t`; False (nothing added) when a new bucket would exceed the cap."""
        b = math.floor(t / self.resolution)
        row = self._data.get(b)
        if row is None:
            if len(self._data) >= self.max_buckets:
                return False
            self._data[b] = list(values)
            return True
        last = self.width - 1
        for i in range(last):
            row[i] += values[i]
        if self.keep_max:
            if values[last] > row[last]:
                row[last] = values[last]
        else:
            row[last] += values[last]
        return True

    def prune(self, before: float) -> int:
        """Drop buckets that end before `before`; returns how many went."""
        limit = math.floor(before / self.resolution)
        old = [b for b in self._data if b < limit]
        for b in old:
            del self._data[b]
        return len(old)

    def on_grid(self, points: np.ndarray, step: float) -> np.ndarray:
        """Per-step sums (n × width); for a `keep_max` column, the per-step maximum (NaN where empty)."""
        n = len(points)
        out = np.zeros((n, self.width))
        if self.keep_max:
            out[:, -1] = np.nan
        lo, hi = float(points[0]) - step, float(points[-1])
        for b, row in self._data.items():
            t = b * self.resolution
            if not lo <= t < hi:
                continue
            k = min(int((t - lo) // step), n - 1)
            if self.keep_max:
                out[k, :-1] += row[:-1]
                prev = out[k, -1]
                out[k, -1] = row[-1] if np.isnan(prev) else max(prev, row[-1])
            else:
                out[k] += row
        return out

    def newest_before(self, end: float, column: int) -> float | None:
        """Largest value of `column` among buckets starting before `end` (e.g. the newest span end time)."""
        best: float | None = None
        for b, row in self._data.items():
            if b * self.resolution < end:
                v = min(row[column], end)
                if best is None or v > best:
                    best = v
        return best
