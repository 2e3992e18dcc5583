"""OTLP/gRPC into the intake (what the OpenTelemetry Collector's load-balancing exporter speaks): the real SDK's
gRPC exporter with its `headers` option, counted exactly; refused without or with a wrong token; the gRPC
status codes senders retry (UNAVAILABLE) when the store is full."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import set_span_in_context

from gatekeeper.sim.shop import SimClock
from gatekeeper.sources.traces import StoreLimits, TraceStore
from gatekeeper.web.auth import Auth
from gatekeeper.web.otlp_grpc import GrpcIntake
from tests.test_otlp_store import RULE, T0, checkout, request
from tests.test_web_auth import pki  # noqa: F401  (the module-scoped certificates fixture)

TOKEN = "grpc-intake-token-0123456789"


def emit(port: int, *, token: str | None, traces: int, missing_every: int) -> bool:
    headers = (("authorization", f"Bearer {token}"),) if token else None
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, headers=headers, timeout=5)
    provider = TracerProvider(resource=Resource({"service.name": "shop", "service.version": "canary"}))
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=10_000, max_export_batch_size=256)
    )
    tracer = provider.get_tracer("grpc-test")
    for i in range(traces):
        start = int((T0 + i * 0.1) * 1e9)
        root = tracer.start_span("checkout", start_time=start)
        ctx = set_span_in_context(root)
        tracer.start_span("payment.capture", context=ctx, start_time=start + 1000).end(end_time=start + 2000)
        if i % missing_every:
            tracer.start_span("order.create", context=ctx, start_time=start + 3000).end(end_time=start + 4000)
        root.end(end_time=start + 5000)
    ok = provider.force_flush(20_000)
    provider.shutdown()
    return ok


def test_the_sdk_grpc_exporter_with_its_headers_is_counted_exactly_and_refused_without() -> None:
    clock = SimClock(T0)
    store = TraceStore(clock=clock, rules=[RULE])
    with GrpcIntake(store, auth=Auth.from_token(TOKEN), port=0) as server:
        assert emit(server.port, token=TOKEN, traces=300, missing_every=10)
        emit(server.port, token=None, traces=5, missing_every=10)
        emit(server.port, token="wrong-token-0123456789", traces=5, missing_every=10)
    clock.advance(31)
    c = store.invariant_counts(RULE, arm="canary", start=T0 - 60, end=T0 + 60, step=60)
    assert (c.checked.sum(), c.violations.sum()) == (300, 30)
    assert store.stats().spans_received == {"canary": 300 * 3 - 30}  # nothing of the refused exports


def test_grpc_status_codes_for_missing_wrong_tokens_and_a_full_store() -> None:
    store = TraceStore(clock=SimClock(T0), rules=[RULE], limits=StoreLimits(max_open_traces=1))
    with (
        GrpcIntake(store, auth=Auth.from_token(TOKEN), port=0) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        export = trace_service_pb2_grpc.TraceServiceStub(channel).Export
        body = request(checkout(1, t=T0))
        for metadata, code in (
            (None, grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", "Bearer nope-nope-nope-nope"),), grpc.StatusCode.PERMISSION_DENIED),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                export(body, metadata=metadata, timeout=5)
            assert refused.value.code() == code
        auth = (("authorization", f"Bearer {TOKEN}"),)
        assert export(body, metadata=auth, timeout=5).partial_success.rejected_spans == 0
        with pytest.raises(grpc.RpcError) as full:  # one open trace is the cap: back off and retry
            export(request(checkout(2, t=T0)), metadata=auth, timeout=5)
        assert full.value.code() == grpc.StatusCode.UNAVAILABLE


def test_grpc_with_mutual_tls_admits_the_sdk_with_a_client_certificate_only(pki) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from opentelemetry.sdk.trace.export import SpanExportResult

    from gatekeeper.web.auth import TLSConfig

    tls = TLSConfig(
        certfile=str(pki / "server.pem"), keyfile=str(pki / "server.key"), client_ca=str(pki / "ca.pem")
    )
    store = TraceStore(clock=SimClock(T0), rules=[RULE])
    ca = (pki / "ca.pem").read_bytes()
    with GrpcIntake(store, auth=Auth.from_token(TOKEN, tls=tls), port=0) as server:

        def export(credentials: grpc.ChannelCredentials) -> SpanExportResult:
            exporter = OTLPSpanExporter(
                endpoint=f"127.0.0.1:{server.port}", credentials=credentials,
                headers=(("authorization", f"Bearer {TOKEN}"),), timeout=3,
            )  # fmt: skip
            provider = TracerProvider(resource=Resource({"service.version": "canary"}))
            span = provider.get_tracer("t").start_span("checkout")
            span.end()
            result = exporter.export([span])  # type: ignore[list-item]
            exporter.shutdown()
            return result

        with_cert = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=(pki / "client.key").read_bytes(),
            certificate_chain=(pki / "client.pem").read_bytes(),
        )
        assert export(with_cert) == SpanExportResult.SUCCESS
        assert export(grpc.ssl_channel_credentials(root_certificates=ca)) == SpanExportResult.FAILURE
    assert store.stats().spans_received == {"canary": 1}
