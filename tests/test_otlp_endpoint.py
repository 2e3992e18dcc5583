"""POST /v1/traces over real HTTP (uvicorn on 127.0.0.1): the OpenTelemetry SDK's own OTLP/HTTP exporter, the
status codes of the OTLP/HTTP spec, and fuzzed bodies that must never crash the intake or grow it unbounded."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import set_span_in_context

from gatekeeper.sim.shop import SimClock
from gatekeeper.sources.traces import StoreLimits, TraceStore
from gatekeeper.web.otlp import IntakeServer, create_otlp_app
from tests.test_otlp_decode import a_request, as_otlp_json
from tests.test_otlp_store import RULE, T0, checkout, request

PROTOBUF = {"Content-Type": "application/x-protobuf"}
MB = 1024 * 1024
FUZZ_LIMITS = StoreLimits(max_open_traces=50, max_open_spans=200, max_spans_per_trace=20, max_versions=4)


@pytest.fixture
def intake() -> Iterator[tuple[IntakeServer, TraceStore, SimClock]]:
    clock = SimClock(T0)
    store = TraceStore(clock=clock, rules=[RULE])
    with IntakeServer(
        create_otlp_app(store, max_body_bytes=256 * 1024, max_decoded_bytes=1024 * 1024)
    ) as server:
        yield server, store, clock


def emit_with_the_sdk(url: str, *, version: str, traces: int, partial_every: int, gzip_: bool) -> None:
    """Checkout traces through the real SDK and OTLP/HTTP exporter, with explicit (past) span times."""
    exporter = OTLPSpanExporter(
        endpoint=url, compression=Compression.Gzip if gzip_ else Compression.NoCompression
    )
    provider = TracerProvider(resource=Resource({"service.name": "storefront", "service.version": version}))
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=10_000, max_export_batch_size=256)
    )
    tracer = provider.get_tracer("test")
    for i in range(traces):
        start = int((T0 + i * 0.1) * 1e9)
        root = tracer.start_span("checkout", start_time=start)
        ctx = set_span_in_context(root)
        tracer.start_span("payment.capture", context=ctx, start_time=start + 1000).end(end_time=start + 2000)
        if i % partial_every:
            order = tracer.start_span("order.create", context=ctx, start_time=start + 3000)
            order.end(end_time=start + 4000)
        root.end(end_time=start + 5000)
    assert provider.force_flush(10_000)
    provider.shutdown()


@pytest.mark.parametrize("gzip_", [False, True], ids=["protobuf", "protobuf+gzip"])
def test_the_sdk_exporter_delivers_every_span_and_the_store_counts_them_exactly(intake, gzip_):
    server, store, clock = intake
    emit_with_the_sdk(f"{server.url}/v1/traces", version="canary", traces=300, partial_every=10, gzip_=gzip_)
    emit_with_the_sdk(
        f"{server.url}/v1/traces", version="baseline", traces=200, partial_every=50, gzip_=gzip_
    )
    clock.advance(31)
    c = store.invariant_counts(RULE, arm="canary", start=T0 - 60, end=T0 + 60, step=60)
    b = store.invariant_counts(RULE, arm="baseline", start=T0 - 60, end=T0 + 60, step=60)
    assert (c.checked.sum(), c.violations.sum()) == (300, 30)
    assert (b.checked.sum(), b.violations.sum()) == (200, 4)
    assert store.stats().spans_received == {"canary": 870, "baseline": 596}
    assert c.dropped_spans == b.dropped_spans == 0


def test_a_json_export_gets_a_json_answer(intake):
    server, store, _ = intake
    r = httpx.post(
        f"{server.url}/v1/traces",
        content=as_otlp_json(a_request()),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {}
    assert store.stats().spans_received == {"canary": 1}


def test_dropped_spans_come_back_as_partial_success():
    small = TraceStore(clock=SimClock(T0), limits=StoreLimits(max_open_traces=1))
    with IntakeServer(create_otlp_app(small)) as other:
        body = request(checkout(1, t=T0) + checkout(2, t=T0)).SerializeToString()
        r = httpx.post(f"{other.url}/v1/traces", content=body, headers=PROTOBUF)
    assert r.status_code == 200
    reply = ExportTraceServiceResponse.FromString(r.content)
    assert reply.partial_success.rejected_spans == 3
    assert reply.partial_success.error_message == "3 dropped: open-trace cap"


def rpc_status(content: bytes) -> tuple[int, str]:
    """Decode a google.rpc.Status (code = field 1 varint, message = field 2 string) with the wire format."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fd = descriptor_pb2.FileDescriptorProto(name="status_test.proto", package="t", syntax="proto3")
    msg = fd.message_type.add(name="Status")
    msg.field.add(name="code", number=1, type=5, label=1)
    msg.field.add(name="message", number=2, type=9, label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    status = message_factory.GetMessageClass(pool.FindMessageTypeByName("t.Status")).FromString(content)
    return status.code, status.message


@pytest.mark.parametrize(
    ("headers", "body", "status", "fragment"),
    [
        ({"Content-Type": "text/plain"}, b"hello", 415, "unsupported Content-Type text/plain"),
        ({**PROTOBUF, "Content-Encoding": "br"}, b"x", 415, "unsupported Content-Encoding br"),
        (PROTOBUF, b"\xff\xff\xff", 400, "not an ExportTraceServiceRequest"),
        ({**PROTOBUF, "Content-Encoding": "gzip"}, b"not gzip", 400, "does not inflate"),
        (PROTOBUF, b"\0" * (256 * 1024 + 1), 413, "exceeds the limit"),
        (
            {**PROTOBUF, "Content-Encoding": "gzip"},
            gzip.compress(b"\0" * (8 * 1024 * 1024)),
            413,
            "inflates beyond",
        ),
        ({"Content-Type": "application/json"}, b"{oops", 400, "not JSON"),
    ],
    ids=["media", "encoding", "protobuf", "gzip", "too-large", "gzip-bomb", "json"],
)
def test_bad_bodies_get_the_otlp_status_with_a_short_reason(intake, headers, body, status, fragment):
    server, store, _ = intake
    r = httpx.post(f"{server.url}/v1/traces", content=body, headers=headers)
    assert r.status_code == status
    if r.headers["content-type"].startswith("application/x-protobuf"):
        code, message = rpc_status(r.content)
        assert code in (3, 8) and fragment in message
    elif r.headers["content-type"].startswith("application/json"):
        assert fragment in r.json()["message"]
    else:
        assert fragment in r.text
    assert store.stats().spans_received == {}


def test_a_chunked_body_over_the_limit_is_cut_off(intake):
    server, _, _ = intake

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"\0" * 8192

    r = httpx.post(f"{server.url}/v1/traces", content=chunks(), headers=PROTOBUF)
    assert r.status_code == 413


def test_only_post_is_served(intake):
    server, _, _ = intake
    assert httpx.get(f"{server.url}/v1/traces").status_code == 405


# -- fuzzing -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[str, TraceStore, httpx.Client]]:
    store = TraceStore(clock=SimClock(T0), rules=[RULE], limits=FUZZ_LIMITS)
    with (
        IntakeServer(create_otlp_app(store, max_body_bytes=64 * 1024, max_decoded_bytes=MB)) as server,
        httpx.Client(timeout=10) as client,
    ):
        yield f"{server.url}/v1/traces", store, client


def valid_bodies() -> list[tuple[str, bytes]]:
    req = request(checkout(1, t=T0) + checkout(2, t=T0, order=None))
    req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="k").value.string_value = "v" * 20
    return [("application/x-protobuf", req.SerializeToString()), ("application/json", as_otlp_json(req))]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes, str | None]:
    content_type, body = draw(st.sampled_from(valid_bodies()))
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 64))] * draw(st.integers(1, 20))
    encoding = draw(st.sampled_from([None, "gzip"]))
    out = gzip.compress(bytes(data)) if encoding else bytes(data)
    return content_type, out, encoding


random_bodies = st.tuples(
    st.sampled_from(["application/x-protobuf", "application/json", "application/protobuf", "text/plain", ""]),
    st.one_of(
        st.binary(max_size=2048),
        st.text(max_size=512).map(str.encode),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda c: (
                st.lists(c, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId", "name", "x"]),
                    c,
                    max_size=4,
                )
            ),
            max_leaves=20,
        ).map(lambda d: json.dumps(d).encode()),
    ),
    st.sampled_from([None, "gzip", "identity", "deflate"]),
)


def post_and_check(
    target: tuple[str, TraceStore, httpx.Client], content_type: str, body: bytes, encoding: str | None
) -> None:
    url, store, client = target
    headers = {"Content-Type": content_type} if content_type else {}
    if encoding:
        headers["Content-Encoding"] = encoding
    r = client.post(url, content=body, headers=headers)
    assert r.status_code in (200, 400, 413, 415), (r.status_code, r.text[:200])
    stats = store.stats()
    assert stats.open_traces <= FUZZ_LIMITS.max_open_traces
    assert stats.open_spans <= FUZZ_LIMITS.max_open_spans
    assert len(stats.spans_received) <= FUZZ_LIMITS.max_versions


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_mutated_valid_bodies_never_crash_the_intake(fuzz_target, case):
    post_and_check(fuzz_target, *case)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=random_bodies)
def test_random_bodies_never_crash_the_intake(fuzz_target, case):
    post_and_check(fuzz_target, *case)


def test_the_intake_still_works_and_stays_small_after_the_fuzzing(fuzz_target):
    url, store, client = fuzz_target
    bomb = gzip.compress(b"\0" * (16 * MB))
    tracemalloc.start()
    try:
        for _ in range(3):
            assert (
                client.post(url, content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}).status_code
                == 413
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB  # the 16 MiB bomb was inflated no further than the 1 MiB limit
    before = store.stats().spans_received.get("canary", 0)
    ok = client.post(url, content=valid_bodies()[0][1], headers=PROTOBUF)
    assert ok.status_code == 200
    assert store.stats().spans_received["canary"] == before + 5
