"""sim.shop: a synthetic shop (storefront, payment, orders/OMS, inventory) in a baseline and a canary version.

Seeded, reproducible diurnal traffic in simulated time (`SimClock`, paced or as fast as possible), split by a
`weight_fn()` canary percentage; real Prometheus metrics through a sink (the remote-write client) with explicit
timestamps; real traces through the OpenTelemetry SDK's OTLP/HTTP exporter; per-version faults (`Behavior`):
partial checkouts, drift, duplicates, retry storms, latency shift, errors, going dark.

Must not: decide anything (it is the world the gate watches), or be imported by spec, sources, stats,
signals, judge, routing or controller.
"""

from gatekeeper.sim.shop.clock import SimClock
from gatekeeper.sim.shop.metrics import BUCKETS, MetricsSink
from gatekeeper.sim.shop.model import TRACKS, Behavior, ShopNames, Traffic, Truth
from gatekeeper.sim.shop.shop import COUNTERS, Shop
from gatekeeper.sim.shop.tracing import otlp_exporter_factory

__all__ = [
    "BUCKETS",
    "COUNTERS",
    "TRACKS",
    "Behavior",
    "MetricsSink",
    "Shop",
    "ShopNames",
    "SimClock",
    "Traffic",
    "Truth",
    "otlp_exporter_factory",
]
