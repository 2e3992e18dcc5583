"""The metrics source a gate's evidence comes from: its Prometheus-compatible endpoint, with its settings."""

from __future__ import annotations

from collections.abc import Callable

from gatekeeper.sources.base import MetricsSource
from gatekeeper.sources.prometheus import PrometheusSource
from gatekeeper.spec.models import GateSpec, PrometheusSettings

__all__ = ["SourceFactory", "open_prometheus", "prometheus_source"]

#: (the gate's Prometheus settings, the URL to use) -> a source; tests and benchmarks inject their own
SourceFactory = Callable[[PrometheusSettings, str], MetricsSource]


def prometheus_source(settings: PrometheusSettings, url: str) -> MetricsSource:
    """The production metrics source: one Prometheus-compatible endpoint with the gate's timeout and retries."""
    return PrometheusSource(url, timeout=settings.timeout, retries=settings.retries, headers=settings.headers)


def open_prometheus(gate: GateSpec, *, url: str | None = None) -> PrometheusSource:
    """The gate's own Prometheus, or the one at `url` (a command-line override); close it after use."""
    p = gate.source.prometheus
    return PrometheusSource(url or p.url, timeout=p.timeout, retries=p.retries, headers=p.headers)
