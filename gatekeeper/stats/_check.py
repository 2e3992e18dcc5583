"""Input validation shared by the statistics modules (kept apart from the computations)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gatekeeper.stats.errors import StatsInputError


def alpha(value: float, *, field: str = "alpha") -> float:
    a = float(value)
    if not (0.0 < a < 1.0):
        raise StatsInputError(
            field, f"{value!r} is not a probability strictly between 0 and 1", "pass e.g. 0.01"
        )
    return a


def nonneg(value: float, *, field: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise StatsInputError(field, f"{value!r} is negative or not finite", "pass a finite number >= 0")
    return v


def count(value: Any, *, field: str) -> int:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise StatsInputError(field, f"{value!r} is not a number", "pass a whole count >= 0") from None
    if not math.isfinite(v) or v < 0 or v != round(v):
        raise StatsInputError(field, f"{value!r} is not a whole count >= 0", "pass a whole count >= 0")
    return round(v)


def counts(values: Any, *, field: str) -> np.ndarray:
    """A 1-d array of whole, non-negative counts (floats like 3.0 from PromQL `increase` are accepted)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise StatsInputError(
            field, f"has shape {arr.shape}", "pass a 1-d sequence with one count per interval"
        )
    if not np.all(np.isfinite(arr)):
        raise StatsInputError(
            field, "contains NaN or Inf", "drop or repair the missing intervals before testing"
        )
    if np.any(arr < 0):
        raise StatsInputError(field, "contains a negative count", "pass increases, not raw counter values")
    rounded = np.round(arr)
    if np.any(np.abs(arr - rounded) > 1e-6 * np.maximum(1.0, np.abs(arr))):
        raise StatsInputError(
            field,
            "contains fractional counts",
            "pass whole event counts (round extrapolated `increase()` results before testing)",
        )
    return rounded


def shares(values: Any, *, field: str, length: int) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        arr = np.full(length, float(arr))
    if arr.shape != (length,):
        raise StatsInputError(
            field, f"has {arr.size} values for {length} intervals", "pass one share per interval"
        )
    if not np.all(np.isfinite(arr)) or np.any((arr < 0) | (arr > 1)):
        raise StatsInputError(
            field, "has a value outside [0, 1]", "pass canary / (canary + baseline) traffic"
        )
    return arr


def same_length(**arrays: np.ndarray) -> int:
    sizes = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise StatsInputError(
            ", ".join(sizes), f"lengths differ ({sizes})", "pass aligned arrays with one entry per interval"
        )
    return next(iter(sizes.values())) if sizes else 0


def finite_sample(values: Any, *, field: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise StatsInputError(field, "is empty", "pass at least one observation (no data is not a pass)")
    if not np.all(np.isfinite(arr)):
        raise StatsInputError(
            field, "contains NaN or Inf", "remove or replace them first (see kayenta NaN strategies)"
        )
    return arr


def ratio_grid(values: Sequence[float] | None, default: Sequence[float], *, field: str) -> np.ndarray:
    grid = np.asarray(default if values is None else values, dtype=float)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 1.0):
        raise StatsInputError(
            field, f"{values!r} is not a non-empty list of ratios > 1", "pass e.g. (1.5, 2, 4)"
        )
    return grid


def weights(values: Sequence[float] | None, *, size: int, field: str = "weights") -> np.ndarray:
    if values is None:
        return np.full(size, 1.0 / size)
    w = np.asarray(values, dtype=float)
    if w.shape != (size,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise StatsInputError(
            field, f"{values!r} does not give {size} non-negative weights", "pass one per entry"
        )
    normalised: np.ndarray = w / w.sum()
    return normalised
