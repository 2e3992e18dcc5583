"""Simulated time. The shop advances it; whoever needs "now" in sim time (the trace store, a test) reads it.

`speed=None` runs as fast as the CPU allows (tests); `speed=60` paces it so one real second is one simulated
minute (the demo). Only pacing reads the real monotonic clock and sleeps; both are injectable.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["SimClock"]


class SimClock:
    def __init__(
        self,
        start: float,
        *,
        speed: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0 (simulated seconds per real second) or None, got {speed!r}")
        self._t = float(start)
        self.speed = speed
        self._monotonic = monotonic
        self._sleep = sleep
        self._anchor_sim = self._t
        self._anchor_real = monotonic()

    def now(self) -> float:
        return self._t

    __call__ = now

    def advance(self, seconds: float) -> float:
        """Move simulated time forward; when paced, wait until real time has caught up."""
        if seconds < 0:
            raise ValueError(f"time only moves forward; got {seconds!r} seconds")
        self._t += seconds
        if self.speed is not None:
            due = self._anchor_real + (self._t - self._anchor_sim) / self.speed
            wait = due - self._monotonic()
            if wait > 0:
                self._sleep(wait)
        return self._t

    def set(self, t: float) -> None:
        """Jump to `t` (forward or back) without pacing, e.g. to let a trace store expire open traces."""
        self._t = float(t)
        self._anchor_sim, self._anchor_real = self._t, self._monotonic()
