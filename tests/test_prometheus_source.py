"""PrometheusSource on the wire: it asks for uncompressed answers (gzip cost ~35% of a query's CPU on a fast
link) unless the gate's own headers say otherwise, and it sends the gate's headers with every query."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gatekeeper.sources.prometheus import PrometheusSource

BODY = json.dumps(
    {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [60, "1"]}]}}
).encode()


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

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
