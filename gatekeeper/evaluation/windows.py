"""The evidence window of a live look."""

from __future__ import annotations

import math

from gatekeeper.spec.window import Window

__all__ = ["stage_window"]


def stage_window(*, now: float, stage_started: float, step: float) -> Window:
    """The window a look at `now` judges: from the stage's start to `now`, both floored to the source step, so
    repeated looks within a step query the same grid and a stage is judged on the evidence gathered while its
    split was in place. Never shorter than one step."""
    end = math.floor(now / step) * step
    start = math.floor(stage_started / step) * step
    if end - start < step:
        start = end - step
    return Window(start=start, end=end, step=step)
