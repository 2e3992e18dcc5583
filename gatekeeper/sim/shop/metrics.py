"""The shop's Prometheus metrics: counters and histograms per label set, "scraped" at explicit sim times into
samples, and handed to a sink (the remote-write client) in time order.

Like a real exporter scraped by a real Prometheus:
* a counter series exists from its first scrape on; counters a service declares up front start at 0, a
  counter only created on first use (an HTTP `code="500"`) appears when it first happens;
* every target has `up` (1, or 0 while its scrapes fail); when a version's scrapes fail its series end with a
  staleness marker, as Prometheus writes when a target vanishes;
* histograms are cumulative `_bucket{le}` plus `_sum` and `_count`, prometheus_client's default buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from gatekeeper.sim.remote_write import STALE_MARKER, Series

__all__ = ["BUCKETS", "MetricsSink", "Recorder"]

BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_LE = (*tuple(repr(b) for b in BUCKETS), "+Inf")

Labels = tuple[tuple[str, str], ...]


class MetricsSink(Protocol):
    """Where scraped samples go: `RemoteWriteClient` (real Prometheus) or anything with the same `write`."""

    def write(self, series: Iterable[Series]) -> Any: ...


class Recorder:
    def __init__(self, *, job: str) -> None:
        self._job = job
        self._values: dict[Labels, float] = {}  # full label set (with __name__) -> value
        self._track_of: dict[Labels, str] = {}
        self._targets: dict[tuple[str, str], Labels] = {}  # (service, track) -> target labels
        self._samples: dict[Labels, list[tuple[int, float]]] = {}
        self._stale: set[Labels] = set()

    def _target(self, service: str, track: str) -> Labels:
        key = (service, track)
        if key not in self._targets:
            self._targets[key] = (
                ("instance", f"{service}-{track}:8080"),
                ("job", self._job),
                ("service", service),
                ("track", track),
            )
        return self._targets[key]

    def _key(self, name: str, service: str, track: str, extra: Labels) -> Labels:
        key = tuple(sorted((("__name__", name), *self._target(service, track), *extra)))
        if key not in self._values:
            self._values[key] = 0.0
            self._track_of[key] = track
        return key

    def declare(self, name: str, *, service: str, track: str, labels: Labels = ()) -> None:
        """Create a counter at 0 (what a well-instrumented service does at start-up)."""
        self._key(name, service, track, labels)

    def inc(self, name: str, value: float, *, service: str, track: str, labels: Labels = ()) -> None:
        if value:
            self._values[self._key(name, service, track, labels)] += value

    def observe(self, name: str, values: np.ndarray, *, service: str, track: str) -> None:
        """Histogram observations (seconds)."""
        if not len(values):
            return
        idx = np.searchsorted(np.asarray(BUCKETS), values, side="left")  # first bound >= value
        per = np.bincount(idx, minlength=len(_LE))
        cumulative = np.cumsum(per)
        for le, n in zip(
            _LE, cumulative.tolist(), strict=True
        ):  # every bucket exists, as in prometheus_client
            self._values[self._key(f"{name}_bucket", service, track, (("le", le),))] += float(n)
        self.inc(f"{name}_sum", float(values.sum()), service=service, track=track)
        self.inc(f"{name}_count", float(len(values)), service=service, track=track)

    def scrape(self, t: float, *, failing: set[str]) -> None:
        """Record every series at sim time `t`; tracks in `failing` answer up=0 and their series go stale."""
        ms = round(t * 1000)
        for (_service, track), target in self._targets.items():
            up = tuple(sorted((("__name__", "up"), *target)))
            self._samples.setdefault(up, []).append((ms, 0.0 if track in failing else 1.0))
        for key, value in self._values.items():
            if self._track_of[key] in failing:
                if key not in self._stale and key in self._samples:
                    self._samples[key].append((ms, STALE_MARKER))
                    self._stale.add(key)
                continue
            self._stale.discard(key)
            self._samples.setdefault(key, []).append((ms, value))

    def drain(self) -> list[Series]:
        """Samples scraped since the last drain, as remote-write series."""
        out = [Series(labels=dict(key), samples=samples) for key, samples in self._samples.items() if samples]
        self._samples = {key: [] for key in self._samples}
        return out

    def value(self, name: str, *, service: str, track: str, labels: Labels = ()) -> float:
        """Current value of one series (for tests and the demo's truth table)."""
        key = tuple(sorted((("__name__", name), *self._target(service, track), *labels)))
        return self._values.get(key, math.nan)
