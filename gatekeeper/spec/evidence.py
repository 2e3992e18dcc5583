"""The evidence behind a signal's verdict: one frozen result type per signal family.

A `SignalOutcome` carries one of these in `evidence`; code reads their fields, never string keys. `to_dict()`
gives the JSON every surface shows and stores (`gatekeeper evaluate -o json`, the dashboard, reports, the
status history, decision records), with the keys those readers have always read:

    Evidence                  base: what every family answers (`minimums_met`, `to_dict`, `recorded`)
    ├── CountEvidence         ratio, drift, duplicates, retries, latency, invariant: the count test
    │     test: SequentialTest (e_value, max_e_value, safety_e_value, threshold, path, rollout, more_needed)
    │         | FixedTest      (threshold = alpha, planned_end, p_value)
    │     latency: LatencyObjective (objective, bound_seconds, quantiles)    traces: TraceEvidence (examples)
    ├── ThresholdEvidence     failed measurements against the failure limit, the values measured
    ├── HealthEvidence        freshness only (the ages are in the outcome's arms)
    ├── KayentaEvidence       `mode: kayenta`: Kayenta's classification and the score it earned
    └── KeptnEvidence         `mode: keptn`: the criteria met and the score it earned

**Minimums.** A smoke stage (`requirePass: false`) advances on an inconclusive look only when its minimum
duration and samples are behind it. Only count signals measure samples, so only `CountEvidence` answers
`minimums_met` (True/False); every other family answers None: *not measured*. `Judgement.minimums_met` reads
None as met only for a signal that passed (a pass is its own evidence); a voting signal that did not pass and
never measured the minimums holds the stage, because missing evidence never advances (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ArmPair",
    "CountEvidence",
    "Evidence",
    "FixedTest",
    "HealthEvidence",
    "KayentaEvidence",
    "KeptnEvidence",
    "LatencyObjective",
    "RolloutEvidence",
    "SequentialTest",
    "ThresholdEvidence",
    "TraceEvidence",
    "evidence_from_dict",
]

#: the numbers of a look the status history keeps per signal (`Evidence.recorded`)
RECORDED = ("e_value", "threshold", "p_value", "samples")


@dataclass(frozen=True)
class Evidence:
    """Base of the evidence families; see the module docstring."""

    @property
    def minimums_met(self) -> bool | None:
        """Whether the stage's minimum duration and samples are behind this signal; None: not measured."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return {}

    def recorded(self) -> dict[str, Any]:
        """The numbers the status history keeps for this signal (e-value and its threshold, p-value, samples)."""
        data = self.to_dict()
        return {k: data[k] for k in RECORDED if k in data}


@dataclass(frozen=True)
class ArmPair:
    """One number per arm."""

    canary: int
    baseline: int

    def to_dict(self) -> dict[str, int]:
        return {"canary": self.canary, "baseline": self.baseline}


@dataclass(frozen=True)
class RolloutEvidence:
    """What the e-process saw over the whole rollout so far (this stage and the ones carried into it)."""

    stages: int
    samples: ArmPair
    events: ArmPair

    def to_dict(self) -> dict[str, Any]:
        return {"stages": self.stages, "samples": self.samples.to_dict(), "events": self.events.to_dict()}


@dataclass(frozen=True)
class SequentialTest:
    """The anytime-valid count test (docs/statistics.md §2): the harm and safety e-values and the path."""

    e_value: float
    max_e_value: float
    safety_e_value: float
    threshold: float  # 1 / alpha: FAIL once `max_e_value` reaches it
    path: tuple[float, ...] = ()  # the harm e-value per step (the newest points)
    path_t: tuple[float, ...] = ()  # the step time of each point of `path` (empty when unknown)
    rollout: RolloutEvidence | None = None  # present from the second stage of a rollout on
    more_needed: int | None = None  # canary exposure still needed to decide, when the test can say
    silence_requests: int | None = None  # exposure that rules out `detectableRate` when no event was seen

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": "sequential",
            "e_value": self.e_value,
            "max_e_value": self.max_e_value,
            "safety_e_value": self.safety_e_value,
            "threshold": self.threshold,
            "path": list(self.path),
            "path_t": list(self.path_t),
        }
        return out


@dataclass(frozen=True)
class FixedTest:
    """The fixed-horizon test, run once at the stage's planned end (docs/statistics.md §4); before the planned
    end only `method` is known."""

    threshold: float | None = None  # alpha: FAIL when `p_value` is below it
    planned_end: float | None = None
    p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": "fixed"}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.planned_end is not None:
            out["planned_end"] = self.planned_end
        return out


@dataclass(frozen=True)
class LatencyObjective:
    """A latency signal reduced to counts: requests slower than `bound_seconds`."""

    objective: str  # as a person reads it: "slower than 0.5s, the bucket bound below the baseline's p99"
    bound_seconds: float
    quantile: float | None  # the quantile objective, None for `slowerThan`
    canary_quantile: float | None
    baseline_quantile: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "bound_seconds": self.bound_seconds,
            "quantile": self.quantile,
            "canary_quantile": self.canary_quantile,
            "baseline_quantile": self.baseline_quantile,
        }


@dataclass(frozen=True)
class TraceEvidence:
    """A trace invariant's facts: example violating traces, and what the intake could not see."""

    examples: tuple[str, ...] = ()  # canary trace IDs violating the rule
    baseline_examples: tuple[str, ...] = ()
    dropped_spans: Mapping[str, int] | None = None  # per arm
    newest_span: Mapping[str, float | None] | None = None  # per arm

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": list(self.examples),
            "baseline_examples": list(self.baseline_examples),
            "dropped_spans": dict(self.dropped_spans or {}),
            "newest_span": dict(self.newest_span or {}),
        }


@dataclass(frozen=True)
class CountEvidence(Evidence):
    """A count signal's evidence (`gatekeeper.signals.counts`). Fields that are None were not measured and are
    left out of `to_dict`."""

    test: SequentialTest | FixedTest | None = None  # None: the test did not run (no data, initial delay, ...)
    samples: ArmPair | None = None  # exposure in the window (the test's, up to the planned end for `fixed`)
    events: ArmPair | None = None
    minimums: bool | None = (
        None  # the stage's minimum duration and samples are behind it; None: no canary seen
    )
    series: Mapping[str, Any] | None = None  # per-step counts for charts (`gatekeeper.signals.steps`)
    notes: tuple[str, ...] = ()
    latency: LatencyObjective | None = None
    traces: TraceEvidence | None = None

    @property
    def minimums_met(self) -> bool | None:
        return self.minimums

    @property
    def sequential(self) -> SequentialTest | None:
        return self.test if isinstance(self.test, SequentialTest) else None

    @property
    def fixed(self) -> FixedTest | None:
        return self.test if isinstance(self.test, FixedTest) else None

    @property
    def e_value(self) -> float | None:
        return self.sequential.e_value if self.sequential else None

    @property
    def threshold(self) -> float | None:
        return self.test.threshold if self.test is not None else None

    @property
    def p_value(self) -> float | None:
        return self.fixed.p_value if self.fixed else None

    @property
    def more_needed(self) -> int | None:
        return self.sequential.more_needed if self.sequential else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.notes:
            out["notes"] = list(self.notes)
        if self.latency is not None:
            out |= self.latency.to_dict()
        if self.traces is not None:
            out |= self.traces.to_dict()
        if self.test is not None:
            out |= self.test.to_dict()
        for key, pair in (("samples", self.samples), ("events", self.events)):
            if pair is not None:
                out[key] = pair.to_dict()
        seq, fixed = self.sequential, self.fixed
        if seq is not None:
            if seq.rollout is not None:
                out["rollout"] = seq.rollout.to_dict()
            if seq.more_needed is not None:
                out["more_needed"] = seq.more_needed
            if seq.silence_requests is not None:
                out["silence_requests"] = seq.silence_requests
        if fixed is not None and fixed.p_value is not None:
            out["p_value"] = fixed.p_value
        if self.minimums is not None:
            out["minimums_met"] = self.minimums
        if self.series is not None:
            out["series"] = dict(self.series)
        return out


@dataclass(frozen=True)
class ThresholdEvidence(Evidence):
    """A threshold signal's measurements: how many fell outside the bounds, against its failure limit."""

    failed_measurements: int
    failure_limit: int
    values: tuple[float, ...] = ()  # the newest measurements
    values_t: tuple[float, ...] = ()  # their times

    def to_dict(self) -> dict[str, Any]:
        return {
            "failed_measurements": self.failed_measurements,
            "failure_limit": self.failure_limit,
            "values": list(self.values),
            "values_t": list(self.values_t),
        }


@dataclass(frozen=True)
class HealthEvidence(Evidence):
    """Observability health measures freshness, not samples: its ages per selector are in the outcome's arms
    (`canary.age_seconds`), its gaps in the reason. It never answers `minimums_met`."""


@dataclass(frozen=True)
class KayentaEvidence(Evidence):
    """`mode: kayenta`: the metric's classification (Kayenta's labels) and the points of the score it earned."""

    label: str  # Pass | High | Low | Nodata | NodataFailMetric | Error
    group: str
    group_score: float | None
    group_weight: float | None
    contribution: float | None  # points of the summary score; None for a dry-run signal
    critical: bool
    effect_size: float | None
    bound: float | None
    p_value: float | None
    warning: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": "kayenta",
            "label": self.label,
            "group": self.group,
            "group_score": self.group_score,
            "group_weight": self.group_weight,
            "contribution": self.contribution,
            "critical": self.critical,
            "effect_size": self.effect_size,
            "bound": self.bound,
            "p_value": self.p_value,
            "warning": self.warning,
        }


KeptnStatus = Literal["pass", "warning", "fail", "nodata", "error", "info", "nocriteria", "waiting"]


@dataclass(frozen=True)
class KeptnEvidence(Evidence):
    """`mode: keptn`: which criteria held, the signal's score out of its weight, its share of the total."""

    status: KeptnStatus
    score: float
    max: float
    contribution: float | None = None  # percent of the total score
    pass_targets: tuple[Mapping[str, Any], ...] | None = None
    warning_targets: tuple[Mapping[str, Any], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": "keptn", "status": self.status, "score": self.score, "max": self.max}
        if self.pass_targets is not None:
            out["pass_targets"] = [dict(t) for t in self.pass_targets]
        if self.warning_targets is not None:
            out["warning_targets"] = [dict(t) for t in self.warning_targets]
        if self.contribution is not None:
            out["contribution"] = self.contribution
        return out


def evidence_from_dict(data: Mapping[str, Any] | None) -> Evidence | None:
    """The evidence `to_dict()` wrote, read back (a recorded decision is reported from its record alone).

    The family is told by its keys (`mode` for the scoring modes, `failed_measurements` for a threshold,
    `method` or `minimums_met` for a count signal); an empty or unknown mapping is None: nothing to show."""
    if not data:
        return None
    if data.get("mode") == "kayenta":
        return KayentaEvidence(
            label=str(data.get("label")),
            group=str(data.get("group")),
            group_score=data.get("group_score"),
            group_weight=data.get("group_weight"),
            contribution=data.get("contribution"),
            critical=bool(data.get("critical")),
            effect_size=data.get("effect_size"),
            bound=data.get("bound"),
            p_value=data.get("p_value"),
            warning=data.get("warning"),
        )
    if data.get("mode") == "keptn":
        return KeptnEvidence(
            status=data["status"],
            score=float(data["score"]),
            max=float(data["max"]),
            contribution=data.get("contribution"),
            pass_targets=_records(data.get("pass_targets")),
            warning_targets=_records(data.get("warning_targets")),
        )
    if "failed_measurements" in data:
        return ThresholdEvidence(
            failed_measurements=int(data["failed_measurements"]),
            failure_limit=int(data["failure_limit"]),
            values=tuple(data.get("values") or ()),
            values_t=tuple(data.get("values_t") or ()),
        )
    if not ({"method", "minimums_met", "notes", "objective", "examples", "samples"} & set(data)):
        return None
    return CountEvidence(
        test=_test(data),
        samples=_pair(data.get("samples")),
        events=_pair(data.get("events")),
        minimums=data.get("minimums_met"),
        series=data.get("series"),
        notes=tuple(data.get("notes") or ()),
        latency=LatencyObjective(
            objective=str(data["objective"]),
            bound_seconds=float(data["bound_seconds"]),
            quantile=data.get("quantile"),
            canary_quantile=data.get("canary_quantile"),
            baseline_quantile=data.get("baseline_quantile"),
        )
        if "objective" in data
        else None,
        traces=TraceEvidence(
            examples=tuple(data.get("examples") or ()),
            baseline_examples=tuple(data.get("baseline_examples") or ()),
            dropped_spans=data.get("dropped_spans"),
            newest_span=data.get("newest_span"),
        )
        if "examples" in data
        else None,
    )


def _test(data: Mapping[str, Any]) -> SequentialTest | FixedTest | None:
    if data.get("method") == "fixed":
        return FixedTest(
            threshold=data.get("threshold"), planned_end=data.get("planned_end"), p_value=data.get("p_value")
        )
    if data.get("method") != "sequential":
        return None
    rollout = data.get("rollout")
    return SequentialTest(
        e_value=float(data["e_value"]),
        max_e_value=float(data["max_e_value"]),
        safety_e_value=float(data["safety_e_value"]),
        threshold=float(data["threshold"]),
        path=tuple(data.get("path") or ()),
        path_t=tuple(data.get("path_t") or ()),
        rollout=RolloutEvidence(
            stages=int(rollout["stages"]),
            samples=_arm_pair(rollout["samples"]),
            events=_arm_pair(rollout["events"]),
        )
        if isinstance(rollout, Mapping)
        else None,
        more_needed=data.get("more_needed"),
        silence_requests=data.get("silence_requests"),
    )


def _pair(data: Any) -> ArmPair | None:
    return _arm_pair(data) if isinstance(data, Mapping) else None


def _arm_pair(data: Mapping[str, Any]) -> ArmPair:
    return ArmPair(canary=int(data["canary"]), baseline=int(data["baseline"]))


def _records(data: Any) -> tuple[Mapping[str, Any], ...] | None:
    return None if data is None else tuple(dict(t) for t in data)
