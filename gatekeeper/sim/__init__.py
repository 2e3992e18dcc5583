"""sim: a synthetic shop and the real components it runs against (Prometheus, kube-apiserver) for the demo,
tests and benchmarks; never imported by the decision core.

It may start processes and open ports (127.0.0.1 only, stopped by PID); scenario times arrive as arguments,
never from the wall clock. spec, sources, stats, signals, judge, routing and controller must not import it.
"""

__all__: list[str] = []
