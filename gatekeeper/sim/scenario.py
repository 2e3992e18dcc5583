"""Synthetic canary scenarios with known ground truth, shaped like a real scrape of a real exporter.

``canary_scenario`` simulates two arms (``track="canary"`` and ``track="baseline"``) of one ``service`` and
returns the series a Prometheus would hold after scraping them every ``step_seconds`` over a window that ends at
``end_ms`` (given by the caller: nothing here reads the clock), plus the true event counts per arm:

* ``http_requests_total{service, track, code, job, instance}``: cumulative counters, codes ``200`` and ``500``.
  Like ``prometheus_client`` and promhttp, a code's series exists only from the first scrape after that code
  first happened, so an arm without errors has no ``code="500"`` series at all.
* ``http_request_duration_seconds_bucket{..., le}`` with ``_sum`` and ``_count`` (labels service, track, job,
  instance): every request is observed once, latencies drawn from a lognormal per arm.

Every arm's process starts at the window start (counters at 0), so the counter value at the last scrape is
the number of events reported: ``ArmTruth.requests``/``errors`` are exact for a raw query at
``last_sample_ms``. Draws are Poisson (requests per step), binomial (errors) and lognormal (latency) from a
numpy generator seeded per (seed, arm, replica), so changing one arm never changes the other's numbers.

Options: the canary goes dark at ``canary_stops_at_ms`` (optionally ending its series with staleness markers,
as a scrape of a vanished target does), is absent altogether, or restarts (counter reset) at ``reset_at_ms``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gatekeeper.sim.remote_write import STALE_MARKER, Series

__all__ = ["DEFAULT_BUCKETS", "ArmProfile", "ArmTruth", "Scenario", "canary_scenario"]

#: prometheus_client's default histogram buckets (seconds); ``+Inf`` is added.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
TRACKS = ("baseline", "canary")


@dataclass(frozen=True)
class ArmProfile:
    """Traffic of one arm: request rate, error probability, lognormal latency, replica count."""

    requests_per_second: float = 20.0
    error_ratio: float = 0.01
    latency_median_seconds: float = 0.1
    latency_sigma: float = 0.5
    replicas: int = 1

    def __post_init__(self) -> None:
        checks = {
            "requests_per_second": self.requests_per_second >= 0,
            "error_ratio": 0 <= self.error_ratio <= 1,
            "latency_median_seconds": self.latency_median_seconds > 0,
            "latency_sigma": self.latency_sigma >= 0,
            "replicas": self.replicas >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"ArmProfile.{name}={getattr(self, name)!r} is out of range")


@dataclass(frozen=True)
class ArmTruth:
    """What one arm reported, summed over replicas (exact integers except ``latency_sum``)."""

    track: str
    requests: int
    errors: int
    latency_buckets: Mapping[str, int]  # le label value -> cumulative count, "+Inf" included
    latency_sum: float
    first_sample_ms: int
    last_sample_ms: int
    #: what ``increase(http_request_duration_seconds_count[last-first])`` evaluated at ``last_sample_ms`` gives
    #: exactly: events after each replica's first sample (increase() cannot see the first sample's own value).
    requests_after_first_sample: int
    restarts: int = 0

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else math.nan


@dataclass(frozen=True)
class Scenario:
    """Series ready for ``RemoteWriteClient.write`` and the ground truth per reporting arm."""

    service: str
    start_ms: int
    end_ms: int
    step_ms: int
    series: tuple[Series, ...]
    truth: Mapping[str, ArmTruth] = field(default_factory=dict)  # only arms that reported at least once

    @property
    def sample_count(self) -> int:
        return sum(len(s.samples) for s in self.series)


def _le(bound: float) -> str:
    """``le`` label text as prometheus_client writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


@dataclass(frozen=True)
class _Replica:
    """Per-scrape cumulative values of one process (after resets) and where its series exist."""

    times: np.ndarray  # scrape timestamps (ms) this replica reported
    ok: np.ndarray
    errors: np.ndarray
    buckets: np.ndarray  # shape (scrapes, len(bounds)), cumulative over le
    latency_sum: np.ndarray
    step_requests: np.ndarray
    restarted: np.ndarray  # bool per scrape: the process restarted during the step before it


def _simulate(
    rng: np.random.Generator, *, profile: ArmProfile, times: np.ndarray, step_s: float, bounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-step events: requests, errors, bucket counts (non-cumulative over le), latency sums."""
    lam = profile.requests_per_second / profile.replicas * step_s
    requests = rng.poisson(lam, size=times.size)
    errors = rng.binomial(requests, profile.error_ratio)
    latencies = rng.lognormal(math.log(profile.latency_median_seconds), profile.latency_sigma, requests.sum())
    step_of = np.repeat(np.arange(times.size), requests)
    bucket_of = np.searchsorted(bounds, latencies, side="left")  # le is inclusive: x <= bound
    counts = np.zeros((times.size, bounds.size), dtype=np.int64)
    np.add.at(counts, (step_of, bucket_of), 1)
    sums = np.bincount(step_of, weights=latencies, minlength=times.size)
    return requests, errors, counts, sums


def _cumulative(values: np.ndarray, restarted: np.ndarray) -> np.ndarray:
    """Cumulative sum along axis 0 that starts again from the step's own value where ``restarted``."""
    out = np.cumsum(values, axis=0)
    for idx in np.flatnonzero(restarted):
        out[idx:] -= out[idx - 1] if idx > 0 else 0
    return out


def _emit(
    base: dict[str, str],
    name: str,
    times: np.ndarray,
    values: np.ndarray,
    exists: np.ndarray,
    stale_at: int | None,
) -> Series | None:
    keep = exists.astype(bool)
    if not keep.any():
        return None
    samples = [(int(t), float(v)) for t, v in zip(times[keep], values[keep], strict=True)]
    if stale_at is not None:
        samples.append((stale_at, STALE_MARKER))
    return Series(labels={"__name__": name, **base}, samples=samples)


def canary_scenario(
    *,
    service: str,
    end_ms: int,
    duration_seconds: float = 1800,
    step_seconds: float = 15,
    canary: ArmProfile | None = None,
    baseline: ArmProfile | None = None,
    seed: int = 0,
    canary_absent: bool = False,
    canary_stops_at_ms: int | None = None,
    stale_markers: bool = False,
    reset_at_ms: int | None = None,
    reset_track: str = "canary",
    buckets: tuple[float, ...] = DEFAULT_BUCKETS,
) -> Scenario:
    """Simulate both arms over ``(end_ms - duration, end_ms]``, one scrape every ``step_seconds``.

    ``canary_stops_at_ms``: the canary's last scrape is the last one at or before this time (the baseline goes
    on); with ``stale_markers`` its series end with a staleness marker at the next scrape time.
    ``reset_at_ms``: replica 0 of ``reset_track`` restarts, so its counters start again from 0 at the first
    scrape at or after this time (the series that had no event since the restart are missing for a while).
    """
    step_ms = round(step_seconds * 1000)
    n = int(duration_seconds * 1000 // step_ms)
    if step_ms <= 0 or n < 1:
        raise ValueError("duration_seconds must cover at least one step_seconds > 0")
    if reset_track not in TRACKS:
        raise ValueError(f"reset_track={reset_track!r}; use one of {TRACKS}")
    start_ms = end_ms - n * step_ms
    times = start_ms + step_ms * np.arange(1, n + 1, dtype=np.int64)
    bounds = np.array([*sorted(buckets), math.inf])
    profiles = {"canary": canary or ArmProfile(), "baseline": baseline or ArmProfile()}
    series: list[Series] = []
    truth: dict[str, ArmTruth] = {}
    for arm_index, track in enumerate(TRACKS):
        if track == "canary" and canary_absent:
            continue
        reported = (
            times <= canary_stops_at_ms if track == "canary" and canary_stops_at_ms is not None else None
        )
        stale_at = None
        if reported is not None and stale_markers and not reported.all():
            stale_at = int(times[np.argmin(reported)])
        replicas = []
        for replica in range(profiles[track].replicas):
            rng = np.random.default_rng([seed, arm_index, replica])
            requests, errors, counts, sums = _simulate(
                rng, profile=profiles[track], times=times, step_s=step_ms / 1000, bounds=bounds
            )
            restarted = np.zeros(n, dtype=bool)
            if reset_at_ms is not None and track == reset_track and replica == 0 and times[-1] >= reset_at_ms:
                restarted[int(np.argmax(times >= reset_at_ms))] = True
            keep = reported if reported is not None else np.ones(n, dtype=bool)
            replicas.append(
                _Replica(
                    times=times[keep],
                    ok=_cumulative(requests - errors, restarted)[keep],
                    errors=_cumulative(errors, restarted)[keep],
                    buckets=np.cumsum(_cumulative(counts, restarted), axis=1)[keep],
                    latency_sum=_cumulative(sums, restarted)[keep],
                    step_requests=requests[keep],
                    restarted=restarted[keep],
                )
            )
            labels = {
                "service": service,
                "track": track,
                "job": "shop",
                "instance": f"{service}-{track}-{replica}",
            }
            series.extend(_replica_series(replicas[-1], labels=labels, bounds=bounds, stale_at=stale_at))
        arm_truth = _truth(track, replicas, bounds)
        if arm_truth is not None:
            truth[track] = arm_truth
    return Scenario(
        service=service, start_ms=start_ms, end_ms=end_ms, step_ms=step_ms, series=tuple(series), truth=truth
    )


def _replica_series(
    r: _Replica, *, labels: dict[str, str], bounds: np.ndarray, stale_at: int | None
) -> list[Series]:
    """Series of one replica; a series exists from the first scrape after its first event since (re)start."""
    since_start = _exists_since_start(r.step_requests, r.restarted)
    out = [
        _emit({**labels, "code": "200"}, "http_requests_total", r.times, r.ok, r.ok > 0, stale_at),
        _emit({**labels, "code": "500"}, "http_requests_total", r.times, r.errors, r.errors > 0, stale_at),
        _emit(labels, "http_request_duration_seconds_sum", r.times, r.latency_sum, since_start, stale_at),
        _emit(
            labels, "http_request_duration_seconds_count", r.times, r.buckets[:, -1], since_start, stale_at
        ),
    ]
    for i, bound in enumerate(bounds):
        out.append(
            _emit(
                {**labels, "le": _le(bound)},
                "http_request_duration_seconds_bucket",
                r.times,
                r.buckets[:, i],
                since_start,
                stale_at,
            )
        )
    return [s for s in out if s is not None]


def _exists_since_start(step_requests: np.ndarray, restarted: np.ndarray) -> np.ndarray:
    """True where the process (since its last restart) has observed at least one request."""
    return _cumulative(step_requests, restarted) > 0


def _truth(track: str, replicas: list[_Replica], bounds: np.ndarray) -> ArmTruth | None:
    reported = [
        r for r in replicas if r.times.size and _exists_since_start(r.step_requests, r.restarted).any()
    ]
    if not reported:
        return None
    requests = sum(int(r.step_requests.sum()) for r in reported)
    errors = 0
    buckets = np.zeros(bounds.size, dtype=np.int64)
    latency_sum = 0.0
    after_first = 0
    for r in reported:
        ends = np.append(
            np.flatnonzero(r.restarted) - 1, r.times.size - 1
        )  # last scrape of each process life
        ends = ends[ends >= 0]
        errors += int(r.errors[ends].sum())
        buckets += r.buckets[ends].sum(axis=0)
        latency_sum += float(r.latency_sum[ends].sum())
        first = int(np.argmax(_exists_since_start(r.step_requests, r.restarted)))
        after_first += int(r.step_requests[first + 1 :].sum())
    return ArmTruth(
        track=track,
        requests=requests,
        errors=errors,
        latency_buckets={_le(b): int(c) for b, c in zip(bounds, buckets, strict=True)},
        latency_sum=latency_sum,
        first_sample_ms=int(min(r.times[0] for r in reported)),
        last_sample_ms=int(max(r.times[-1] for r in reported)),
        requests_after_first_sample=after_first,
        restarts=sum(int(r.restarted.sum()) for r in reported),
    )
