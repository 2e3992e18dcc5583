"""OTLP/HTTP bodies: protobuf and OTLP/JSON (hex IDs), gzip or not, and every way a body can be refused."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gatekeeper.sources.traces.decode import (
    MalformedPayload,
    PayloadTooLarge,
    UnsupportedMedia,
    decode_body,
    decompress,
    media_type,
)

# The OTLP/JSON example of the OpenTelemetry protocol repository (open-telemetry/opentelemetry-proto,
# examples/trace.json); its protobuf twin examples/trace.protobuf-text spells the same IDs as bytes:
# trace_id "\x5B\x8E\xFF\xF7\x98\x03\x81\x03\xD2\x69\xB6\x33\x81\x3F\xC6\x0C", span_id "\xEE\xE1\x9B\x7E\xC3\xC1\xB1\x74".
SPEC_EXAMPLE = """{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue":
"my.service"}}]}, "scopeSpans": [{"scope": {"name": "my.library", "version": "1.0.0", "attributes": [{"key":
"my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]}, "spans": [{"traceId":
"5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174", "parentSpanId": "EEE19B7EC3C1B173", "name":
"I'm a server span", "startTimeUnixNano": 1544712660000000000, "endTimeUnixNano": 1544712661000000000, "kind": 2,
"attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}]}]}]}]}"""

MB = 1024 * 1024


def a_request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add(key="service.version")
    kv.value.string_value = "canary"
    span = rs.scope_spans.add().spans.add()
    span.trace_id = bytes(range(1, 17))
    span.span_id = bytes(range(1, 9))
    span.name = "checkout"
    span.start_time_unix_nano, span.end_time_unix_nano = 1_700_000_000_000_000_000, 1_700_000_000_500_000_000
    span.status.code = 2
    return req


def as_otlp_json(req: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as a sender writes it: the proto3 JSON mapping, except IDs in hex instead of base64."""
    doc = json_format.MessageToDict(req)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


def test_the_spec_example_json_decodes_to_the_bytes_of_its_protobuf_twin():
    req = decode_body(SPEC_EXAMPLE.encode(), content_type="application/json", content_encoding=None, limit=MB)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == b"\x5b\x8e\xff\xf7\x98\x03\x81\x03\xd2\x69\xb6\x33\x81\x3f\xc6\x0c"
    assert span.span_id == b"\xee\xe1\x9b\x7e\xc3\xc1\xb1\x74"
    assert span.parent_span_id == b"\xee\xe1\x9b\x7e\xc3\xc1\xb1\x73"
    assert span.kind == 2 and span.end_time_unix_nano == 1544712661000000000
    assert req.resource_spans[0].resource.attributes[0].value.string_value == "my.service"


@pytest.mark.parametrize("gzipped", [False, True])
def test_protobuf_and_json_bodies_decode_to_the_same_request(gzipped):
    req = a_request()
    bodies = {
        "application/x-protobuf": req.SerializeToString(),
        "application/json; charset=utf-8": as_otlp_json(req),
    }
    for content_type, body in bodies.items():
        data = gzip.compress(body) if gzipped else body
        got = decode_body(
            data, content_type=content_type, content_encoding="gzip" if gzipped else None, limit=MB
        )
        assert got == req, content_type


def test_unknown_json_fields_are_ignored_as_the_otlp_spec_requires():
    doc = json.loads(as_otlp_json(a_request()))
    doc["somethingNew"] = {"x": 1}
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["futureField"] = 3
    got = decode_body(
        json.dumps(doc).encode(), content_type="application/json", content_encoding=None, limit=MB
    )
    assert got.resource_spans[0].scope_spans[0].spans[0].name == "checkout"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "must be an object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "traceId 'zz' is not hex"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": 7}]}]}]}', "spanId must be a hex string"),
        (b'{"resourceSpans": 5}', "not an OTLP/JSON"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_a_malformed_json_body_is_refused_with_a_reason(body, fragment):
    with pytest.raises(MalformedPayload, match=fragment.replace("(", r"\(")) as info:
        decode_body(body, content_type="application/json", content_encoding=None, limit=MB)
    assert info.value.status == 400


def test_a_malformed_protobuf_body_is_refused():
    body = a_request().SerializeToString()[:-3]
    with pytest.raises(MalformedPayload, match="not an ExportTraceServiceRequest"):
        decode_body(body, content_type="application/x-protobuf", content_encoding=None, limit=MB)


def test_a_gzip_bomb_is_refused_without_inflating_it():
    bomb = gzip.compress(b"\0" * (16 * MB))
    assert len(bomb) < MB // 8
    with pytest.raises(PayloadTooLarge) as info:
        decompress(bomb, encoding="gzip", limit=MB)
    assert info.value.status == 413


def test_truncated_or_fake_gzip_is_malformed():
    body = gzip.compress(a_request().SerializeToString())
    with pytest.raises(MalformedPayload, match="truncated"):
        decompress(body[:-10], encoding="gzip", limit=MB)
    with pytest.raises(MalformedPayload, match="does not inflate"):
        decompress(b"plainly not gzip", encoding="gzip", limit=MB)


def test_an_identity_body_over_the_limit_is_too_large():
    with pytest.raises(PayloadTooLarge, match="exceeds the limit of 10 bytes"):
        decompress(b"x" * 11, encoding=None, limit=10)


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/grpc", "application/jsonx"])
def test_unsupported_media_types_name_the_supported_ones(content_type):
    with pytest.raises(UnsupportedMedia, match="application/x-protobuf or application/json") as info:
        media_type(content_type)
    assert info.value.status == 415


def test_an_unsupported_content_encoding_is_unsupported_media():
    with pytest.raises(UnsupportedMedia, match="Content-Encoding br"):
        decompress(b"...", encoding="br", limit=MB)
