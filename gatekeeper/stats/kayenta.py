"""Kayenta mode, part 1: NetflixACAJudge's per-metric classifier as a pure function over two arrays.

For teams migrating from Spinnaker: the same inputs (per-step values of one metric, e.g. the error rate of
each minute, for canary and baseline) and the same labels and rules as Kayenta's `MannWhitneyClassifier`:

1. NaN strategy: `remove` (Kayenta's default) drops NaNs, `replace` turns them into 0; optional outlier
   removal (Tukey fences at `outlier_factor`·IQR, widened to the 1st/99th percentiles, as Kayenta's
   IQRDetector with reduceSensitivity).
2. No data in an arm: `Nodata` (critical if the metric is), or `NodataFailMetric` when the metric must have
   data and is not critical. Kayenta passes such a metric under `replace`; here that happens only with
   `strict=False`, because no evidence is never a pass.
3. Identical samples, or a single distinct value across both: `Pass`.
4. Mann–Whitney with R's confidence interval (`mannwhitney`, level `confidence`, 0.98 in the judge) and the
   bound b = tolerance·|estimate| (tolerance 0.25 in the judge). `High` iff the direction allows an
   increase, CI lower > b and the effect size >= allowed increase (ignored when the effect is NaN); `Low`
   mirrors it; otherwise `Pass`.
5. Effect size: the mean ratio canary/baseline (NaN when either mean is 0) or the common-language effect
   size (CLES). A critical metric's `High`/`Low` is critical when the effect also passes the critical
   thresholds; a critical `Nodata`/`Error` is critical.

Deviations from Kayenta, on purpose: when each arm is constant, Kayenta adds random Gaussian noise before
the test; we use the exact shift (deterministic). `strict=True` (default) never passes missing data.
The classifier also warns (`warning`) when the arms have very different numbers of values or sizes,
because the per-step rates of a small canary are more dispersed than the baseline's and Mann–Whitney then
tests dispersion as well as location (docs/statistics.md §9).

Reference: spinnaker/kayenta `kayenta-judge` (NetflixACAJudge.scala, MannWhitneyClassifier.scala,
EffectSizes.scala, IQRDetector.scala) and its ClassifierSuite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import numpy as np

from gatekeeper.stats import _check
from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.mannwhitney import MannWhitneyResult, mann_whitney

__all__ = [
    "Direction",
    "KayentaClassification",
    "Label",
    "NaNStrategy",
    "classify_metric",
    "cles",
    "iqr_outliers",
    "mean_ratio",
]


E = TypeVar("E", bound=StrEnum)


class Label(StrEnum):
    """Kayenta's closed set of metric classifications (its spelling, for JSON compatibility)."""

    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "Nodata"
    NODATA_FAIL_METRIC = "NodataFailMetric"
    ERROR = "Error"


class Direction(StrEnum):
    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


class NaNStrategy(StrEnum):
    REMOVE = "remove"
    REPLACE = "replace"


@dataclass(frozen=True)
class KayentaClassification:
    """One metric's label with Kayenta's `deviation` (mean ratio), the effect size and the test numbers."""

    label: Label
    reason: str | None
    critical: bool
    deviation: float
    effect_size: float
    test: MannWhitneyResult | None
    bound: float | None
    warning: str | None = None


def mean_ratio(baseline: np.ndarray, canary: np.ndarray) -> float:
    """Kayenta's meanRatio: mean(canary)/mean(baseline), NaN when either mean is 0."""
    mb, mc = float(np.mean(baseline)), float(np.mean(canary))
    return math.nan if mb == 0.0 or mc == 0.0 else mc / mb


def cles(baseline: np.ndarray, canary: np.ndarray) -> float:
    """Common-language effect size P(canary > baseline) + ½P(tie) (Vargha & Delaney 2000)."""
    diff = np.subtract.outer(canary, baseline)
    return float((np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size)


def iqr_outliers(values: np.ndarray, *, factor: float, reduce_sensitivity: bool = True) -> np.ndarray:
    """Kayenta's IQRDetector: True where a value lies outside the Tukey fences Q1 − factor·IQR, Q3 + factor·IQR;
    with `reduce_sensitivity` (what NetflixACAJudge uses) the fences widen to the 1st and 99th percentiles.

    Percentiles follow Apache Commons Math's `StatUtils.percentile`, which Kayenta calls: its default LEGACY
    estimation, position p·(n + 1) clamped to the first and last value, i.e. Hyndman & Fan type 6 (numpy's
    "weibull"). So, as in Kayenta, the widened fences keep every value of a series shorter than 99 points
    (the 1st and 99th percentiles are then its minimum and maximum); type 7 (R's default) would not.
    """
    v = np.asarray(values, dtype=float)
    if not v.size:
        return np.zeros(0, dtype=bool)
    p25, p75, p01, p99 = np.percentile(v, [25, 75, 1, 99], method="weibull")
    iqr = p75 - p25
    lower, upper = p25 - factor * iqr, p75 + factor * iqr
    if reduce_sensitivity:
        lower, upper = min(p01, lower), max(p99, upper)
    outside: np.ndarray = (v < lower) | (v > upper)
    return outside


def _transform(values: np.ndarray, nan: NaNStrategy, outliers: bool, factor: float) -> np.ndarray:
    v = values[~np.isnan(values)] if nan == NaNStrategy.REMOVE else np.nan_to_num(values, nan=0.0)
    if outliers and v.size:
        v = v[~iqr_outliers(v, factor=factor)]
    kept: np.ndarray = v
    return kept


def classify_metric(
    canary: np.ndarray,
    baseline: np.ndarray,
    *,
    name: str = "metric",
    direction: Direction | str = Direction.EITHER,
    nan_strategy: NaNStrategy | str = NaNStrategy.REMOVE,
    critical: bool = False,
    must_have_data: bool = False,
    tolerance: float = 0.25,
    confidence: float = 0.98,
    effect_size_measure: str = "meanRatio",
    allowed_increase: float | None = None,
    allowed_decrease: float | None = None,
    critical_increase: float | None = None,
    critical_decrease: float | None = None,
    remove_outliers: bool = False,
    outlier_factor: float = 3.0,
    strict: bool = True,
) -> KayentaClassification:
    """Classify one metric as NetflixACAJudge does (see the module docstring). Arrays may hold NaN."""
    direction = _enum(Direction, direction, "direction")
    nan = _enum(NaNStrategy, nan_strategy, "nan_strategy")
    if effect_size_measure not in ("meanRatio", "cles"):
        raise StatsInputError(
            "effect_size_measure", f"{effect_size_measure!r} is unknown", "use 'meanRatio' or 'cles'"
        )
    default = 0.5 if effect_size_measure == "cles" else 1.0
    allowed = (_or(allowed_decrease, default), _or(allowed_increase, default))
    crit = (_or(critical_decrease, default), _or(critical_increase, default))
    _check.nonneg(tolerance, field="tolerance")
    x = _transform(np.asarray(canary, dtype=float).ravel(), nan, remove_outliers, outlier_factor)
    y = _transform(np.asarray(baseline, dtype=float).ravel(), nan, remove_outliers, outlier_factor)
    if np.any(np.isinf(x)) or np.any(np.isinf(y)):
        return KayentaClassification(
            Label.ERROR, f"{name}: infinite values", critical, math.nan, math.nan, None, None
        )

    if x.size == 0 or y.size == 0:
        reason = f"Missing data for {name}"
        if nan == NaNStrategy.REPLACE and not strict:
            return KayentaClassification(Label.PASS, None, False, 1.0, math.nan, None, None)
        if must_have_data and not critical:
            return KayentaClassification(Label.NODATA_FAIL_METRIC, reason, False, 1.0, math.nan, None, None)
        return KayentaClassification(Label.NODATA, reason, critical, 1.0, math.nan, None, None)
    if np.array_equal(np.sort(x), np.sort(y)):
        return KayentaClassification(
            Label.PASS, "The canary and baseline data are identical", False, 1.0, default, None, None
        )
    if np.unique(np.concatenate([x, y])).size == 1:
        return KayentaClassification(Label.PASS, None, False, 1.0, default, None, None)

    test = mann_whitney(x, y, confidence=confidence)
    bound = tolerance * abs(test.estimate)
    deviation = mean_ratio(y, x)
    effect = test.cles if effect_size_measure == "cles" else deviation
    high = (
        direction in (Direction.INCREASE, Direction.EITHER)
        and test.lower > bound
        and (math.isnan(effect) or effect >= allowed[1])
    )
    low = (
        direction in (Direction.DECREASE, Direction.EITHER)
        and test.upper < -bound
        and (math.isnan(effect) or effect <= allowed[0])
    )
    warning = _warning(x, y)
    if not (high or low):
        return KayentaClassification(Label.PASS, None, False, deviation, effect, test, bound, warning)
    label = Label.HIGH if high else Label.LOW
    is_critical = critical and (math.isnan(effect) or (effect >= crit[1] if high else effect <= crit[0]))
    reason = f"The metric {name} was classified as {label}" + (" (Critical)" if is_critical else "")
    return KayentaClassification(label, reason, is_critical, deviation, effect, test, bound, warning)


def _warning(x: np.ndarray, y: np.ndarray) -> str | None:
    sx, sy = float(np.std(x)), float(np.std(y))
    if sy > 0 and sx > 0 and max(sx / sy, sy / sx) > 2.0:
        return (
            "the arms' spreads differ more than 2x (e.g. a small canary share): Mann–Whitney then reacts "
            "to dispersion, not only to a shift"
        )
    return None


def _or(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _enum(kind: type[E], value: object, field: str) -> E:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except ValueError:
        allowed = ", ".join(k.value for k in kind)
        raise StatsInputError(field, f"{value!r} is not one of {allowed}", f"use one of {allowed}") from None
