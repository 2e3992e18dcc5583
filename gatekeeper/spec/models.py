"""The gate: where to look, what to compare, and how a rollout walks through its stages.

Defaults live here and only here. They are deliberately strict where a peer's are lenient (see README):
no data never passes, a source outage holds and never advances.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, HttpUrl, field_validator, model_validator

from gatekeeper.spec.base import SpecModel
from gatekeeper.spec.durations import Duration
from gatekeeper.spec.signals import Signal

_LABEL = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class Arg(SpecModel):
    """A template argument, filled as `${name}` (Argo Rollouts AnalysisTemplate style)."""

    name: str = Field(pattern=_LABEL)
    value: str | None = Field(default=None, description="Default; an argument without one must be given.")
    description: str = ""


class PrometheusSettings(SpecModel):
    url: str = Field(default="http://127.0.0.1:9090", description="Prometheus (or Thanos/Mimir) base URL.")
    timeout: Duration = Field(default=5.0, gt=0, description="Per-query timeout.")
    retries: int = Field(default=2, ge=0, le=10, description="Retries on transient failures, with backoff.")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization, X-Scope-OrgID.")
    step: Duration = Field(default=60.0, gt=0, description="Resolution of per-step increments.")
    max_staleness: Duration = Field(
        default=120.0, gt=0, description="An arm whose newest sample is older than this is a gap, not a pass."
    )
    delay: Duration = Field(
        default=30.0,
        ge=0,
        description="Live looks judge windows ending this long before now, so late scrapes and remote-write "
        "lag have landed (two counters read mid-ingestion would disagree).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if "${" not in v:
            HttpUrl(v)
        return v.rstrip("/")


class JaegerSettings(SpecModel):
    """Read the window's traces from an existing Jaeger (its query API, `/api/v3/traces`) instead of the intake."""

    url: str = Field(description="Jaeger query base URL, e.g. http://jaeger-query.tracing:16686.")
    service: str = Field(min_length=1, description="Service whose traces to fetch (the root spans' service).")
    timeout: Duration = Field(default=10.0, gt=0, description="Per-request timeout.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if "${" not in v:
            HttpUrl(v)
        return v.rstrip("/")


class TraceSettings(SpecModel):
    jaeger: JaegerSettings | None = Field(
        default=None, description="Fetch traces from this Jaeger instead of gatekeeper's own intake."
    )
    version_attribute: str = Field(
        default="service.version",
        description="Resource or span attribute whose value tells canary from baseline.",
    )
    canary_value: str = "canary"
    baseline_value: str = "baseline"
    completion_timeout: Duration = Field(
        default=30.0, gt=0, description="A trace is judged this long after its last span."
    )


class SourceSettings(SpecModel):
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    traces: TraceSettings | None = None


class Scopes(SpecModel):
    """Label matchers that select each arm. Values are exact unless they start with an operator (=~, !=, !~)."""

    canary: dict[str, str] = Field(min_length=1)
    baseline: dict[str, str] = Field(min_length=1)

    @field_validator("canary", "baseline")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        import re

        for key in v:
            if not re.match(_LABEL, key):
                raise ValueError(f"'{key}' is not a Prometheus label name (letters, digits, underscore)")
        return v

    @model_validator(mode="after")
    def _distinct(self) -> Scopes:
        if self.canary == self.baseline:
            raise ValueError("canary and baseline scopes are identical: they must select different series")
        return self


class WindowMode(StrEnum):
    REVERSIBLE = "reversible"
    FORWARD_FIX_ONLY = "forward-fix-only"
    CLOSES = "closes"


class RollbackWindow(SpecModel):
    """How long reverting still reverts. `closes`: after N side effects or T since the stage began, whichever first."""

    mode: WindowMode = WindowMode.REVERSIBLE
    after_side_effects: int | None = Field(default=None, ge=0)
    after: Duration | None = None

    @model_validator(mode="after")
    def _closes_needs_a_limit(self) -> RollbackWindow:
        if self.mode == WindowMode.CLOSES and self.after_side_effects is None and self.after is None:
            raise ValueError("mode 'closes' needs 'afterSideEffects', 'after' or both")
        return self


class Authority(SpecModel):
    """Who may take the stage's decision: the gate itself, or a named group after an approval."""

    mode: Literal["auto", "approval"] = "auto"
    group: str | None = None

    @model_validator(mode="after")
    def _group(self) -> Authority:
        if self.mode == "approval" and not self.group:
            raise ValueError("approval needs 'group': the group whose members may approve")
        return self


class Cookie(SpecModel):
    name: str
    value: str


class StageMatch(SpecModel):
    """A/B stage: requests matching all of these go to the canary (Flagger `analysis.match`)."""

    headers: dict[str, str] = Field(
        default_factory=dict, description="Exact header values; names lower-cased."
    )
    cookie: Cookie | None = None

    @field_validator("headers")
    @classmethod
    def _lower(cls, v: dict[str, str]) -> dict[str, str]:
        return {k.lower(): val for k, val in v.items()}

    @model_validator(mode="after")
    def _something(self) -> StageMatch:
        if not self.headers and self.cookie is None:
            raise ValueError("a match needs 'headers', 'cookie' or both")
        return self


class Stage(SpecModel):
    weight: float = Field(ge=0, le=100, description="Canary traffic percentage during the stage.")
    match: StageMatch | None = None
    mirror: float | None = Field(
        default=None, gt=0, le=100, description="Shadow stage: mirror this percent of requests to the canary."
    )
    min_duration: Duration = Field(default=60.0, description="No verdict advances before this.")
    max_duration: Duration | None = Field(default=None, description="Deadline; then `onDeadline` acts.")
    min_samples: int = Field(default=100, ge=0, description="Canary requests needed before a pass.")
    rollback_window: RollbackWindow = Field(default_factory=RollbackWindow)
    authority: Authority = Field(default_factory=Authority)
    require_pass: bool = Field(
        default=True,
        description="false: a smoke stage. Advance after the minimum duration and samples unless a signal fails "
        "or evidence is missing; small exposure cannot prove health, only catch gross harm.",
    )
    on_deadline: Literal["hold", "rollback", "advance-if-pass"] = Field(
        default="rollback",
        description="What an undecided stage does at max duration. Never advances without a pass.",
    )

    @model_validator(mode="after")
    def _durations(self) -> Stage:
        if self.weight == 0 and self.match is None and self.mirror is None:
            raise ValueError("weight 0 is only for a shadow ('mirror') or A/B ('match') stage")
        if self.mirror is not None and self.weight > 0:
            raise ValueError("a mirror stage takes no live traffic: set 'weight: 0'")
        if self.mirror is not None and round(self.mirror * 100) != self.mirror * 100:
            raise ValueError("'mirror' is a percent in steps of 0.01")
        if self.max_duration is not None and self.max_duration < self.min_duration:
            raise ValueError("'maxDuration' is shorter than 'minDuration'")
        return self


class Hook(SpecModel):
    """A lifecycle webhook with Flagger's hook points and request body ({name, namespace, phase, metadata})."""

    name: str
    type: Literal[
        "pre-rollout",
        "rollout",
        "confirm-rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
        "post-rollout",
        "rollback",
        "event",
    ]
    url: str
    timeout: Duration = Field(default=10.0, gt=0)
    retries: int = Field(default=0, ge=0, le=10)
    metadata: dict[str, str] = Field(default_factory=dict)


class Scoring(SpecModel):
    """Score thresholds for the `kayenta` and `keptn` modes (percent)."""

    pass_score: float = Field(default=90.0, ge=0, le=100)
    marginal_score: float = Field(
        default=75.0, ge=0, le=100, description="Kayenta 'marginal' / Keptn 'warning'."
    )


class Notify(SpecModel):
    name: str
    url: str = Field(description="Webhook URL receiving a JSON payload per transition.")
    format: Literal["json", "slack", "teams"] = "json"
    severity: Literal["info", "warning", "critical"] = "info"


class RoutingRef(SpecModel):
    """The routing resource the gate owns and patches."""

    kind: Literal["gateway-api", "istio", "smi", "nginx", "nop"]
    name: str
    namespace: str | None = Field(default=None, description="Default: the Gate's own namespace.")
    canary_backend: str
    stable_backend: str
    host: str | None = Field(
        default=None,
        description="Istio: split between two subsets of this host; the backends name DestinationRule subsets.",
    )
    fight_limit: int = Field(
        default=3,
        ge=0,
        description="Looks in a row that may find the weights changed by another writer and restore them; at the "
        "next one gatekeeper stops restoring, holds for a human and names that writer (its field manager).",
    )


# Routing kinds with A/B match rules and with traffic mirroring (gatekeeper/routing: RuleMatch, Mirroring,
# NginxRouter.set_match); the spec may not import routing, so the table is kept here and tested against it.
# No routing: the controller records decisions on its in-memory router, which has both.
_MATCH_KINDS = frozenset({"gateway-api", "istio", "nginx", "nop"})
_MIRROR_KINDS = frozenset({"gateway-api", "istio", "nop"})


class GateSpec(SpecModel):
    """A gate. Field names in YAML are camelCase; see `gatekeeper schema` for the JSON Schema."""

    api_version: Literal["gatekeeper.dev/v1alpha1"] = "gatekeeper.dev/v1alpha1"
    kind: Literal["Gate"] = "Gate"
    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    description: str = ""
    args: list[Arg] = Field(default_factory=list)
    source: SourceSettings = Field(default_factory=SourceSettings)
    scopes: Scopes
    interval: Duration = Field(default=30.0, gt=0, description="How often the gate looks.")
    alpha: float = Field(
        default=0.01, gt=0, lt=0.5, description="Overall P(false alarm) however often it looks."
    )
    mode: Literal["sequential", "fixed", "kayenta", "keptn"] = "sequential"
    scoring: Scoring = Field(default_factory=Scoring)
    dry_run: bool = Field(default=False, description="Whole-gate dry run: evaluate, record, show, never act.")
    stages: list[Stage] = Field(default_factory=list)
    max_weight: float | None = Field(
        default=None, gt=0, le=100, description="Flagger shorthand: with stepWeight(s)."
    )
    step_weight: float | None = Field(default=None, gt=0, le=100, description="Flagger shorthand for stages.")
    step_weights: list[float] | None = Field(default=None, description="Flagger shorthand for stages.")
    progress_deadline: Duration | None = Field(
        default=None,
        description="progressDeadlineSeconds (Argo Rollouts, Flagger): a stage still undecided this long after its "
        "minimum duration (or a resume) takes its onDeadline action, missing evidence holds for a human; a "
        "routing change still failing this long pages the owners. Also the deadline of an unanswered gating hook.",
    )
    hooks: list[Hook] = Field(default_factory=list)
    revert_on_deletion: bool = Field(
        default=False,
        description="Flagger's revertOnDeletion: deleting the Gate mid-rollout first reverts its route (only "
        "while the rollback window is open; a finished, halted or past-window rollout is left as it is). "
        "The controller holds a finalizer for it.",
    )
    signals: list[Signal] = Field(min_length=1)
    owners: list[str] = Field(default_factory=list, description="Who is paged when a stage halts.")
    runbook: str | None = Field(default=None, description="Reconciliation routine / runbook reference.")
    forward_fix: str | None = Field(
        default=None, description="What to do instead of reverting past the window."
    )
    notify: list[Notify] = Field(default_factory=list)
    routing: RoutingRef | None = None
    side_effects: list[str] = Field(
        default_factory=list,
        description="Counter selectors of state created under the canary (orders, inventory writes, callbacks).",
    )
    outage_budget: Duration = Field(
        default=300.0, description="How long missing evidence holds before the stage policy acts."
    )
    consecutive_error_limit: int = Field(default=4, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _expand_step_weights(cls, data: object) -> object:
        """Flagger's `maxWeight` + `stepWeight` / `stepWeights` as a shorthand for `stages`."""
        if not isinstance(data, dict):
            return data
        step, steps = (
            data.get("stepWeight", data.get("step_weight")),
            data.get("stepWeights", data.get("step_weights")),
        )
        if step is None and steps is None:
            if not data.get("stages"):
                data = {**data, "stages": [{"weight": 100}]}
            return data
        if data.get("stages"):
            raise ValueError("give either 'stages' or the 'stepWeight(s)' shorthand, not both")
        top = data.get("maxWeight", data.get("max_weight")) or 100
        if steps is not None:
            weights = [w for w in steps if isinstance(w, int | float) and w <= top]
        else:
            if not isinstance(step, int | float) or step <= 0:
                raise ValueError("'stepWeight' must be a positive number")
            weights, w = [], float(step)
            while w <= float(top) + 1e-9:
                weights.append(w)
                w += float(step)
        return {**data, "stages": [{"weight": w} for w in weights]}

    @model_validator(mode="after")
    def _checks(self) -> GateSpec:
        names = [s.name for s in self.signals]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"signal names must be unique; repeated: {', '.join(dup)}")
        if not self.stages:
            raise ValueError("no stages: give 'stages' or a non-empty 'stepWeights'")
        if self.max_weight is not None and any(s.weight > self.max_weight for s in self.stages):
            raise ValueError(f"a stage weight is above maxWeight ({self.max_weight:g})")
        weights = [s.weight for s in self.stages]
        if weights != sorted(weights):
            raise ValueError(f"stage weights must not decrease: {weights}")
        if not any(not s.dry_run for s in self.signals):
            raise ValueError("every signal is dryRun: at least one signal must vote")
        kind = self.routing.kind if self.routing is not None else None
        for i, st in enumerate(self.stages, 1):
            if st.match is not None and kind is not None and kind not in _MATCH_KINDS:
                raise ValueError(
                    f"stage {i} has 'match' but routing kind {kind or 'none'} cannot route by header or cookie; "
                    f"use one of: {', '.join(sorted(k for k in _MATCH_KINDS if k))}"
                )
            if st.mirror is not None and kind is not None and kind not in _MIRROR_KINDS:
                raise ValueError(
                    f"stage {i} has 'mirror' but routing kind {kind or 'none'} cannot mirror traffic; "
                    f"use one of: {', '.join(sorted(k for k in _MIRROR_KINDS if k))}"
                )
        return self

    def signal(self, name: str) -> Signal:
        for s in self.signals:
            if s.name == name:
                return s
        raise KeyError(name)
