"""Kayenta mode, part 2: NetflixACAJudge's scoring of classified metrics into groups and a summary.

Rules (Kayenta's WeightedSumScorer and ThresholdScoreClassifier):

- Muted metrics are left out. Each metric counts in every group it belongs to.
- Group score = 100 · Pass / (Pass + High + Low + NodataFailMetric); Nodata and Error do not count.
  A group with none of those labels has no data.
- Any critical metric not classified Pass scores the canary 0; so does Nodata on half or more of the metrics.
- Summary = Σ group score · weight / 100, with the configured weights (percent); groups without a weight
  share what is left of 100 equally; rounded half-up to two decimals.
- Summary >= pass threshold → Pass; >= marginal threshold → Marginal; else Fail.

Kayenta lets a group with no data score 100 and ignores Error metrics. With `strict=True` (default) a
no-data group scores 0 and an Error metric counts like NodataFailMetric, so missing evidence never lifts
the score; `strict=False` reproduces Kayenta exactly (its ScorerSuite numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.kayenta import Label

__all__ = ["GroupScore", "KayentaScore", "MetricResult", "ScoreClass", "score_metrics"]

NODATA_THRESHOLD = 50.0


class ScoreClass(StrEnum):
    PASS = "Pass"
    MARGINAL = "Marginal"
    FAIL = "Fail"


@dataclass(frozen=True)
class MetricResult:
    """A classified metric as the scorer sees it."""

    name: str
    label: Label
    groups: tuple[str, ...]
    critical: bool = False
    muted: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class GroupScore:
    name: str
    score: float
    no_data: bool
    label_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class KayentaScore:
    """Summary score and class, the reason when forced to 0, group scores, and groups without data."""

    score: float
    classification: ScoreClass
    reason: str | None
    groups: tuple[GroupScore, ...]
    nodata_groups: tuple[str, ...]


def _group_score(name: str, labels: list[Label], *, strict: bool) -> GroupScore:
    counts = {label.value: labels.count(label) for label in set(labels)}
    passed = counts.get(Label.PASS.value, 0)
    counted = [Label.PASS, Label.HIGH, Label.LOW, Label.NODATA_FAIL_METRIC] + (
        [Label.ERROR] if strict else []
    )
    total = sum(counts.get(label.value, 0) for label in counted)
    return GroupScore(name, 0.0 if total == 0 else passed / total * 100.0, total == 0, counts)


def _summary(groups: list[GroupScore], weights: Mapping[str, float], *, strict: bool) -> float:
    unweighted = [g.name for g in groups if g.name not in weights]
    share = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    total = 0.0
    for g in groups:
        effective = (0.0 if strict else 100.0) if g.no_data else g.score
        total += effective * (weights.get(g.name, share) / 100.0)
    return float(Decimal(repr(total)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def score_metrics(
    results: Sequence[MetricResult],
    *,
    pass_threshold: float,
    marginal_threshold: float,
    group_weights: Mapping[str, float] | None = None,
    strict: bool = True,
) -> KayentaScore:
    """Score classified metrics; see the module docstring."""
    if not (0 <= marginal_threshold <= pass_threshold <= 100):
        raise StatsInputError(
            "marginal_threshold",
            f"{marginal_threshold} / {pass_threshold} are not ordered within 0..100",
            "pass 0 <= marginal <= pass <= 100, e.g. 75 and 95",
        )
    weights = dict(group_weights or {})
    if any(w < 0 for w in weights.values()) or sum(weights.values()) > 100.0 + 1e-9:
        raise StatsInputError(
            "group_weights",
            f"{weights} has a negative weight or sums above 100",
            "give percentages that sum to at most 100",
        )
    active = [r for r in results if not r.muted]
    by_group: dict[str, list[Label]] = {}
    for r in active:
        for g in r.groups:
            by_group.setdefault(g, []).append(r.label)
    groups = [_group_score(name, labels, strict=strict) for name, labels in by_group.items()]
    nodata_groups = tuple(g.name for g in groups if g.no_data)

    def done(score: float, reason: str | None) -> KayentaScore:
        if score >= pass_threshold:
            cls = ScoreClass.PASS
        elif score >= marginal_threshold:
            cls = ScoreClass.MARGINAL
        else:
            cls = ScoreClass.FAIL
        return KayentaScore(score, cls, reason, tuple(groups), nodata_groups)

    if not active:
        return done(0.0, "no metrics to score")
    failures = [r for r in active if r.critical and r.label != Label.PASS]
    if failures:
        return done(
            0.0, f"Canary Failed: {failures[0].reason or failures[0].name + ' is ' + failures[0].label}"
        )
    nodata = sum(1 for r in active if r.label == Label.NODATA)
    if nodata / len(active) * 100.0 >= NODATA_THRESHOLD:
        return done(0.0, f"Canary Failed: {NODATA_THRESHOLD:g}% or more metrics returned NODATA")
    return done(_summary(groups, weights, strict=strict), None)
