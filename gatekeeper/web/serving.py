"""Serve an ASGI app with uvicorn on 127.0.0.1 in a background thread: the dashboard and the OTLP intake in tests
and the demo (`gatekeeper serve` runs uvicorn in the foreground instead)."""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (port 0: any free one) in a thread; stop it on exit.

    For tests and the demo; `gatekeeper serve` runs uvicorn in the foreground instead.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 10.0,
        name: str = "gatekeeper-web",
        tls: dict[str, Any] | None = None,
    ) -> None:
        """`tls`: uvicorn's ssl options (`gatekeeper.web.auth.TLSConfig.uvicorn_options()`): serve HTTPS."""
        import uvicorn

        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False, **(tls or {})
        )
        self._scheme = "https" if tls else "http"
        self._server = uvicorn.Server(config)
        self._host, self._port, self._timeout, self._name = host, port, startup_timeout, name
        self._thread: threading.Thread | None = None
        self._sock: Any = None

    @property
    def url(self) -> str:
        if self._sock is None:
            raise RuntimeError("the server is not running: use it as a context manager")
        host, port = self._sock.getsockname()[:2]
        return f"{self._scheme}://{host}:{port}"

    def __enter__(self) -> BackgroundServer:
        import socket

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets
        self._sock.bind((self._host, self._port))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True, name=self._name
        )
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"{self._name} did not start within {self._timeout:g}s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
