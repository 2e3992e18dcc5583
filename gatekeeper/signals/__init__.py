"""signals: turn one signal definition into canary and baseline evidence, and test it.

Each kind renders its queries (canary and baseline differ only in scope), fetches per-step data through a
source, and hands the numbers to `stats`. The result is a `SignalOutcome` with a verdict, a reason, the
effect with its bounds, and the exact queries.

Must not: read the wall clock (windows arrive as arguments), act on anything, or import judge and above.
"""

from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.registry import load_kinds, measure_signal, render_queries

__all__ = ["EvalContext", "load_kinds", "measure_signal", "render_queries"]
