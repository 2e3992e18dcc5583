"""evaluation: gather a gate's evidence over a window and hand it to the judge. One path for every caller.

    judgement = safe_judgement(gate, window=stage_window(now=..., stage_started=..., step=...), stage=1, ...)

`judge_gate` fetches what each scoring mode needs (the sequential signals, each measuring itself through
`gatekeeper.signals`; Kayenta's per-step series; Keptn's per-arm values) and asks `gatekeeper.judge` for the
verdict. `safe_judgement` is the one place where a crash becomes an ERROR judgement with its reason (never a
pass, never a traceback in a shell): the CLI's `evaluate`, `replay`, the dashboard's evaluator, the controller's
looks and the demo all judge through it. `stage_window` is the window of a live look.

Must not: act (routing, status, notifications), read the wall clock (`now` arrives as an argument), or import
controller and above.
"""

from gatekeeper.evaluation.gate import error_judgement, judge_gate, safe_judgement
from gatekeeper.evaluation.sources import SourceFactory, open_prometheus, prometheus_source
from gatekeeper.evaluation.windows import stage_window

__all__ = [
    "SourceFactory",
    "error_judgement",
    "judge_gate",
    "open_prometheus",
    "prometheus_source",
    "safe_judgement",
    "stage_window",
]
