"""A fault-injecting HTTP proxy in front of a real Prometheus: what a gate sees when its monitoring is down,
slow, flapping or answering only part of a question.

Modes (``proxy.mode = ...``, switchable at any time; every request is counted per mode):

* ``up``: forwards as is;
* ``refused``: the listening socket is closed, so connections are refused (a Prometheus that is not running);
* ``error``: HTTP 503 with Prometheus' error body (a Prometheus that is starting, or overloaded);
* ``slow``: forwards after ``delay`` seconds (longer than the gate's query timeout: a hung Prometheus);
* ``flapping``: every other request is a 503 (every other of each ``flap_by(query)`` key, if given);
* ``partial``: forwards, but drops every series of the canary arm from the answer (a Prometheus shard or a
  federated source that lost part of the data: an answer that looks fine and says less).

``hits`` counts requests per mode; ``log`` has every request that reached the proxy: arrival and answer times,
its PromQL, and what it was served (``up``, ``error``, ``slow``, ``partial``; a refused one never arrives).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("up", "refused", "error", "slow", "flapping", "partial")


class PromProxy:
    def __init__(
        self,
        upstream: str,
        *,
        delay: float = 8.0,
        on_request: Callable[[str], None] | None = None,
        flap_by: Callable[[str], str] | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.on_request = on_request
        self.hits: Counter[str] = Counter()
        self.log: list[tuple[float, float, str, str]] = []  # (arrived, answered, PromQL, what was served)
        self._mode = "up"
        self._flips: Counter[str] = Counter()
        self._flap_by = flap_by or (lambda query: "")
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listen()

    # -- modes ----------------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}; use one of {MODES}")
        with self._lock:
            if mode == "refused" and self._server is not None:
                self._close()
            elif mode != "refused" and self._server is None:
                self._listen()
            self._mode = mode

    def _listen(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        for _ in range(50):  # the port may linger a moment after a close
            try:
                server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"cannot listen on 127.0.0.1:{self.port} again")
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def close(self) -> None:
        with self._lock:
            self._close()

    # -- one request ----------------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        arrived = time.time()
        mode = self._mode
        self.hits[mode] += 1
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        query = _query(h.path, body)
        if self.on_request is not None:
            self.on_request(mode)
        if mode == "refused":  # a kept-alive connection outlived the listening socket: drop it unanswered
            self.log.append((arrived, time.time(), query, "refused"))
            h.close_connection = True
            return
        if mode == "flapping":
            key = self._flap_by(query)
            with self._lock:
                self._flips[key] += 1
                mode = "error" if self._flips[key] % 2 else "up"
        if mode == "error":
            self.log.append((arrived, time.time(), query, "error"))
            with _quiet():
                _send(h, 503, _UNAVAILABLE)
            return
        if mode == "slow":
            time.sleep(self.delay)
        url = self.upstream + h.path
        keep = {k: v for k, v in h.headers.items() if k.lower() in ("content-type", "accept")}
        req = urllib.request.Request(
            url, data=body if h.command == "POST" else None, method=h.command, headers=keep
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        if mode == "partial" and status == 200:
            data = _without_canary(data)
        self.log.append((arrived, time.time(), query, mode if status == 200 else f"upstream {status}"))
        with _quiet():
            _send(h, status, data)


_UNAVAILABLE = b'{"status":"error","errorType":"unavailable","error":"Service Unavailable"}'


def _query(path: str, body: bytes) -> str:
    from urllib.parse import parse_qs, urlsplit

    params = parse_qs(urlsplit(path).query) | parse_qs(body.decode("latin-1"))
    return params.get("query", [""])[0]


def _send(h: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def _without_canary(data: bytes) -> bytes:
    doc = json.loads(data)
    result = (doc.get("data") or {}).get("result")
    if isinstance(result, list):
        doc["data"]["result"] = [
            s
            for s in result
            if not (isinstance(s, dict) and (s.get("metric") or {}).get("track") == "canary")
        ]
    return json.dumps(doc).encode()


class _quiet:
    """A client that gave up (its timeout) closed the connection: nothing to answer."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        return et is not None and issubclass(et, (BrokenPipeError, ConnectionResetError))
