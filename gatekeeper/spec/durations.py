"""Durations written the Prometheus / Kubernetes way: `30s`, `5m`, `1h30m`, `250ms`, or a bare number of seconds."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Return seconds for `value`; raise ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("a duration must be like '30s', '5m', '1h30m' or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(text) or pos == 0:
                raise ValueError(
                    f"'{value}' is not a duration: write it like '30s', '5m', '1h30m' or '250ms'"
                ) from None
    else:
        raise ValueError("a duration must be like '30s', '5m', '1h30m' or a number of seconds")
    if seconds < 0:
        raise ValueError(f"duration '{value}' is negative: durations are zero or more")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact Prometheus form of `seconds` (e.g. 90 -> '1m30s'); used in rendered PromQL."""
    if seconds <= 0:
        return "0s"
    ms = round(seconds * 1000)
    out = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
"""Seconds as a float inside the model; accepts '5m' etc. on input and writes the short form back."""
