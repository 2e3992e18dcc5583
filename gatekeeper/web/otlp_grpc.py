"""OTLP/gRPC trace intake (`opentelemetry.proto.collector.trace.v1.TraceService/Export`) into the same span sink
as `/v1/traces`: the OpenTelemetry Collector's load-balancing exporter speaks only OTLP/gRPC to its backends.

    with GrpcIntake(store, auth=auth, host="127.0.0.1", port=4317) as server:   # server.port: the bound port
        ...

Answers as the OTLP/gRPC spec asks: OK with `partial_success` when the store dropped spans; UNAUTHENTICATED
without a bearer token in the `authorization` metadata, PERMISSION_DENIED with a wrong one; UNAVAILABLE (which
senders retry with backoff) when `max_inflight` exports are being ingested or the store is full; INVALID_ARGUMENT
when the sink fails on a request (never a crash, never an endless retry). Messages larger than
`max_message_bytes` are refused by gRPC itself (RESOURCE_EXHAUSTED). TLS and mutual TLS follow `auth.tls`.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from gatekeeper.web.auth import Auth
from gatekeeper.web.otlp import DEFAULT_MAX_DECODED, DEFAULT_MAX_INFLIGHT, SpanSink

__all__ = ["GrpcIntake"]


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: SpanSink, *, auth: Auth, max_inflight: int) -> None:
        self.sink, self.auth = sink, auth
        self._full = getattr(sink, "full", None)
        self._slots = threading.BoundedSemaphore(max_inflight)
        self.max_inflight = max_inflight

    def Export(self, request: Any, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        metadata = dict(context.invocation_metadata())
        code = self.auth.status(metadata.get("authorization"))
        if code == 401:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "send authorization: Bearer <token>")
        if code == 403:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "the bearer token is not valid")
        if self._full is not None and self._full():
            context.abort(grpc.StatusCode.UNAVAILABLE, "the intake is full: retry later")
        if not self._slots.acquire(timeout=5.0):
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.max_inflight} exports in flight: retry later")
        try:
            result = self.sink.ingest(request)
        except Exception as e:  # a sink bug must not crash the server or make the sender retry forever
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"request could not be ingested ({type(e).__name__})"
            )
        finally:
            self._slots.release()
        reply = ExportTraceServiceResponse()
        if result.rejected:
            reply.partial_success.rejected_spans = result.rejected
            reply.partial_success.error_message = result.message
        return reply


class GrpcIntake:
    """The gRPC intake in its own threads; a context manager that starts and stops it."""

    def __init__(
        self,
        sink: SpanSink,
        *,
        auth: Auth | None = None,
        host: str = "127.0.0.1",
        port: int = 4317,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_message_bytes: int = DEFAULT_MAX_DECODED,
        workers: int = 8,
    ) -> None:
        self.auth = auth or Auth.none()
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
            options=[("grpc.max_receive_message_length", max_message_bytes), ("grpc.so_reuseport", 0)],
            maximum_concurrent_rpcs=4 * workers,
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceService(sink, auth=self.auth, max_inflight=max_inflight), self._server
        )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        tls = self.auth.tls
        if tls is None:
            self.port = self._server.add_insecure_port(address)
        else:
            with open(tls.keyfile, "rb") as k, open(tls.certfile, "rb") as c:
                pair = (k.read(), c.read())
            root = open(tls.client_ca, "rb").read() if tls.client_ca else None  # noqa: SIM115
            creds = grpc.ssl_server_credentials(
                [pair], root_certificates=root, require_client_auth=tls.mutual
            )
            self.port = self._server.add_secure_port(address, creds)
        if not self.port:
            raise OSError(f"cannot listen for OTLP/gRPC on {address}")

    def __enter__(self) -> GrpcIntake:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=5).wait(10)
