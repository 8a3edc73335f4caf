"""A small HTTP/1.1 server on the event loop: the daemons' probes and the webhook.

Asyncio streams carry the bytes and h11 (the protocol library kube/http.py uses too)
parses them; a web framework would cost the speaker ~14 MB of its per-node budget to
answer three GETs, and the webhook needs no more than a handful of POST routes. The
handler is a plain function from `Request` to `Response`: every answer here is computed
from memory, so nothing awaits inside it.

Guards, because the health port sits on the host network and the webhook port is
reachable cluster-wide (issue #19): requests larger than `max_body` are refused with
413, a connection silent for `read_timeout` is closed, and beyond `max_connections`
open at once a new connection is closed unanswered. With `keep_alive` a connection
serves request after request (the apiserver reuses its connections to a webhook, which
saves a TLS handshake per review); without, each is answered and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import h11

__all__ = ["Request", "Response", "Server"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    headers: tuple[tuple[str, str], ...] = field(default=())


Handler = Callable[[Request], Response]


class _TooLarge(Exception):
    pass


class Server:
    """Serves `handler` on host:port, over TLS when `tls` is given."""

    def __init__(self, handler: Handler, host: str, port: int, *,
                 tls: ssl.SSLContext | None = None, keep_alive: bool = False,
                 max_body: int = 16 * 1024, read_timeout: float = 2.0,
                 max_connections: int = 32, name: str = "http") -> None:
        self._handler = handler
        self._host, self._port = host, port
        self._tls = tls
        self._keep_alive = keep_alive
        self._max_body = max_body
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._name = name
        self._server: asyncio.Server | None = None
        self._open = 0  # connections being served now
        self.turned_away = 0  # connections closed unanswered: max_connections were open

    @property
    def port(self) -> int:
        """The bound port (useful when constructed with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port,
                                                  ssl=self._tls)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= self._max_connections:
            self.turned_away += 1
            writer.close()
            return
        self._open += 1
        try:
            await self._serve_connection(reader, writer)
        finally:
            self._open -= 1

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_body)
        try:
            while True:
                try:
                    async with asyncio.timeout(self._read_timeout):
                        request = await self._read_request(reader, connection)
                except h11.RemoteProtocolError as exc:  # h11 still lets us answer it
                    self._send(writer, connection, Response(
                        exc.error_status_hint, f"bad request: {exc}\n".encode()), close=True)
                    await writer.drain()
                    return
                except _TooLarge:
                    self._send(writer, connection, Response(
                        413, b"request body too large\n"), close=True)
                    await writer.drain()
                    return
                if request is None:
                    return
                try:
                    response = self._handler(request)
                except Exception:  # a bug answers 500 and keeps the server up
                    log.exception("request handler crashed", extra={
                        "op": self._name, "path": request.path, "bug": True})
                    response = Response(500, b"internal error\n")
                close = not self._keep_alive
                self._send(writer, connection, response, close=close,
                           with_body=request.method != "HEAD")
                await writer.drain()
                if close or connection.our_state is not h11.DONE:
                    return
                connection.start_next_cycle()
        except (TimeoutError, OSError, ssl.SSLError, h11.ProtocolError) as exc:
            log.debug("request dropped", extra={"op": self._name, "error": repr(exc)})
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, connection: h11.Connection, response: Response,
              *, close: bool, with_body: bool = True) -> None:
        headers = [("Content-Type", response.content_type),
                   ("Content-Length", str(len(response.body))), *response.headers]
        if close:
            headers.append(("Connection", "close"))
        writer.write(connection.send(h11.Response(status_code=response.status,
                                                  headers=headers)) or b"")
        if with_body:
            writer.write(connection.send(h11.Data(data=response.body)) or b"")
        writer.write(connection.send(h11.EndOfMessage()) or b"")

    async def _read_request(self, reader: asyncio.StreamReader, connection: h11.Connection
                            ) -> Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(65536))
                continue
            if isinstance(event, h11.Request):
                head = event
                continue
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > self._max_body:
                    raise _TooLarge
                continue
            if isinstance(event, h11.EndOfMessage) and head is not None:
                return Request(head.method.decode(), head.target.decode(), bytes(body))
            return None  # ConnectionClosed or anything else: nothing to answer
