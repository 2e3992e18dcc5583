"""The intake's counters as a `prometheus_client` collector, registered on whatever registry the caller owns.

    registry = CollectorRegistry()
    registry.register(IntakeCollector(store))

Exported: spans received and dropped per version (and drop reason), open traces and spans, completed and
orphaned traces, the newest span per version, and per rule and version the traces checked, violating and
incomplete: the counts that, summed over intake replicas in Prometheus, the controller's invariant signal reads
(`gatekeeper.sources.traces.prometheus`). The `rule` label is `Rule.key` (a hash of the rule itself, so equal
rules in different Gates share it); `gatekeeper_otlp_rule_info` maps it to the signal names and the rule.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gatekeeper.sources.traces.store import TraceStore

__all__ = ["PREFIX", "IntakeCollector"]

PREFIX = "gatekeeper_otlp"


class IntakeCollector(Collector):
    def __init__(self, store: TraceStore, *, prefix: str = PREFIX) -> None:
        self._store = store
        self._prefix = prefix

    def collect(self) -> Iterator[Metric]:
        s = self._store.stats()
        p = self._prefix
        received = CounterMetricFamily(
            f"{p}_spans_received", "Spans received, per version.", labels=["version"]
        )
        for version, n in sorted(s.spans_received.items()):
            received.add_metric([version], n)
        dropped = CounterMetricFamily(
            f"{p}_spans_dropped",
            "Spans dropped by the intake, per version and reason.",
            labels=["version", "reason"],
        )
        for (version, reason), n in sorted(s.spans_dropped.items()):
            dropped.add_metric([version, reason], n)
        completed = CounterMetricFamily(
            f"{p}_traces_completed", "Traces judged, per version.", labels=["version"]
        )
        for version, n in sorted(s.traces_completed.items()):
            completed.add_metric([version], n)
        orphaned = CounterMetricFamily(
            f"{p}_traces_orphaned", "Completed traces whose root span never arrived.", labels=["version"]
        )
        for version, n in sorted(s.traces_orphaned.items()):
            orphaned.add_metric([version], n)
        checked = CounterMetricFamily(
            f"{p}_invariant_checked_traces", "Traces a rule applied to.", labels=["rule", "version"]
        )
        violations = CounterMetricFamily(
            f"{p}_invariant_violations", "Traces violating a rule.", labels=["rule", "version"]
        )
        incomplete = CounterMetricFamily(
            f"{p}_invariant_incomplete_traces",
            "Traces a rule would have judged whose spans did not all reach this intake (root lost, or spans "
            "held by another intake): neither checked nor violating.",
            labels=["rule", "version"],
        )
        for (rule, version), (c, v, i) in sorted(s.rule_counts.items()):
            checked.add_metric([rule, version], c)
            violations.add_metric([rule, version], v)
            incomplete.add_metric([rule, version], i)
        info = GaugeMetricFamily(
            f"{p}_rule_info", "The rules this intake judges: key, signal names, the rule.",
            labels=["rule", "signals", "description"],
        )  # fmt: skip
        for key, (names, description) in sorted(s.rules.items()):
            info.add_metric([key, names, description], 1)
        newest = GaugeMetricFamily(
            f"{p}_newest_span_timestamp_seconds",
            "End time of the newest span, per version.",
            labels=["version"],
        )
        for version, t in sorted(s.newest_span.items()):
            newest.add_metric([version], t)
        yield from (received, dropped, completed, orphaned, checked, violations, incomplete, info, newest)
        yield GaugeMetricFamily(f"{p}_open_traces", "Traces being assembled.", value=s.open_traces)
        yield GaugeMetricFamily(
            f"{p}_open_spans", "Spans held in traces being assembled.", value=s.open_spans
        )
        yield GaugeMetricFamily(
            f"{p}_pending_violations", "Violations waiting for the peer intakes' answer.", value=s.pending
        )
