"""Which `TraceSource` a gate's invariant signals read.

* `source.traces.jaeger: {url, service}` in the gate: its traces from that Jaeger's query API;
* else a trace store in this process (the demo, `gatekeeper serve --traces`), when there is one;
* else the intake replicas' counters in the gate's Prometheus (the chart's intake Deployment).
"""

from __future__ import annotations

import threading
from typing import Any

from gatekeeper.sources.base import MetricsSource, TraceSource
from gatekeeper.sources.traces.prometheus import PrometheusTraceSource

__all__ = ["TraceSources"]


class TraceSources:
    """`for_gate(gate, metrics)`: the trace source for one look (Jaeger clients are kept per URL)."""

    def __init__(self, *, local: TraceSource | None = None) -> None:
        self.local = local
        self._jaeger: dict[tuple[Any, ...], TraceSource] = {}
        self._lock = threading.Lock()

    def for_gate(self, gate: Any, metrics: MetricsSource) -> TraceSource:
        settings = gate.source.traces
        jaeger = getattr(settings, "jaeger", None) if settings is not None else None
        if jaeger is not None:
            from gatekeeper.sources.traces.jaeger import JaegerTraceSource

            key = (jaeger.url, jaeger.service, jaeger.timeout, settings.version_attribute)
            with self._lock:
                if key not in self._jaeger:
                    self._jaeger[key] = JaegerTraceSource(
                        url=jaeger.url,
                        service=jaeger.service,
                        timeout=jaeger.timeout,
                        version_attribute=settings.version_attribute,
                    )
                return self._jaeger[key]
        if self.local is not None:
            return self.local
        return PrometheusTraceSource(metrics)
