"""What the scoring modes' judges are handed: fetched canary and baseline values, never a source to fetch from.

`ArmSeries` is Kayenta's input (per-step values of both arms, as NetflixACAJudge receives its metric pairs);
`ArmValues` is Keptn's (one value per arm over the window, an SLI). `gatekeeper.signals.series` fetches them,
`gatekeeper.judge.kayenta` and `gatekeeper.judge.keptn` score them. Missing values are NaN or None, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ArmSeries", "ArmValues"]


@dataclass(frozen=True)
class ArmSeries:
    """Per-step values of both arms on the window's step grid (NaN where an arm had no value)."""

    timestamps: np.ndarray
    canary: np.ndarray
    baseline: np.ndarray
    queries: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # e.g. several series where one was expected

    @property
    def same_query(self) -> bool:
        return self.queries.get("canary") == self.queries.get("baseline")


@dataclass(frozen=True)
class ArmValues:
    """One value per arm over the whole window (None: the query returned nothing or NaN)."""

    canary: float | None
    baseline: float | None
    queries: dict[str, str] = field(default_factory=dict)
    problem: str | None = None

    @property
    def same_query(self) -> bool:
        return self.queries.get("canary") == self.queries.get("baseline")
