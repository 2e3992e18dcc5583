"""The synthetic shop: storefront, payment, orders (the system of record) and inventory, each in a baseline and
a canary version, serving seeded diurnal traffic in simulated time.

    shop = Shop(start=t0, seed=7, canary=Behavior(partial_checkout=0.05), weight_fn=router_weight,
                metrics=RemoteWriteClient(prom.remote_write_url),
                span_exporter=otlp_exporter_factory("http://127.0.0.1:4318/v1/traces"))
    shop.run_until(t0 + 1800)
    shop.flush()

Every tick (default 1 sim second) each version draws its requests (Poisson at the diurnal rate times its share
of `weight_fn()` percent), splits them into browsing and checkouts, and draws every outcome from its own seeded
generator (changing the canary never changes the baseline's numbers). Metrics are scraped every
`scrape_interval` at explicit sim times and written to the sink every `push_interval`, in time order. Checkout
traces go through the OTel SDK with explicit span times.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import TracebackType
from typing import Self

import numpy as np
from opentelemetry.sdk.trace.export import SpanExporter

from gatekeeper.sim.shop.clock import SimClock
from gatekeeper.sim.shop.metrics import MetricsSink, Recorder
from gatekeeper.sim.shop.model import TRACKS, Behavior, ShopNames, Traffic, Truth
from gatekeeper.sim.shop.tracing import CheckoutTrace, ShopTracer

__all__ = ["COUNTERS", "Shop"]

# role -> counters the service declares at start-up (so "zero events" is a 0, not a missing series)
COUNTERS = {
    "storefront": (
        "shop_checkouts_total",
        "shop_orders_placed_total",
        "shop_inventory_reserved_total",
        "shop_downstream_retries_total",
        "shop_webhooks_sent_total",
    ),
    "payment": ("payment_captures_total", "payment_processed_total", "payment_duplicate_total"),
    "orders": ("oms_orders_recorded_total",),
    "inventory": ("inventory_decrements_total",),
}


class Shop:
    def __init__(
        self,
        *,
        start: float,
        seed: int = 0,
        clock: SimClock | None = None,
        traffic: Traffic | None = None,
        baseline: Behavior | None = None,
        canary: Behavior | None = None,
        weight_fn: Callable[[], float] = lambda: 50.0,
        metrics: MetricsSink | None = None,
        span_exporter: Callable[[], SpanExporter] | None = None,
        names: ShopNames | None = None,
        tick: float = 1.0,
        scrape_interval: float = 15.0,
        push_interval: float = 300.0,
        span_queue: int = 65_536,
        span_backpressure: bool = True,
        trace_sample_rate: float | dict[str, float] | Callable[[str], float] = 1.0,
        versions: dict[str, str] | None = None,
    ) -> None:
        if not tick > 0 or not scrape_interval >= tick or not push_interval >= scrape_interval:
            raise ValueError("need 0 < tick <= scrape_interval <= push_interval")
        # head sampling per version (a canary at 1% traced fully while the busy baseline is sampled), or a
        # function of the version read at every tick (e.g. a budget of traced checkouts per second)
        if callable(trace_sample_rate):
            self.trace_sample_rate: Callable[[str], float] = trace_sample_rate
        else:
            rates = (
                trace_sample_rate
                if isinstance(trace_sample_rate, dict)
                else dict.fromkeys(TRACKS, trace_sample_rate)
            )
            if set(rates) != set(TRACKS) or not all(0 <= r <= 1 for r in rates.values()):
                raise ValueError(
                    f"trace_sample_rate must be in [0, 1] (or one per track), got {trace_sample_rate!r}"
                )
            self.trace_sample_rate = rates.__getitem__
        self.clock = clock or SimClock(start)
        if self.clock.now() != start:
            self.clock.set(start)
        self.seed = seed
        self.traffic = traffic or Traffic()
        self.behavior = {"baseline": baseline or Behavior(), "canary": canary or Behavior()}
        self.weight_fn = weight_fn
        self.names = names or ShopNames()
        self.tick = tick
        self.scrape_interval = scrape_interval
        self.push_interval = push_interval
        self.truth = {track: Truth() for track in TRACKS}
        self._sink = metrics
        self._recorder = Recorder(job=self.names.job)
        self._rng = {track: np.random.default_rng([seed, i]) for i, track in enumerate(TRACKS)}
        self._tracer = (
            ShopTracer(
                exporter_factory=span_exporter,
                names=self.names,
                seed=seed,
                queue_size=span_queue,
                backpressure=span_backpressure,
                versions=versions,
            )
            if span_exporter is not None
            else None
        )
        self._next_scrape = math.floor(start / scrape_interval) * scrape_interval + scrape_interval
        self._next_push = start + push_interval
        self._checkout_seq = 0
        for track in TRACKS:
            for role, names in COUNTERS.items():
                for name in names:
                    self._recorder.declare(name, service=getattr(self.names, role), track=track)
            for service in self.names.services:
                self._recorder.declare(
                    "http_requests_total", service=service, track=track, labels=(("code", "200"),)
                )
        self._recorder.scrape(start, failing=self._failing(start))  # processes start: declared counters at 0

    # -- driving --------------------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.clock.now()

    def step(self) -> None:
        """Serve one tick of traffic, then scrape and push whatever fell due."""
        t = self.clock.now()
        share = min(max(float(self.weight_fn()) / 100.0, 0.0), 1.0)
        expected = self.traffic.rate(t) * self.tick
        for track, fraction in (("baseline", 1.0 - share), ("canary", share)):
            self._serve(track, t, expected * fraction)
        end = self.clock.advance(self.tick)
        while self._next_scrape <= end + 1e-9:
            self._recorder.scrape(self._next_scrape, failing=self._failing(self._next_scrape))
            self._next_scrape += self.scrape_interval
        if end >= self._next_push:
            self.push()
            self._next_push += self.push_interval * max(
                1, math.ceil((end - self._next_push) / self.push_interval)
            )

    def _failing(self, t: float) -> set[str]:
        return {track for track in TRACKS if self.behavior[track].dark_metrics(t)}

    def run_until(self, t: float) -> None:
        while self.clock.now() + self.tick <= t + 1e-9:
            self.step()

    def push(self) -> None:
        """Write scraped samples to the sink now."""
        series = self._recorder.drain()
        if self._sink is not None and series:
            self._sink.write(series)

    def flush(self) -> None:
        """Push pending samples and block until every span was exported."""
        self.push()
        if self._tracer is not None and not self._tracer.flush():
            raise RuntimeError("span export did not finish within 30 s: is the OTLP intake up?")

    def close(self) -> None:
        self.flush()
        if self._tracer is not None:
            self._tracer.shutdown()
            self._tracer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def metric(self, name: str, *, role: str, track: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        """A counter's current value (NaN when the series does not exist)."""
        return self._recorder.value(name, service=getattr(self.names, role), track=track, labels=labels)

    # -- one version, one tick ------------------------------------------------------------------------------
    def _serve(self, track: str, t: float, expected: float) -> None:
        rng, b, truth, rec, names = (
            self._rng[track],
            self.behavior[track],
            self.truth[track],
            self._recorder,
            self.names,
        )
        n = int(rng.poisson(expected)) if expected > 0 else 0
        if n == 0:
            return
        is_checkout = rng.random(n) < self.traffic.checkout_share
        failed = rng.random(n) < b.error_rate
        median = np.where(is_checkout, b.checkout_latency_median, b.latency_median)
        latency = median * np.exp(b.latency_sigma * rng.standard_normal(n)) + b.latency_shift
        arrivals = t + np.sort(rng.random(n)) * self.tick
        sf = names.storefront
        errors = int(failed.sum())
        rec.inc("http_requests_total", n - errors, service=sf, track=track, labels=(("code", "200"),))
        rec.inc("http_requests_total", errors, service=sf, track=track, labels=(("code", "500"),))
        rec.observe("http_request_duration_seconds", latency, service=sf, track=track)
        truth.requests += n
        truth.errors += errors
        idx = np.flatnonzero(is_checkout)
        if len(idx):
            load = expected / self.tick * self.traffic.checkout_share  # this version's checkouts per second
            self._checkouts(track, idx, failed, latency, arrivals, t, load=load)

    def _checkouts(
        self,
        track: str,
        idx: np.ndarray,
        failed: np.ndarray,
        latency: np.ndarray,
        arrivals: np.ndarray,
        t: float,
        *,
        load: float,
    ) -> None:
        rng, b, truth, rec, names = (
            self._rng[track],
            self.behavior[track],
            self.truth[track],
            self._recorder,
            self.names,
        )
        k = len(idx)
        ok = ~failed[idx]
        partial = ok & (rng.random(k) < b.partial_checkout)
        partial_missing = (
            rng.random(k) < 0.5
        )  # a partial checkout either never calls order.create or ignores its error
        duplicate = ok & (rng.random(k) < b.duplicate_rate)
        placed = ok & ~partial
        drift = b.drift_rate if b.drift_above is None or load > b.drift_above else 0.0
        lost_order = placed & (rng.random(k) < drift)
        lost_reservation = ok & (rng.random(k) < b.inventory_drift_rate)
        retries = rng.poisson(b.retries_per_checkout, k) * ok
        webhooks = rng.poisson(b.webhooks_per_order, k) * placed
        n_ok, n_placed, n_dup = int(ok.sum()), int(placed.sum()), int(duplicate.sum())
        n_recorded, n_decrement = n_placed - int(lost_order.sum()), n_ok - int(lost_reservation.sum())
        n_retries, n_webhooks = int(retries.sum()), int(webhooks.sum())
        sf, pay, oms, inv = names.storefront, names.payment, names.orders, names.inventory
        for name, service, value in (
            ("shop_checkouts_total", sf, k),
            ("shop_inventory_reserved_total", sf, n_ok),
            ("shop_orders_placed_total", sf, n_placed),
            ("shop_downstream_retries_total", sf, n_retries),
            ("shop_webhooks_sent_total", sf, n_webhooks),
            ("payment_captures_total", pay, n_ok),
            ("payment_processed_total", pay, n_ok + n_dup),
            ("payment_duplicate_total", pay, n_dup),
            ("oms_orders_recorded_total", oms, n_recorded),
            ("inventory_decrements_total", inv, n_decrement),
        ):
            rec.inc(name, value, service=service, track=track)
        # every downstream call (and retry: retries hit payment) is a request at that service
        for service, calls in (
            (pay, n_ok + n_dup + n_retries),
            (oms, n_ok - int((partial & partial_missing).sum())),
            (inv, n_ok),
        ):
            rec.inc("http_requests_total", calls, service=service, track=track, labels=(("code", "200"),))
        truth.checkouts += k
        truth.partial_checkouts += int(partial.sum())
        truth.orders_placed += n_placed
        truth.orders_recorded += n_recorded
        truth.reserved += n_ok
        truth.decremented += n_decrement
        truth.captures += n_ok
        truth.processed += n_ok + n_dup
        truth.duplicates += n_dup
        truth.retries += n_retries
        truth.webhooks += n_webhooks
        traced = rng.random(k) < self.trace_sample_rate(
            track
        )  # head sampling, drawn even when nothing is traced
        if self._tracer is None or b.dark_spans(t):
            self._checkout_seq += k
            return
        for j in range(k):
            self._checkout_seq += 1
            if not traced[j]:
                continue
            order = None if partial[j] and partial_missing[j] else ("error" if partial[j] else "ok")
            i = idx[j]
            c = CheckoutTrace(
                start=float(arrivals[i]),
                latency=float(latency[i]),
                failed=bool(failed[i]),
                duplicate=bool(duplicate[j]),
                order=order,
                key=f"{track}-{self._checkout_seq}",
            )
            truth.spans += self._tracer.checkout(track, c)
            truth.traces += 1
            truth.traced_violations += int(bool(partial[j]))
