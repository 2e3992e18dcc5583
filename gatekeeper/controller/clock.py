"""The gate clock: what "now" is for decisions, and how long a gate waits between looks.

Decisions, stage durations and status times use this clock; leader election does not (a Lease is about real
time between real processes). ``ScaledClock`` runs gate time faster than real time from a chosen origin, so
a test or a demo walks stages of minutes in seconds against data recorded in a real Prometheus.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "ScaledClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds of the gate's time."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of gate time."""
        ...


class SystemClock:
    rate = 1.0  # gate seconds per real second

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


class ScaledClock:
    """Gate time = ``origin + rate * (wall - anchor)``: at wall time ``anchor`` (default: creation) the gate's
    clock reads ``origin`` and runs ``rate`` times faster. Processes given the same origin, anchor and rate
    share one gate time, so a controller that restarts (or a second replica) continues the same timeline."""

    def __init__(
        self,
        *,
        origin: float,
        rate: float,
        anchor: float | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"clock rate must be > 0 (gate seconds per real second), got {rate!r}")
        self.origin, self.rate = float(origin), float(rate)
        self._wall = wall
        self.anchor = wall() if anchor is None else float(anchor)

    def now(self) -> float:
        return self.origin + self.rate * (self._wall() - self.anchor)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.rate)
