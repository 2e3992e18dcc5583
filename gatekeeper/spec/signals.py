"""Signal kinds: what to measure, which direction is bad, how much change is tolerated, how critical it is.

Every kind renders into a canary and a baseline query that differ only in scope (see `gatekeeper.signals`).
Selectors are written without the scope labels: `http_requests_total{code=~"5.."}`; the scope is added when the
query is rendered. Free-form PromQL (threshold signals) marks the place of the scope with `${selector}`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from gatekeeper.spec.base import SpecModel
from gatekeeper.spec.durations import Duration


class Direction(StrEnum):
    """Which change of the measured value is harmful."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


class TestMethod(StrEnum):
    """How a count signal is tested.

    `sequential` (the default) is anytime-valid: it may look at every interval. `fixed` is the exact
    conditional binomial test, valid only when run once: it runs at the stage's planned end (its minimum
    duration), on the evidence up to then, and says INCONCLUSIVE before.
    """

    SEQUENTIAL = "sequential"
    FIXED = "fixed"


class SignalBase(SpecModel):
    name: str = Field(
        pattern=r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$", description="Unique, DNS-label-like."
    )
    description: str = ""
    direction: Direction = Direction.INCREASE
    tolerance: float = Field(
        default=0.10,
        ge=0.0,
        description="Tolerated relative change of the canary over the baseline (0.1 = +10%) before it is harm.",
    )
    critical: bool = Field(default=False, description="A failing critical signal fails the gate on its own.")
    weight: float = Field(
        default=1.0, gt=0.0, description="Share of the gate's false-alarm budget (Bonferroni)."
    )
    dry_run: bool = Field(default=False, description="Measured, recorded and shown, but never votes.")
    initial_delay: Duration = Field(
        default=0.0, description="Ignore the signal for this long after a stage starts."
    )
    owner: str | None = Field(default=None, description="Who answers for this signal's verdicts.")
    inconclusive_limit: int | None = Field(
        default=None,
        ge=0,
        description="Consecutive inconclusive looks (after initialDelay) tolerated; one more holds the rollout "
        "for a human, as Argo Rollouts pauses on an inconclusive analysis. Default: no limit.",
    )
    group: str | None = Field(default=None, description="Metric group (Kayenta/Keptn scoring modes).")
    pass_criteria: list[str] = Field(
        default_factory=list, description="Keptn-style criteria on the canary value, e.g. '<=+10%' or '<600'."
    )
    warning_criteria: list[str] = Field(default_factory=list, description="Keptn-style warning criteria.")
    key: bool = Field(default=False, description="Keptn key objective: failing it fails the gate.")
    outliers: Literal["keep", "remove"] = Field(
        default="keep",
        description="Kayenta mode: 'remove' drops per-step values outside the Tukey fences (outlierFactor x IQR) "
        "of each arm before comparing, as Kayenta's outliers.strategy remove.",
    )
    outlier_factor: float = Field(
        default=3.0, gt=0, description="Kayenta mode: the IQR multiple of the fences."
    )
    effect_measure: Literal["meanRatio", "cles"] = Field(
        default="meanRatio",
        description="Kayenta mode: the effect size, the canary/baseline mean ratio (neutral 1, allowed 1 +/- "
        "tolerance) or the common-language effect size (neutral 0.5, allowed 0.5 +/- tolerance).",
    )


class CountSignal(SignalBase):
    """A signal judged by the count test: bad events over exposure, canary against baseline."""

    test: TestMethod = Field(
        default=TestMethod.SEQUENTIAL,
        description="sequential (anytime-valid, every look) or fixed (exact, once at the stage's planned end).",
    )
    detectable_rate: float | None = Field(
        default=None,
        gt=0,
        description="With no bad events in either arm a ratio cannot be bounded: the signal then passes once the "
        "canary has served enough requests (log(1/alpha) / rate) to have seen a bad event had its rate been this "
        "or more, e.g. 0.001 for one in a thousand. Unset: silence stays inconclusive.",
    )

    @field_validator("test", mode="before")
    @classmethod
    def _valid_method(cls, v: object) -> object:
        if v == "mann-whitney":
            raise ValueError(
                "mann-whitney is a fixed-horizon test of per-step values and is not valid at every look: use "
                "'mode: kayenta' for Kayenta's Mann-Whitney judge, or 'test: fixed' for the exact count test run "
                "once at the stage's planned end"
            )
        return v


class RatioSignal(CountSignal):
    """Bad events over all events, from two counters (e.g. 5xx responses over all responses)."""

    kind: Literal["ratio"]
    bad: str = Field(description='Counter selector of bad events, e.g. http_requests_total{code=~"5.."}.')
    total: str = Field(description="Counter selector of all events, e.g. http_requests_total.")


class LatencySignal(CountSignal):
    """A Prometheus histogram: a quantile, or the fraction of requests slower than a threshold."""

    kind: Literal["latency"]
    histogram: str = Field(description="Histogram base name or selector, without _bucket.")
    quantile: float | None = Field(default=None, gt=0.0, lt=1.0)
    slower_than: Duration | None = Field(
        default=None, description="Count requests slower than this (must be a bucket bound `le`)."
    )

    @model_validator(mode="after")
    def _one_objective(self) -> LatencySignal:
        if (self.quantile is None) == (self.slower_than is None):
            raise ValueError("set exactly one of 'quantile' (e.g. 0.99) or 'slowerThan' (e.g. 500ms)")
        return self


class ThresholdSignal(SignalBase):
    """An absolute bound on any PromQL expression, evaluated on the canary (as Flagger metrics are)."""

    kind: Literal["threshold"]
    query: str = Field(description="PromQL; `${selector}` is replaced by the arm's label matchers.")
    min: float | None = None
    max: float | None = None
    failure_limit: int = Field(default=0, ge=0, description="Failed measurements tolerated before FAIL.")

    @model_validator(mode="after")
    def _a_bound(self) -> ThresholdSignal:
        if self.min is None and self.max is None:
            raise ValueError("set 'min', 'max' or both: a threshold signal needs a bound")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is above 'max' ({self.max})")
        return self


class SpanCheck(SpecModel):
    span: str = Field(description="Span name, e.g. payment.capture.")
    status: Literal["ok", "error", "any"] = "ok"


class InvariantSignal(CountSignal):
    """A trace rule: in a trace rooted at `root`, if `when` happened then `require` must exist within `within`."""

    kind: Literal["invariant"]
    root: str = Field(description="Root span name, e.g. checkout.")
    when: SpanCheck
    require: SpanCheck
    within: Duration = 30.0


class DriftSignal(CountSignal):
    """Storefront vs system of record: `placed` events that never show up in `recorded`, per arm."""

    kind: Literal["drift"]
    placed: str = Field(description="Counter selector at the storefront, e.g. shop_orders_placed_total.")
    recorded: str = Field(
        description="Counter selector at the system of record, e.g. oms_orders_recorded_total."
    )


class DuplicateSignal(CountSignal):
    """The same idempotency key processed more than once, per arm."""

    kind: Literal["duplicates"]
    duplicates: str = Field(description="Counter selector of repeated processings.")
    processed: str = Field(description="Counter selector of all processings.")


class RetrySignal(CountSignal):
    """Retry amplification: retries (or downstream calls) per request, canary over baseline."""

    kind: Literal["retries"]
    retries: str = Field(description="Counter selector of retries or downstream calls.")
    requests: str = Field(description="Counter selector of incoming requests.")


class HealthSignal(SignalBase):
    """Observability itself: series the canary must emit, scrape health, freshness. Never passes on a gap."""

    kind: Literal["health"]
    series: list[str] = Field(min_length=1, description="Selectors that must exist for both arms.")
    max_staleness: Duration = Field(default=120.0, description="Newest sample older than this is a gap.")
    up: str | None = Field(default=None, description='Scrape health selector, e.g. up{job="shop"}.')


Signal = Annotated[
    RatioSignal
    | LatencySignal
    | ThresholdSignal
    | InvariantSignal
    | DriftSignal
    | DuplicateSignal
    | RetrySignal
    | HealthSignal,
    Field(discriminator="kind"),
]
