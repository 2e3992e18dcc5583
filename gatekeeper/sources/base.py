"""The metrics-source protocol and the data it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class SourceError(Exception):
    """A source could not answer. `query` is the exact query that failed.

    SourceError
    ├── SourceUnavailable   connection refused, timeout, 5xx after retries: transient, hold and retry
    │   └── IncompleteAnswer  the backend answered but said its answer may be partial (warnings, isPartial):
    │                         missing evidence, never judged; hold and retry
    └── QueryRejected       4xx: a bad query, a bad credential; retrying the same query will not help
    """

    def __init__(self, message: str, *, query: str = "", url: str = "") -> None:
        super().__init__(message)
        self.query = query
        self.url = url


class SourceUnavailable(SourceError):
    retryable = True


class IncompleteAnswer(SourceUnavailable):
    """The backend said its answer may be missing data: Thanos/Cortex/Mimir partial-response `warnings`,
    VictoriaMetrics `isPartial`. `warnings` holds what it said."""

    def __init__(
        self, message: str, *, query: str = "", url: str = "", warnings: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, query=query, url=url)
        self.warnings = warnings


class QueryRejected(SourceError):
    retryable = False


@dataclass(frozen=True)
class Series:
    """One time series: labels and aligned arrays of unix timestamps (s) and values."""

    labels: dict[str, str]
    timestamps: np.ndarray
    values: np.ndarray

    @property
    def newest(self) -> float | None:
        return float(self.timestamps[-1]) if len(self.timestamps) else None


@dataclass(frozen=True)
class QueryResult:
    """What a query returned, with the query itself kept as evidence."""

    query: str
    series: tuple[Series, ...] = ()
    elapsed: float = 0.0
    warnings: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.series

    def scalar(self) -> float | None:
        """The single value of a one-series instant result; None when empty."""
        if not self.series or not len(self.series[0].values):
            return None
        return float(self.series[0].values[-1])


class MetricsSource(Protocol):
    """PromQL over HTTP. Implementations must time out and raise `SourceError` subclasses only."""

    def instant(self, query: str, *, at: float) -> QueryResult: ...

    def range(self, query: str, *, start: float, end: float, step: float) -> QueryResult: ...


@dataclass(frozen=True)
class InvariantCounts:
    """Per-interval trace-invariant counts for one arm: traces checked, traces violating the rule."""

    timestamps: np.ndarray
    checked: np.ndarray
    violations: np.ndarray
    examples: tuple[str, ...] = ()  # trace IDs (hex) of violating traces, newest first
    dropped_spans: int = 0
    newest_span: float | None = None  # unix time of the newest span seen for this arm


class TraceSource(Protocol):
    """Trace-derived counts per arm. The OTLP intake store implements it; so may a Tempo/Jaeger adapter."""

    def invariant_counts(
        self, signal: Any, *, arm: str, start: float, end: float, step: float
    ) -> InvariantCounts: ...
