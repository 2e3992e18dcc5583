"""OTLP/HTTP trace intake: `POST /v1/traces` into a span sink (the `TraceStore`).

Answers as the OTLP/HTTP spec asks, in the request's own encoding (protobuf or JSON):

* 200 with an `ExportTraceServiceResponse`; `partial_success.rejected_spans` and its message when the store
  dropped spans (caps, late spans), so the sender's logs show the loss too;
* 400 malformed body, 413 body over the size limit (before or after gzip), 415 unsupported media type or
  content encoding: a `google.rpc.Status` with a short reason (plain text when the media type is unknown);
* 401/403 without or with a wrong bearer token (`auth`, see `gatekeeper.web.auth`);
* 429 with `Retry-After` when `max_inflight` requests are being read and ingested and a further one waited
  `queue_seconds` for a slot (its body not yet read), and 503
  with `Retry-After` when the store is full (`sink.full()`): a flooding writer is told to back off (OTLP
  senders retry both with backoff) instead of the intake buffering without bound. Memory stays bounded by
  `max_inflight` × `max_decoded_bytes` plus the store's caps.

The process never crashes on input: decoding errors are typed, and anything unexpected in the sink becomes
a 400 with the exception's type, never a 5xx (a 5xx makes OTLP senders retry the same poison body forever).

    app = Starlette(routes=otlp_routes(store))          # or: create_otlp_app(store)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from gatekeeper.sources.traces.decode import (
    PROTOBUF,
    PayloadError,
    PayloadTooLarge,
    UnsupportedMedia,
    decode_body,
    media_type,
)
from gatekeeper.web.auth import Auth
from gatekeeper.web.serving import BackgroundServer

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_DECODED",
    "DEFAULT_MAX_INFLIGHT",
    "IntakeServer",
    "SpanSink",
    "create_otlp_app",
    "otlp_routes",
]

DEFAULT_MAX_BODY = 4 * 1024 * 1024  # on the wire
DEFAULT_MAX_DECODED = 16 * 1024 * 1024  # after gzip
DEFAULT_MAX_INFLIGHT = 8  # requests read, decoded and ingested at once
DEFAULT_QUEUE_SECONDS = 5.0  # how long an export waits for a slot before 429
RETRY_AFTER_SECONDS = 1

_GRPC_CODE = {400: 3, 413: 8, 415: 3, 429: 8, 503: 14}  # INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE


class _IngestResult(Protocol):
    rejected: int

    @property
    def message(self) -> str: ...


class SpanSink(Protocol):
    """What the route hands decoded requests to. A sink may also have `full() -> bool` (then 503 when full)."""

    def ingest(self, request: Any) -> _IngestResult: ...


def otlp_routes(
    sink: SpanSink,
    *,
    path: str = "/v1/traces",
    max_body_bytes: int = DEFAULT_MAX_BODY,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    queue_seconds: float = DEFAULT_QUEUE_SECONDS,
    auth: Auth | None = None,
) -> list[Route]:
    """The intake route, for mounting in any Starlette app. An export waits up to `queue_seconds` for one of
    the `max_inflight` slots (before its body is read), then gets 429."""
    if max_body_bytes < 1 or max_decoded_bytes < 1 or max_inflight < 1:
        raise ValueError("max_body_bytes, max_decoded_bytes and max_inflight must be positive")
    auth = auth or Auth.none()
    full = getattr(sink, "full", None)
    slots = asyncio.Semaphore(max_inflight)

    async def export(request: Request) -> Response:
        if (denied := auth.deny(request)) is not None:
            return denied
        content_type = request.headers.get("content-type")
        try:
            media = media_type(content_type)
        except UnsupportedMedia as e:
            return Response(str(e) + "\n", status_code=415, media_type="text/plain")
        if full is not None and full():
            return _busy(media, 503, "the intake is full (open-span or open-trace cap): retry later")
        try:
            await asyncio.wait_for(slots.acquire(), timeout=queue_seconds)
        except TimeoutError:
            return _busy(media, 429, f"{max_inflight} exports in flight for {queue_seconds:g}s: retry later")
        try:
            return await _export(request, media, content_type)
        finally:
            slots.release()

    async def _export(request: Request, media: str, content_type: str | None) -> Response:
        try:
            body = await _read_body(request, max_body_bytes)
            decoded = await run_in_threadpool(  # CPU work off the event loop the dashboard may share
                decode_body,
                body,
                content_type=content_type,
                content_encoding=request.headers.get("content-encoding"),
                limit=max_decoded_bytes,
            )
        except PayloadError as e:
            return _status(media, e.status, str(e))
        except ClientDisconnect:
            return _status(media, 400, "client disconnected before the body was read")
        try:
            result = await run_in_threadpool(sink.ingest, decoded)
        except Exception as e:  # a sink bug must not become a 5xx retry loop for the sender
            return _status(media, 400, f"request could not be ingested ({type(e).__name__})")
        return _success(media, rejected=result.rejected, message=result.message)

    return [Route(path, export, methods=["POST"])]


def create_otlp_app(sink: SpanSink, **options: Any) -> Starlette:
    """A Starlette app serving only the intake (tests, or a dedicated intake process)."""
    return Starlette(routes=otlp_routes(sink, **options))


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {int(declared)} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _success(media: str, *, rejected: int, message: str) -> Response:
    reply = ExportTraceServiceResponse()
    if rejected:
        reply.partial_success.rejected_spans = rejected
        reply.partial_success.error_message = message
    if media == PROTOBUF:
        return Response(reply.SerializeToString(), status_code=200, media_type=PROTOBUF)
    body: dict[str, Any] = {}
    if rejected:
        body["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
    return Response(json.dumps(body), status_code=200, media_type="application/json")


def _busy(media: str, status: int, message: str) -> Response:
    response = _status(media, status, message)
    response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
    return response


def _status(media: str, status: int, message: str) -> Response:
    """A `google.rpc.Status` (code, message) in the request's encoding."""
    code = _GRPC_CODE.get(status, 3)
    if media == PROTOBUF:
        text = message.encode("utf-8")
        body = b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
        return Response(body, status_code=status, media_type=PROTOBUF)
    return Response(
        json.dumps({"code": code, "message": message}), status_code=status, media_type="application/json"
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


class IntakeServer(BackgroundServer):
    """The intake served in a background thread: `with IntakeServer(create_otlp_app(store)) as server:`."""

    def __init__(self, app: Any, **options: Any) -> None:
        super().__init__(app, name="otlp-intake", **options)
