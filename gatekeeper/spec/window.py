"""The evidence window a look judges: a value type every room passes down (windows arrive as arguments)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Window"]


@dataclass(frozen=True)
class Window:
    """Evidence window [start, end] in unix seconds, cut into steps of `step` seconds (end aligned)."""

    start: float
    end: float
    step: float

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"window end ({self.end}) must be after its start ({self.start})")
        if self.step <= 0:
            raise ValueError("window step must be positive")

    @property
    def length(self) -> float:
        return self.end - self.start

    @property
    def first_point(self) -> float:
        """First step end: a range query from here to `end` yields increases covering the whole window."""
        n = max(round(self.length / self.step), 1)
        return self.end - (n - 1) * self.step

    def to_dict(self) -> dict[str, float]:
        """As a judgement records it."""
        return {"start": self.start, "end": self.end, "step": self.step}
