"""sources: where evidence comes from. Prometheus (PromQL over HTTP) and traces (OTLP intake, Tempo/Jaeger).

Sources return data, never decisions. Every outbound call has a timeout. Errors are grouped by what the caller
should do: `SourceUnavailable` (retry later; hold the stage; `IncompleteAnswer` when the backend itself says its
answer may be partial) and `QueryRejected` (fix the query or credentials).

Must not: import stats, signals, judge or anything above; read the wall clock for decisions.
"""

from gatekeeper.sources.base import (
    IncompleteAnswer,
    InvariantCounts,
    MetricsSource,
    QueryRejected,
    QueryResult,
    Series,
    SourceError,
    SourceUnavailable,
    TraceSource,
)

__all__ = [
    "IncompleteAnswer",
    "InvariantCounts",
    "MetricsSource",
    "QueryRejected",
    "QueryResult",
    "Series",
    "SourceError",
    "SourceUnavailable",
    "TraceSource",
]
