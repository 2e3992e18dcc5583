"""spec: the gate language.

Pydantic models of a gate (extra fields forbidden), defaults in one place, durations and label scopes as value
types, argument substitution, YAML loading with line numbers for every error, and JSON-schema generation.

Must not: import any other gatekeeper room, do I/O beyond reading the file it is asked to load, or read the clock.
"""

from gatekeeper.spec.durations import Duration, parse_duration
from gatekeeper.spec.load import SpecError, SpecIssue, load_gate, load_gate_text, parse_args
from gatekeeper.spec.models import (
    Arg,
    Authority,
    GateSpec,
    Hook,
    Notify,
    PrometheusSettings,
    RollbackWindow,
    RoutingRef,
    Scopes,
    SourceSettings,
    Stage,
    TraceSettings,
)
from gatekeeper.spec.outcome import Effect, SignalOutcome, Verdict
from gatekeeper.spec.signals import (
    Direction,
    DriftSignal,
    DuplicateSignal,
    HealthSignal,
    InvariantSignal,
    LatencySignal,
    RatioSignal,
    RetrySignal,
    Signal,
    ThresholdSignal,
)

__all__ = [
    "Arg",
    "Authority",
    "Direction",
    "DriftSignal",
    "DuplicateSignal",
    "Duration",
    "Effect",
    "GateSpec",
    "HealthSignal",
    "Hook",
    "InvariantSignal",
    "LatencySignal",
    "Notify",
    "PrometheusSettings",
    "RatioSignal",
    "RetrySignal",
    "RollbackWindow",
    "RoutingRef",
    "Scopes",
    "Signal",
    "SignalOutcome",
    "SourceSettings",
    "SpecError",
    "SpecIssue",
    "Stage",
    "ThresholdSignal",
    "TraceSettings",
    "Verdict",
    "load_gate",
    "load_gate_text",
    "parse_args",
    "parse_duration",
]
