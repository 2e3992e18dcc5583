"""The trace store: assemble spans into traces, judge each completed trace against the watched rules, and
keep per-version counts per time bucket. It implements `TraceSource` (see `gatekeeper.sources.base`).

Assembly. Spans are grouped by trace ID. A trace is complete once `completion_timeout` has passed on the
injected clock since its last span arrived; it is then judged and forgotten (only its ID is remembered for a
while, so a span that arrives after the verdict is counted as a late drop instead of starting a bogus trace).
Count buckets use the spans' own times (the root span's end), so the store works the same in compressed
simulated time as in real time; the clock only decides when a trace is complete and which buckets expire.

The version of a trace (canary, baseline, …) is the value of `version_attribute` on its root span's resource
(or on the span itself); when the root never arrived, the first span that carries the attribute decides, and
the trace counts as an orphan (no root = nothing to judge).

Bounds, each with a counted, visible drop (per version and reason, in `stats()` and in `dropped_spans`):
open traces, open spans, spans per trace, distinct versions, count buckets per series. The policy when full is
"refuse the new": traces already being assembled keep their spans; a span that would open a trace beyond the
cap is dropped (after expiring what the clock allows). A dropped span makes the window's counts for its
version unreliable, so the invariant signal answers NODATA for that window instead of a biased verdict.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gatekeeper.sources.base import InvariantCounts
from gatekeeper.sources.traces.buckets import Buckets, step_grid
from gatekeeper.sources.traces.decode import trace_id_hex
from gatekeeper.sources.traces.rules import Rule, TraceView, has_when, judge

__all__ = ["IngestResult", "IntakeStats", "StoreLimits", "TraceStore"]


@dataclass(frozen=True)
class StoreLimits:
    max_open_traces: int = 100_000
    max_open_spans: int = 1_000_000
    max_spans_per_trace: int = 1_000
    max_versions: int = 32
    resolution: float = 1.0  # seconds per count bucket; divide your step by it for exact sums
    retention: float = 6 * 3600.0  # buckets older than clock - retention are pruned
    max_examples: int = 20  # violating trace IDs kept per rule and version

    def __post_init__(self) -> None:
        for name in (
            "max_open_traces",
            "max_open_spans",
            "max_spans_per_trace",
            "max_versions",
            "max_examples",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"StoreLimits.{name} must be >= 1, got {getattr(self, name)}")
        if not self.resolution > 0 or not self.retention > self.resolution:
            raise ValueError("StoreLimits.resolution must be > 0 and retention longer than one resolution")

    @property
    def max_buckets(self) -> int:
        return int(2 * self.retention / self.resolution) + 16


@dataclass(frozen=True)
class IngestResult:
    """What one export did: spans taken, spans dropped, and why (for OTLP partial_success)."""

    accepted: int
    rejected: int
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return ", ".join(f"{n} dropped: {r}" for r, n in sorted(self.reasons.items()))


@dataclass(frozen=True)
class IntakeStats:
    """Cumulative counters for /metrics and the dashboard."""

    spans_received: dict[str, int]  # version -> spans
    spans_dropped: dict[tuple[str, str], int]  # (version, reason) -> spans
    traces_completed: dict[str, int]
    traces_orphaned: dict[str, int]  # completed without a root span
    open_traces: int
    open_spans: int
    # (rule key, version) -> (checked, violations, incomplete): incomplete = traces the rule would have judged
    # whose spans did not all reach this intake (root lost, or spans held by a peer intake)
    rule_counts: dict[tuple[str, str], tuple[int, int, int]]
    rules: dict[str, tuple[str, str]] = field(default_factory=dict)  # rule key -> (signal names, description)
    newest_span: dict[str, float] = field(default_factory=dict)  # version -> newest span end (unix s)
    pending: int = 0  # violations waiting for the peers' answer


_NONE = "(none)"  # version label of spans without the version attribute


class _Open:
    __slots__ = ("last_seen", "root_end", "root_name", "root_version", "spans", "version")

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.root_name: str | None = None
        self.root_end = 0.0
        self.root_version: str | None = None
        self.version: str | None = None
        self.last_seen = 0.0


class _RuleState:
    def __init__(self, name: str, limits: StoreLimits) -> None:
        self.names = {name}
        self.limits = limits
        self.counts: dict[str, Buckets] = {}  # version -> [checked, violations]
        self.examples: dict[str, deque[tuple[float, str]]] = {}
        self.totals: dict[str, list[int]] = {}
        self.lost: dict[str, Buckets] = {}  # version -> spans of rootless traces the rule would have judged

    def lose(self, version: str, t: float, spans: int) -> None:
        if version not in self.lost:
            lim = self.limits
            self.lost[version] = Buckets(resolution=lim.resolution, width=1, max_buckets=lim.max_buckets)
        self.lost[version].add(t, (spans,))
        self._totals(version)[2] += 1

    def _totals(self, version: str) -> list[int]:
        if version not in self.totals:
            self.totals[version] = [0, 0, 0]
        return self.totals[version]

    def record(self, version: str, t: float, violated: bool, trace_id: bytes) -> None:
        if version not in self.counts:
            lim = self.limits
            self.counts[version] = Buckets(resolution=lim.resolution, width=2, max_buckets=lim.max_buckets)
            self.examples[version] = deque(maxlen=lim.max_examples)
        self._totals(version)
        self.counts[version].add(t, (1, 1 if violated else 0))
        totals = self.totals[version]
        totals[0] += 1
        if violated:
            totals[1] += 1
            self.examples[version].append((t, trace_id_hex(trace_id)))


class TraceStore:
    """Bounded span assembly and per-version rule counts. Thread-safe: the intake and the gate share it.

    Args:
        clock: unix seconds now (real or simulated); decides completion and expiry, never bucket times.
        version_attribute: resource (or span) attribute telling versions apart, e.g. `service.version`.
        completion_timeout: seconds after a trace's last span before it is judged.
        rules: invariant signals to watch from the start (more can be watched later with `watch`).
        confirm_violations: hold each violation until `settle` asks the peer intakes whether they hold spans
            of the trace (several intakes behind a trace-ID load balancer): a trace split across intakes is
            then counted as incomplete, never as a violation. Off for a single intake.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        version_attribute: str = "service.version",
        completion_timeout: float = 30.0,
        limits: StoreLimits | None = None,
        rules: tuple[Any, ...] | list[Any] = (),
        confirm_violations: bool = False,
    ) -> None:
        if not completion_timeout > 0:
            raise ValueError(f"completion_timeout must be > 0 seconds, got {completion_timeout!r}")
        self._clock = clock
        self.version_attribute = version_attribute
        self.completion_timeout = float(completion_timeout)
        self.limits = limits or StoreLimits()
        self._lock = threading.Lock()
        self._open: OrderedDict[bytes, _Open] = OrderedDict()
        self._open_spans = 0
        self._done: OrderedDict[bytes, str] = OrderedDict()  # recently completed trace -> version
        self._rules: dict[Rule, _RuleState] = {}
        self._names: dict[str, str] = {}
        lim = self.limits
        self._spans: dict[str, Buckets] = {}  # version -> [spans, newest end]
        self._drops: dict[str, Buckets] = {}  # version -> [dropped spans]
        self._received: dict[str, int] = {}
        self._dropped: dict[tuple[str, str], int] = {}
        self._completed: dict[str, int] = {}
        self._orphaned: dict[str, int] = {}
        self._next_prune = float("-inf")
        self._newest: dict[str, float] = {}
        self._confirm = confirm_violations
        self._suspects: list[tuple[_RuleState, str, float, bytes, int]] = []
        self._bucket_args = {"resolution": lim.resolution, "max_buckets": lim.max_buckets}
        for signal in rules:
            self.watch(signal)

    # -- rules ----------------------------------------------------------------------------------------------
    def watch(self, signal: Any) -> Rule:
        """Start judging completed traces against `signal`'s rule (no effect if already watched)."""
        rule = Rule.of(signal)
        name = getattr(signal, "name", rule.root)
        with self._lock:
            if rule not in self._rules:
                self._rules[rule] = _RuleState(name, self.limits)
            elif len(self._rules[rule].names) < 16:
                self._rules[rule].names.add(name)
        return rule

    # -- intake ---------------------------------------------------------------------------------------------
    def ingest(self, request: Any) -> IngestResult:
        """Judge the traces the clock has completed, then add every span of an `ExportTraceServiceRequest`."""
        attr = self.version_attribute
        accepted = 0
        reasons: dict[str, int] = {}
        with self._lock:
            now = self._clock()
            self._sweep(
                now
            )  # first: a span arriving after its trace's timeout is late, however rarely we sweep
            for rs in request.resource_spans:
                version = _attribute(rs.resource.attributes, attr)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        reason = self._add(span, version, now)
                        if reason is None:
                            accepted += 1
                        else:
                            reasons[reason] = reasons.get(reason, 0) + 1
        return IngestResult(accepted=accepted, rejected=sum(reasons.values()), reasons=reasons)

    def _add(self, span: Any, resource_version: str | None, now: float) -> str | None:
        version = (
            resource_version
            if resource_version is not None
            else _attribute(span.attributes, self.version_attribute)
        )
        label = version if version is not None else _NONE
        end = span.end_time_unix_nano / 1e9 or span.start_time_unix_nano / 1e9
        tid = span.trace_id
        if label not in self._spans:
            if len(self._spans) >= self.limits.max_versions:
                return self._drop(_NONE if version is None else "(other)", end, "too many versions")
            self._spans[label] = Buckets(width=2, keep_max=True, **self._bucket_args)
            self._drops[label] = Buckets(width=1, **self._bucket_args)
        self._received[label] = self._received.get(label, 0) + 1
        if len(tid) != 16 or not any(tid):
            return self._drop(label, end, "invalid trace id")
        trace = self._open.get(tid)
        if trace is None:
            if tid in self._done:
                return self._drop(self._done[tid], end, "late span of a judged trace")
            if len(self._open) >= self.limits.max_open_traces:
                self._sweep(now)
                if len(self._open) >= self.limits.max_open_traces:
                    return self._drop(label, end, "open-trace cap")
            trace = self._open[tid] = _Open()
        else:
            self._open.move_to_end(tid)
        if len(trace.spans) >= 3 * self.limits.max_spans_per_trace:
            return self._drop(label, end, "spans-per-trace cap")
        if self._open_spans >= self.limits.max_open_spans:
            self._sweep(now)
            if self._open_spans >= self.limits.max_open_spans:
                if not trace.spans:
                    del self._open[tid]
                return self._drop(label, end, "open-span cap")
        if not self._spans[label].add(end, (1, end)):
            if not trace.spans:
                del self._open[tid]
            return self._drop(label, end, "time outside retained buckets")
        name = self._names.get(span.name)
        if name is None:
            name = span.name
            if len(self._names) < 10_000:
                self._names[name] = name
        trace.spans += (name, span.status.code, end)
        self._open_spans += 1
        if end > self._newest.get(label, 0.0):
            self._newest[label] = end
        trace.last_seen = now
        if not span.parent_span_id:
            trace.root_name, trace.root_end, trace.root_version = name, end, version
        elif trace.version is None:
            trace.version = version
        return None

    def _drop(self, label: str, t: float, reason: str) -> str:
        key = (label, reason)
        self._dropped[key] = self._dropped.get(key, 0) + 1
        drops = self._drops.get(label)
        if drops is not None:
            drops.add(t, (1,))
        return reason

    def full(self) -> bool:
        """True when the open-span or open-trace cap is reached even after judging what the clock completed: the
        intake then answers 503 so senders back off and retry instead of losing spans to the caps."""
        lim = self.limits
        with self._lock:
            if self._open_spans < lim.max_open_spans and len(self._open) < lim.max_open_traces:
                return False
            self._sweep(self._clock())
            return self._open_spans >= lim.max_open_spans or len(self._open) >= lim.max_open_traces

    # -- completion -----------------------------------------------------------------------------------------
    def sweep(self) -> int:
        """Judge every trace the clock has completed; returns how many."""
        with self._lock:
            return self._sweep(self._clock())

    def _sweep(self, now: float) -> int:
        deadline = now - self.completion_timeout
        done = 0
        while self._open:
            tid, trace = next(iter(self._open.items()))
            if trace.last_seen > deadline:
                break
            self._open.popitem(last=False)
            self._complete(tid, trace)
            done += 1
        if now >= self._next_prune:
            self._prune(now)
        return done

    def _complete(self, tid: bytes, trace: _Open) -> None:
        self._open_spans -= len(trace.spans) // 3
        version = trace.root_version if trace.root_version is not None else trace.version
        label = version if version is not None else _NONE
        self._done[tid] = label
        if len(self._done) > self.limits.max_open_traces:
            self._done.popitem(last=False)
        if trace.root_name is None:
            self._orphaned[label] = self._orphaned.get(label, 0) + 1
            if version is not None:  # spans were lost before the intake (e.g. an SDK queue overflow)
                newest = max(trace.spans[2::3])
                for rule, state in self._rules.items():
                    if has_when(rule, trace.spans):
                        state.lose(version, newest, len(trace.spans) // 3)
            return
        self._completed[label] = self._completed.get(label, 0) + 1
        if version is None:
            return
        view = TraceView(root_name=trace.root_name, spans=trace.spans)
        for rule, state in self._rules.items():
            applies, violated = judge(rule, view)
            if applies and violated and self._confirm:
                self._suspects.append((state, version, trace.root_end, tid, len(trace.spans) // 3))
            elif applies:
                state.record(version, trace.root_end, violated, tid)

    # -- several intakes ------------------------------------------------------------------------------------
    def holds(self, trace_ids: list[bytes]) -> list[bytes]:
        """The trace ids this intake holds or recently judged spans of (a peer's question before it counts a
        violation)."""
        with self._lock:
            return [t for t in trace_ids if t in self._open or t in self._done]

    def settle(self, held_elsewhere: Callable[[list[bytes]], set[bytes]]) -> tuple[int, int]:
        """Count the violations held back by `confirm_violations`: a trace whose spans a peer also holds is
        incomplete, the rest are violations. `held_elsewhere` asks the peers (outside the lock); when it raises,
        nothing can be confirmed and every held violation counts as incomplete (never as a violation).
        Returns (violations, incomplete)."""
        with self._lock:
            self._sweep(self._clock())
            suspects, self._suspects = self._suspects, []
        if not suspects:
            return 0, 0
        try:
            split = held_elsewhere(sorted({s[3] for s in suspects}))
        except Exception:
            split = {s[3] for s in suspects}
        violations = incomplete = 0
        with self._lock:
            for state, version, t, tid, spans in suspects:
                if tid in split:
                    state.lose(version, t, spans)
                    incomplete += 1
                else:
                    state.record(version, t, True, tid)
                    violations += 1
        return violations, incomplete

    def _prune(self, now: float) -> None:
        before = now - self.limits.retention
        for series in (*self._spans.values(), *self._drops.values()):
            series.prune(before)
        for state in self._rules.values():
            for counts in (*state.counts.values(), *state.lost.values()):
                counts.prune(before)
        self._next_prune = now + max(60.0, 60 * self.limits.resolution)

    # -- TraceSource ----------------------------------------------------------------------------------------
    def invariant_counts(
        self, signal: Any, *, arm: str, start: float, end: float, step: float
    ) -> InvariantCounts:
        """Per-step checked traces and violations of `signal`'s rule for the version `arm` (the attribute value).

        A rule not watched before is watched from now on; its counts start empty (the signal says NODATA).
        Traces still being assembled are not counted yet: the newest `completion_timeout` lags.
        `dropped_spans` counts the spans the intake dropped for `arm` in the window, plus the spans of traces the
        rule would have judged whose root never arrived: loss before the intake (an SDK queue overflow drops
        spans silently) that would otherwise turn into false violations.
        """
        rule = self.watch(signal)
        points = step_grid(start, end, step)
        with self._lock:
            self._sweep(self._clock())
            state = self._rules[rule]
            counts = state.counts.get(arm)
            grid = counts.on_grid(points, step) if counts is not None else np.zeros((len(points), 2))
            lo = float(points[0]) - step
            examples = tuple(tid for t, tid in reversed(state.examples.get(arm, ())) if lo <= t < end)
            drops = self._drops.get(arm)
            dropped = int(drops.on_grid(points, step).sum()) if drops is not None else 0
            lost = state.lost.get(arm)
            dropped += int(lost.on_grid(points, step).sum()) if lost is not None else 0
            spans = self._spans.get(arm)
            newest = spans.newest_before(end, 1) if spans is not None else None
        return InvariantCounts(
            timestamps=points,
            checked=grid[:, 0].astype(np.int64),
            violations=grid[:, 1].astype(np.int64),
            examples=examples,
            dropped_spans=dropped,
            newest_span=newest,
        )

    def stats(self) -> IntakeStats:
        with self._lock:
            rule_counts = {
                (rule.key, version): (totals[0], totals[1], totals[2])
                for rule, state in self._rules.items()
                for version, totals in state.totals.items()
            }
            rules = {
                rule.key: (",".join(sorted(state.names)), rule.describe())
                for rule, state in self._rules.items()
            }
            return IntakeStats(
                spans_received=dict(self._received),
                spans_dropped=dict(self._dropped),
                traces_completed=dict(self._completed),
                traces_orphaned=dict(self._orphaned),
                open_traces=len(self._open),
                open_spans=self._open_spans,
                rule_counts=rule_counts,
                rules=rules,
                newest_span=dict(self._newest),
                pending=len(self._suspects),
            )


def _attribute(attributes: Any, key: str) -> str | None:
    """The value of attribute `key` as text (at most 128 characters), None when absent or not a scalar."""
    for kv in attributes:
        if kv.key == key:
            which = kv.value.WhichOneof("value")
            if which is None or which in ("kvlist_value", "array_value"):
                return None
            raw = getattr(kv.value, which)
            return (raw if isinstance(raw, str) else str(raw))[:128]
    return None
