"""stats: the statistics room — pure tests that turn canary and baseline numbers into evidence.

Does: fixed-horizon tests (`proportions` exact conditional binomial / Fisher, `mannwhitney` with R's
Hodges–Lehmann interval, `histogram` bucket comparisons and PromQL-style quantiles), anytime-valid
sequential tests (`sequential` "which arm" e-process for count signals with its confidence sequence and
incremental state, `sequential_latency` for histogram buckets and Howard & Ramdas quantile bands),
combination of several signals (`combine`), decisions (`decision`), sample planning (`planning`), the
closed-form Beta-binomial reference (`betabinomial`) and Kayenta's NetflixACAJudge semantics (`kayenta`).

Must not: do I/O, read the clock, log, draw random numbers, or import any other gatekeeper room. Inputs are
arrays and numbers, outputs frozen dataclasses; bad input raises `errors.StatsInputError` naming the
argument and the fix. Only numpy and scipy are imported. Submodules are imported on use, not here, to keep
command-line start-up fast.
"""

__all__ = [
    "betabinomial",
    "combine",
    "decision",
    "errors",
    "histogram",
    "kayenta",
    "mannwhitney",
    "planning",
    "proportions",
    "quantile_band",
    "sequential",
    "sequential_latency",
]
