"""``/healthz`` and ``/readyz`` on a tiny asyncio HTTP responder (no framework: two GET routes, JSON bodies).

``/healthz`` answers 200 while the event loop runs and, when leading, the Gate watch is alive; ``/readyz``
answers 200 once the replica is a standby or a leader whose Gate cache is synced.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

__all__ = ["HealthServer"]


class HealthServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        healthy: Callable[[], tuple[bool, dict[str, Any]]],
        ready: Callable[[], tuple[bool, dict[str, Any]]],
    ) -> None:
        self.host, self.port = host, port
        self._routes = {"/healthz": healthy, "/readyz": ready}
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) > 1 else ""
            probe = self._routes.get(path)
            if probe is None:
                code, body = 404, {"error": f"no route {path}; use /healthz or /readyz"}
            else:
                ok, detail = probe()
                code, body = (200 if ok else 503), {"ok": ok, **detail}
            data = json.dumps(body).encode()
            head = (
                f"HTTP/1.1 {code} {'OK' if code == 200 else 'Not OK'}\r\nContent-Type: application/json\r\n"
            )
            writer.write(f"{head}Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
