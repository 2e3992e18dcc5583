"""sources.traces: gatekeeper's own OTLP trace intake, as a `TraceSource`.

Decodes OTLP/HTTP export bodies (protobuf or JSON, gzip or not) with the official OpenTelemetry protobuf
definitions, assembles spans into traces in a bounded store (caps with counted, visible drops), judges each
completed trace against the watched trace rules (`InvariantSignal`), and keeps per-version counts per time
bucket in span time. `TraceStore.invariant_counts` is the `TraceSource` the invariant signal reads.

Must not: read the wall clock (the store's clock is injected), decide verdicts (counts only), grow without
bound on any input, or import signals, stats or anything above sources.
"""

from gatekeeper.sources.traces.decode import (
    MalformedPayload,
    PayloadError,
    PayloadTooLarge,
    UnsupportedMedia,
    decode_body,
)
from gatekeeper.sources.traces.metrics import IntakeCollector
from gatekeeper.sources.traces.rules import Rule
from gatekeeper.sources.traces.store import IngestResult, IntakeStats, StoreLimits, TraceStore

__all__ = [
    "IngestResult",
    "IntakeCollector",
    "IntakeStats",
    "MalformedPayload",
    "PayloadError",
    "PayloadTooLarge",
    "Rule",
    "StoreLimits",
    "TraceStore",
    "UnsupportedMedia",
    "decode_body",
]
