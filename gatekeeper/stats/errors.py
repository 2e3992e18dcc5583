"""The one error the statistics room raises: bad input, named by argument, with the fix.

Everything here is pure, so there is nothing to retry: a `StatsInputError` means the caller passed numbers
that cannot be tested (negative counts, a share outside [0, 1], arrays of different lengths, an empty arm).
It subclasses `ValueError` so generic callers still catch it.
"""

from __future__ import annotations


class StatsInputError(ValueError):
    """Bad input to a statistics function.

    `field` names the argument; `fix` says what the caller should do. The message reads as one sentence.
    """

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem}; {fix}")
