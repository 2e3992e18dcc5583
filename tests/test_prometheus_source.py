"""PrometheusSource on the wire: it asks for uncompressed answers (gzip cost ~35% of a query's CPU on a fast
link) unless the gate's own headers say otherwise, and it sends the gate's headers with every query. Every
result type of the HTTP API is read (scalar and string too, from a real Prometheus), and an answer that is not
shaped like Prometheus' is a typed `SourceError` naming where it went wrong, never a traceback (these bodies
are the inputs the fuzzer, tests/fuzz, found crashing the parser)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.sources import QueryRejected, SourceUnavailable
from gatekeeper.sources.prometheus import PrometheusSource

BODY = json.dumps(
    {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [60, "1"]}]}}
).encode()


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []
    body = BODY

    def do_GET(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_answers_are_asked_uncompressed_with_the_gate_headers(recorder):
    url, seen = recorder
    source = PrometheusSource(url, headers={"X-Scope-OrgID": "shop"})
    try:
        assert source.instant("up", at=60).scalar() == 1.0
    finally:
        source.close()
    assert seen[-1]["accept-encoding"] == "identity"
    assert seen[-1]["x-scope-orgid"] == "shop"


def test_a_gate_behind_a_slow_link_can_ask_for_gzip(recorder):
    url, seen = recorder
    source = PrometheusSource(url, headers={"accept-encoding": "gzip"})
    try:
        source.instant("up", at=60)
    finally:
        source.close()
    assert seen[-1]["accept-encoding"] == "gzip"


def test_a_scalar_answer_is_one_series_without_labels(prometheus):
    source = PrometheusSource(prometheus.url)
    try:
        result = source.instant("scalar(vector(0.5))", at=1_700_000_000)
    finally:
        source.close()
    assert len(result.series) == 1
    assert result.series[0].labels == {}
    assert result.scalar() == 0.5


def test_a_query_that_returns_a_string_is_rejected_as_a_bad_query(prometheus):
    source = PrometheusSource(prometheus.url)
    try:
        with pytest.raises(QueryRejected, match="returns a string"):
            source.instant('"hello"', at=1_700_000_000)
    finally:
        source.close()


def _answer(result: object) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"{}", "without data.result"),
        (b"[]", "without data.result"),
        (b'{"status": "success", "data": null}', "without data.result"),
        (b"<html>login</html>", "not JSON"),
        (b"[" * 5000 + b"]" * 5000, "not JSON"),  # deeper than the JSON decoder's recursion limit
        (_answer({"metric": {}}), "data.result is dict, not a list"),
        (_answer([1, 2]), r"data.result\[0\] is int, not an object"),
        (_answer([{"metric": [["a", "b"]], "value": [1, "1"]}]), r"data.result\[0\].metric"),
        (_answer([{"metric": {"a": 1}, "value": [1, "1"]}]), r"data.result\[0\].metric"),
        (_answer([{"metric": {}, "value": 7}]), r"data.result\[0\].value\[0\]"),
        (_answer([{"metric": {}, "value": [1]}]), r"data.result\[0\].value\[0\]"),
        (_answer([{"metric": {}, "value": [1, "abc"]}]), r"data.result\[0\].value\[0\]"),
        (_answer([{"metric": {}, "value": ["1", "2"]}]), r"data.result\[0\].value\[0\]"),
        (_answer([{"metric": {}, "value": [1e309, "2"]}]), r"data.result\[0\].value\[0\]"),
        # an integer time beyond any float was an OverflowError traceback (found reading the parser)
        (_answer([{"metric": {}, "value": [10**400, "2"]}]), r"data.result\[0\].value\[0\]"),
        (
            _answer([{"metric": {}, "values": [[1, "1"], [2, "1"], [3, "x"]]}]),
            r"data.result\[0\].values\[2\]",
        ),
        (_answer([{"metric": {}, "values": [[1, "1"], [True, "1"]]}]), r"data.result\[0\].values\[1\]"),
    ],
)
def test_an_answer_not_shaped_like_prometheus_is_unavailable_naming_where(recorder, body, where):
    url, _ = recorder
    Recorder.body = body  # the handler class of this test's server reads its body from here
    source = PrometheusSource(url, retries=0)
    try:
        with pytest.raises(SourceUnavailable, match=where):
            source.instant("up", at=60)
    finally:
        source.close()
        Recorder.body = BODY


def test_range_values_that_are_not_a_list_are_named(recorder):
    url, _ = recorder
    Recorder.body = json.dumps(
        {
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {}, "values": {"a": 1}}]},
        }
    ).encode()
    source = PrometheusSource(url, retries=0)
    try:
        with pytest.raises(SourceUnavailable, match=r"data.result\[0\].values is dict"):
            source.range("up", start=0, end=60, step=15)
    finally:
        source.close()
        Recorder.body = BODY


class Partial(BaseHTTPRequestHandler):
    """A querier that answers with data and says it is incomplete, as Thanos/Mimir (warnings) and
    VictoriaMetrics (isPartial) do when a store could not be reached."""

    body: bytes = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(body: dict) -> tuple[ThreadingHTTPServer, str]:
    handler = type("Handler", (Partial,), {"body": json.dumps(body).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


THANOS_PARTIAL = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [60, "1"]}]},
    "warnings": ["No StoreAPIs matched for this query: store 10.0.0.7:10901 unreachable"],
}
VM_PARTIAL = {
    "status": "success",
    "isPartial": True,
    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [60, "1"]}]},
}
WITH_INFO_ONLY = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [60, "1"]}]},
    "infos": ["PromQL info: metric might not be a counter"],
}


@pytest.mark.parametrize(
    ("body", "says"), [(THANOS_PARTIAL, "No StoreAPIs matched"), (VM_PARTIAL, "isPartial")]
)
def test_an_answer_the_backend_calls_partial_is_incomplete_not_data(body, says):
    from gatekeeper.sources.base import IncompleteAnswer

    server, url = _serve(body)
    source = PrometheusSource(url, retries=0)
    try:
        with pytest.raises(IncompleteAnswer, match=says) as err:
            source.instant("up", at=60)
        assert err.value.query == "up"
        with pytest.raises(IncompleteAnswer):
            source.range("up", start=0, end=60, step=60)
    finally:
        source.close()
        server.shutdown()
        server.server_close()


def test_informational_annotations_are_not_incompleteness():
    server, url = _serve(WITH_INFO_ONLY)
    source = PrometheusSource(url, retries=0)
    try:
        assert source.instant("up", at=60).scalar() == 1.0
    finally:
        source.close()
        server.shutdown()
        server.server_close()


def test_a_gate_whose_backend_answers_partially_holds_on_nodata_with_the_backends_words():
    from gatekeeper.evaluation import judge_gate
    from gatekeeper.spec import Verdict, load_gate_text
    from gatekeeper.spec.window import Window

    gate = load_gate_text(
        """
name: partial
scopes: {canary: {track: canary}, baseline: {track: baseline}}
signals:
  - {name: errors, kind: ratio, bad: 'http_requests_total{code="500"}', total: http_requests_total}
  - {name: cpu, kind: threshold, query: 'max(cpu{${selector}})', max: 1}
"""
    )
    server, url = _serve(THANOS_PARTIAL)
    source = PrometheusSource(url, retries=0)
    try:
        judgement = judge_gate(gate, metrics=source, window=Window(start=0, end=600, step=60))
    finally:
        source.close()
        server.shutdown()
        server.server_close()
    assert judgement.verdict == Verdict.NODATA
    for outcome in judgement.signals:
        assert outcome.verdict == Verdict.NODATA
        assert "incomplete" in outcome.reason and "No StoreAPIs matched" in outcome.reason


_ELEMENT = st.one_of(
    st.integers(-(10**400), 10**400), st.floats(), st.booleans(), st.none(),
    st.sampled_from(["1", "2.5", "NaN", "+Inf", "-Inf", "1_0", " 3 ", "x", "", "0x10"]), st.text(max_size=4),
)  # fmt: skip
_PAIR = st.one_of(st.lists(_ELEMENT, min_size=0, max_size=3), st.tuples(_ELEMENT, _ELEMENT), _ELEMENT)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PAIR, max_size=6))
def test_samples_are_read_by_the_documented_rule_whatever_the_shape(pairs):
    """The column-wise reading of a series' samples accepts exactly what this pair-by-pair rule accepts (a
    list of a finite JSON number and a string Python's float() reads) and names the first pair that breaks it."""
    import math

    import numpy as np

    from gatekeeper.sources.prometheus import MalformedAnswer, parse_result

    def ok(p):
        if not (type(p) is list and len(p) == 2 and type(p[0]) in (int, float) and type(p[1]) is str):
            return False
        try:
            float(p[1])
            return math.isfinite(float(p[0]))
        except (ValueError, OverflowError):
            return False

    bad = next((j for j, p in enumerate(pairs) if not ok(p)), None)
    if bad is not None:
        with pytest.raises(MalformedAnswer, match=rf"values\[{bad}\]"):
            parse_result([{"metric": {}, "values": pairs}], instant=False)
        return
    (series,) = parse_result([{"metric": {}, "values": pairs}], instant=False)
    np.testing.assert_array_equal(series.timestamps, [float(p[0]) for p in pairs])
    np.testing.assert_array_equal(series.values, [float(p[1]) for p in pairs])
