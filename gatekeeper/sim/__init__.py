"""sim: a synthetic shop and the real components it runs against (Prometheus, kube-apiserver) for the demo,
tests and benchmarks; never imported by the decision core.

It may start processes, open ports and read the wall clock at its edges (tests pass times in explicitly);
spec, sources, stats, signals, judge, routing and controller must not import it.
"""
