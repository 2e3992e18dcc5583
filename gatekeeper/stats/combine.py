"""Several signals, one false-alarm budget: Bonferroni weights and e-value averaging.

A gate watches many signals measured on the same requests, so their evidence is dependent. Two ways keep
P(any false alarm) <= α without assuming independence (docs/statistics.md §2, "Alpha across signals"):

- Weighted Bonferroni: signal j alarms when E_j >= 1/(w_j·α) (or p_j <= w_j·α), with Σ w_j = 1. Ville's
  inequality per signal plus the union bound. Critical signals may get a larger weight, so they alarm at a
  lower e-value.
- Averaging: Ē = Σ w_j E_j is itself an e-process (a weighted mean of test supermartingales on the same
  filtration is one), so one global alarm when Ē >= 1/α. Never multiply e-values of dependent signals.

Both take weights as relative sizes; they are normalised here.

References: Vovk & Wang (2021), "E-values: calibration, combination and applications", Ann. Statist. 49(3);
Wasserman, Ramdas & Balakrishnan (2020), PNAS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gatekeeper.stats import _check
from gatekeeper.stats.errors import StatsInputError

__all__ = ["AveragedEvidence", "BonferroniEvidence", "average_evalues", "bonferroni", "signal_weights"]


def signal_weights(*, critical: Sequence[bool], critical_factor: float = 2.0) -> np.ndarray:
    """Weights summing to 1 where each critical signal counts `critical_factor` times an ordinary one."""
    flags = np.asarray(critical, dtype=bool)
    if flags.size == 0:
        raise StatsInputError("critical", "is empty", "pass one flag per signal")
    factor = float(critical_factor)
    if not (factor >= 1 and math.isfinite(factor)):
        raise StatsInputError("critical_factor", f"{critical_factor!r} is below 1", "pass e.g. 2")
    raw = np.where(flags, factor, 1.0)
    normalised: np.ndarray = raw / raw.sum()
    return normalised


def _evalues(e_values: Sequence[float]) -> np.ndarray:
    e = np.asarray(e_values, dtype=float)
    if e.ndim != 1 or e.size == 0 or np.any(np.isnan(e)) or np.any(e < 0):
        raise StatsInputError(
            "e_values",
            f"{list(e_values)!r} are not non-negative numbers",
            "pass one e-value per signal (inf allowed)",
        )
    return e


@dataclass(frozen=True)
class BonferroniEvidence:
    """Per-signal thresholds 1/(w_j α), which signals alarm, and whether any does."""

    weights: tuple[float, ...]
    thresholds: tuple[float, ...]
    alarms: tuple[bool, ...]
    alpha: float

    @property
    def any_alarm(self) -> bool:
        return any(self.alarms)


def bonferroni(
    *, e_values: Sequence[float], alpha: float, weights: Sequence[float] | None = None
) -> BonferroniEvidence:
    """Weighted Bonferroni over e-values (use `1/p` for p-values, or compare p_j <= w_j·α directly)."""
    e = _evalues(e_values)
    a = _check.alpha(alpha)
    w = _check.weights(weights, size=e.size)
    with np.errstate(divide="ignore"):
        thresholds = np.where(w > 0, 1.0 / (w * a), np.inf)
    alarms = e >= thresholds
    return BonferroniEvidence(
        tuple(map(float, w)), tuple(map(float, thresholds)), tuple(map(bool, alarms)), a
    )


@dataclass(frozen=True)
class AveragedEvidence:
    """The weighted mean e-value, the 1/α threshold, and which signal contributes most."""

    e_value: float
    threshold: float
    alarm: bool
    weights: tuple[float, ...]
    largest_contributor: int


def average_evalues(
    *, e_values: Sequence[float], alpha: float, weights: Sequence[float] | None = None
) -> AveragedEvidence:
    """One global e-value Σ w_j E_j; alarm when it reaches 1/α."""
    e = _evalues(e_values)
    a = _check.alpha(alpha)
    w = _check.weights(weights, size=e.size)
    contrib = np.zeros_like(e)
    contrib[w > 0] = w[w > 0] * e[w > 0]  # a zero weight silences its signal, even an infinite e-value
    mean = float(contrib.sum())
    return AveragedEvidence(
        mean, 1.0 / a, bool(mean >= 1.0 / a), tuple(map(float, w)), int(np.argmax(contrib))
    )
