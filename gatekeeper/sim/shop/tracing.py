"""The shop's traces through the real OpenTelemetry SDK: one `TracerProvider` per service and version (resource
`service.name`, `service.version` = baseline|canary), batch processors, and an exporter per provider (the OTLP/HTTP
exporter to the intake in tests and the demo).

Spans carry explicit start and end times in sim time. Trace and span IDs come from a seeded `IdGenerator` (the
SDK's extension point for IDs), so a seeded run emits the same traces. The queue is raised above the SDK's 2,048
default and the shop flushes every quarter queue, so the SDK never drops spans silently (docs/testing.md), unless
`backpressure=False` asks for exactly that loss.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from gatekeeper.sim.shop.model import TRACKS, ShopNames

__all__ = ["CheckoutTrace", "SeededIds", "ShopTracer", "otlp_exporter_factory"]


class SeededIds(IdGenerator):
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


@dataclass(frozen=True)
class CheckoutTrace:
    """One checkout as spans: times in unix seconds; `order` is None (never called), "ok" or "error"."""

    start: float
    latency: float
    failed: bool  # the checkout answered 500 before calling anything
    duplicate: bool
    order: str | None
    key: str  # idempotency key


def otlp_exporter_factory(
    endpoint: str, *, gzip: bool = False, timeout: float = 10.0
) -> Callable[[], SpanExporter]:
    """A factory of real OTLP/HTTP exporters to `endpoint` (`http://127.0.0.1:PORT/v1/traces`)."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    def make() -> SpanExporter:
        compression = Compression.Gzip if gzip else Compression.NoCompression
        return OTLPSpanExporter(endpoint=endpoint, timeout=timeout, compression=compression)

    return make


def _ns(t: float) -> int:
    return round(t * 1e9)


class ShopTracer:
    def __init__(
        self,
        *,
        exporter_factory: Callable[[], SpanExporter],
        names: ShopNames,
        seed: int,
        queue_size: int = 65_536,
        backpressure: bool = True,
        schedule_delay_ms: float = 100.0,
        versions: dict[str, str] | None = None,
    ) -> None:
        versions = versions or {track: track for track in TRACKS}  # the `service.version` value per track
        self._providers: list[TracerProvider] = []
        self._tracers: dict[tuple[str, str], trace.Tracer] = {}
        self._since_flush = 0
        # flushing every quarter queue keeps the SDK from dropping; without it a burst overflows the queue and the
        # SDK drops spans silently ("Queue full"), as a real service under load does
        self._flush_every = max(queue_size // 4, 1) if backpressure else None
        for role in ("storefront", "payment", "orders", "inventory"):
            service = getattr(names, role)
            for track in TRACKS:
                provider = TracerProvider(
                    resource=Resource(
                        {
                            "service.name": service,
                            "service.version": versions[track],
                            "deployment.environment.name": "sim",
                        }
                    ),
                    id_generator=SeededIds(zlib.crc32(f"{seed}/{role}/{track}".encode())),
                )
                provider.add_span_processor(
                    BatchSpanProcessor(
                        exporter_factory(),
                        max_queue_size=queue_size,
                        schedule_delay_millis=schedule_delay_ms,
                        max_export_batch_size=min(512, queue_size),
                    )
                )
                self._providers.append(provider)
                self._tracers[(role, track)] = provider.get_tracer("gatekeeper.sim.shop")

    def checkout(self, track: str, c: CheckoutTrace) -> int:
        """Emit one checkout trace; returns the number of spans."""
        t = self._tracers
        end = c.start + c.latency
        root = t[("storefront", track)].start_span(
            "checkout",
            kind=SpanKind.SERVER,
            start_time=_ns(c.start),
            attributes={"http.response.status_code": 500 if c.failed else 200},
        )
        ctx = trace.set_span_in_context(root)
        n = 1
        if not c.failed:
            cursor = c.start + 0.05 * c.latency
            for role, name, share, status, attrs in self._children(c):
                child_end = cursor + share * c.latency
                span = t[(role, track)].start_span(
                    name, context=ctx, kind=SpanKind.SERVER, start_time=_ns(cursor), attributes=attrs
                )
                if status == "error":
                    span.set_status(Status(StatusCode.ERROR, "order service rejected the order"))
                span.end(end_time=_ns(child_end))
                cursor = child_end
                n += 1
        else:
            root.set_status(Status(StatusCode.ERROR, "checkout failed"))
        root.end(end_time=_ns(end))
        self._since_flush += n
        if self._flush_every is not None and self._since_flush >= self._flush_every:
            self.flush()
        return n

    @staticmethod
    def _children(c: CheckoutTrace) -> list[tuple[str, str, float, str, dict[str, str]]]:
        pay = {"idempotency.key": c.key}
        out = [
            ("inventory", "inventory.reserve", 0.15, "ok", {}),
            ("payment", "payment.capture", 0.4, "ok", pay),
        ]
        if c.duplicate:
            out.append(("payment", "payment.capture", 0.1, "ok", pay))
        if c.order is not None:
            out.append(("orders", "order.create", 0.2, c.order, {}))
        return out

    def flush(self, timeout_ms: int = 30_000) -> bool:
        """Block until every provider exported what it holds; False if one timed out."""
        self._since_flush = 0
        return all(p.force_flush(timeout_ms) for p in self._providers)

    def shutdown(self) -> None:
        for p in self._providers:
            p.shutdown()
