"""judge: classify each signal and aggregate them into one gate verdict with reasons.

Worst-of order PASS < INCONCLUSIVE < NODATA < ERROR < FAIL over voting signals (dry-run signals are shown,
never counted); a failing critical signal is flagged so the controller may act before the stage minimum.
`evaluate_gate` is the one entry point the CLI, replay, the controller and the benchmarks share.

Must not: act, read the wall clock, or import controller and above.
"""

from gatekeeper.judge.aggregate import Judgement, aggregate
from gatekeeper.judge.evaluate import evaluate_gate, signal_alphas

__all__ = ["Judgement", "aggregate", "evaluate_gate", "signal_alphas"]
