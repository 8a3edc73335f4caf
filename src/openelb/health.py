"""HTTP endpoints of a daemon: /metrics, /healthz, /readyz (DESIGN §7).

Both daemons (controller, speaker) serve these; readiness is a callable passed in so this
module knows nothing of caches or leases. Served on the event loop by asyncio streams
with h11 (the HTTP/1.1 protocol library kube/http.py uses too) doing the parsing: a web framework
would cost the speaker ~14 MB of its per-node budget to answer three GETs. One request
per connection, answered and closed, which is all probes and Prometheus need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import h11
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["HealthServer"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16 * 1024  # a probe's request is a few hundred bytes
# On the host network anyone can connect (issue #19: 1,000 slow connections were held
# 10 s each). Probes and a scraper send their request at once and need a handful of
# connections: idle ones are closed after READ_TIMEOUT, and beyond MAX_CONNECTIONS
# open at once a new connection is closed unanswered.
READ_TIMEOUT = 2.0
MAX_CONNECTIONS = 32


class HealthServer:
    def __init__(self, registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]],
                 host: str, port: int) -> None:
        self._registry = registry
        self._ready = ready
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None
        self._open = 0  # connections being served now
        self.turned_away = 0  # connections closed unanswered: MAX_CONNECTIONS were open

    @property
    def port(self) -> int:
        """The bound port (useful when constructed with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _answer(self, method: str, target: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request."""
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            ok, why = self._ready()
            return (200 if ok else 503), "text/plain", f"{why}\n".encode()
        return 404, "text/plain", b"not found\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= MAX_CONNECTIONS:
            self.turned_away += 1
            writer.close()
            return
        self._open += 1
        try:
            await self._serve_one(reader, writer)
        finally:
            self._open -= 1

    async def _serve_one(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    request = await self._read_request(reader, connection)
            except h11.RemoteProtocolError as exc:  # h11 still lets us answer it
                self._send(writer, connection, exc.error_status_hint, "text/plain",
                           f"bad request: {exc}\n".encode())
                await writer.drain()
                return
            if request is None:
                return
            status, content_type, body = self._answer(request.method.decode(),
                                                      request.target.decode())
            self._send(writer, connection, status, content_type, body,
                       with_body=request.method != b"HEAD")
            await writer.drain()
        except (TimeoutError, OSError, h11.ProtocolError) as exc:
            log.debug("health request dropped", extra={"op": "health", "error": repr(exc)})
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, connection: h11.Connection, status: int,
              content_type: str, body: bytes, *, with_body: bool = True) -> None:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
                   ("Connection", "close")]
        writer.write(connection.send(h11.Response(status_code=status, headers=headers)) or b"")
        if with_body:
            writer.write(connection.send(h11.Data(data=body)) or b"")
        writer.write(connection.send(h11.EndOfMessage()) or b"")

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader, connection: h11.Connection
                            ) -> h11.Request | None:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(4096))
                continue
            if isinstance(event, h11.Request):
                return event
            return None  # ConnectionClosed or anything else: nothing to answer
