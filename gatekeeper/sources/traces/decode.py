"""Decode an OTLP/HTTP trace export body into the official `ExportTraceServiceRequest` message.

Accepted: `application/x-protobuf` (also `application/protobuf`) and `application/json`, each optionally
`Content-Encoding: gzip`. OTLP/JSON differs from the protobuf JSON mapping in one place that matters:
trace and span IDs are hex strings, not base64 (OTLP spec, "JSON Protobuf Encoding"), so they are converted
before `google.protobuf.json_format.ParseDict`; unknown JSON fields are ignored as the spec requires.

Every failure is one of three typed errors, grouped by what the sender should do (the HTTP status in brackets):

    PayloadError
    ├── UnsupportedMedia   [415] send protobuf or JSON, gzip or identity
    ├── PayloadTooLarge    [413] send smaller batches (the limit applies after decompression too)
    └── MalformedPayload   [400] the body does not decode; the message says where

Nothing else escapes: any library error while decoding becomes `MalformedPayload` (a fuzzed body must never
crash the intake).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = [
    "JSON",
    "PROTOBUF",
    "MalformedPayload",
    "PayloadError",
    "PayloadTooLarge",
    "UnsupportedMedia",
    "decode_body",
    "decompress",
    "media_type",
    "parse_json",
    "parse_protobuf",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA = {"application/x-protobuf": PROTOBUF, "application/protobuf": PROTOBUF, "application/json": JSON}
_ID_FIELDS = {"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"}


class PayloadError(ValueError):
    """A body the intake cannot use. `status` is the HTTP status to answer with."""

    status = 400


class UnsupportedMedia(PayloadError):
    status = 415


class PayloadTooLarge(PayloadError):
    status = 413


class MalformedPayload(PayloadError):
    status = 400


def media_type(content_type: str | None) -> str:
    """The canonical media type (`PROTOBUF` or `JSON`) of a Content-Type header, parameters ignored."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        return _MEDIA[base]
    except KeyError:
        shown = base or "(none)"
        raise UnsupportedMedia(
            f"unsupported Content-Type {shown}: send application/x-protobuf or application/json"
        ) from None


def decompress(body: bytes, *, encoding: str | None, limit: int) -> bytes:
    """Undo `Content-Encoding` (gzip or identity) without ever holding more than `limit` + 1 bytes."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        if len(body) > limit:
            raise PayloadTooLarge(f"body of {len(body)} bytes exceeds the limit of {limit} bytes")
        return body
    if enc != "gzip":
        raise UnsupportedMedia(f"unsupported Content-Encoding {enc}: send gzip or identity")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as e:
        raise MalformedPayload(f"gzip body does not inflate ({e})") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"gzip body inflates beyond the limit of {limit} bytes")
    if not inflater.eof:
        raise MalformedPayload("gzip body is truncated")
    return out


def parse_protobuf(data: bytes) -> ExportTraceServiceRequest:
    try:
        return ExportTraceServiceRequest.FromString(data)
    except Exception as e:  # DecodeError, recursion limits in upb, anything a fuzzed body provokes
        raise MalformedPayload(f"not an ExportTraceServiceRequest protobuf ({type(e).__name__})") from None


def parse_json(data: bytes) -> ExportTraceServiceRequest:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise MalformedPayload(f"not JSON ({str(e)[:80]})") from None
    if not isinstance(doc, dict):
        raise MalformedPayload("JSON body must be an object with 'resourceSpans'")
    _hex_ids_to_base64(doc)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except RecursionError:
        raise MalformedPayload("JSON body is nested too deeply") from None
    except Exception as e:  # json_format.ParseError, TypeError/ValueError on odd values
        raise MalformedPayload(f"not an OTLP/JSON ExportTraceServiceRequest ({str(e)[:120]})") from None
    return request


def decode_body(
    body: bytes, *, content_type: str | None, content_encoding: str | None, limit: int
) -> ExportTraceServiceRequest:
    """Media type check, bounded decompression, then protobuf or OTLP/JSON decoding."""
    media = media_type(content_type)
    data = decompress(body, encoding=content_encoding, limit=limit)
    return parse_protobuf(data) if media == PROTOBUF else parse_json(data)


# -- OTLP/JSON ids ------------------------------------------------------------------------------------------
def _hex_ids_to_base64(doc: dict[str, Any]) -> None:
    for rs in _items(doc, "resourceSpans", "resource_spans"):
        for ss in _items(rs, "scopeSpans", "scope_spans"):
            for span in _items(ss, "spans"):
                _convert_ids(span, "span")
                for link in _items(span, "links"):
                    _convert_ids(link, "link")


def _items(node: Any, *keys: str) -> list[Any]:
    if not isinstance(node, dict):
        return []
    for key in keys:
        value = node.get(key)
        if isinstance(value, list):
            return value
    return []


def _convert_ids(node: Any, what: str) -> None:
    if not isinstance(node, dict):
        return
    for key in _ID_FIELDS.intersection(node):
        value = node[key]
        if not isinstance(value, str):
            raise MalformedPayload(f"{what} {key} must be a hex string, got {type(value).__name__}")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise MalformedPayload(
                f"{what} {key} {value[:40]!r} is not hex (OTLP/JSON ids are hex)"
            ) from None
        node[key] = base64.b64encode(raw).decode("ascii")


def trace_id_hex(raw: bytes) -> str:
    """A trace id as the 32-digit lowercase hex that trace UIs and OTLP/JSON use."""
    return binascii.hexlify(raw).decode("ascii")
