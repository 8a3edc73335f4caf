"""A small HTTP/1.1 client pool for one server: h11 does the protocol, asyncio the I/O.

kube/ (DESIGN §3); used only by kube/client.py. Why not httpx or httpcore: with its
required anyio backend httpcore costs the speaker ~2.5 MB of RSS, and the speaker runs
on every node under an 80 MB budget shared with ExaBGP (issue #5). What is written here
is only the part no sans-I/O library does: keeping connections (a LIFO of idle ones,
dropped after `idle_expiry`, a semaphore for the total), timeouts, and one retry when a
kept connection turns out to have been closed by the server before it answered.
HTTP parsing and framing (Content-Length, chunked, keep-alive rules) are all h11's.

Errors surface as OSError / TimeoutError / h11.ProtocolError; kube/errors.py
translates them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

__all__ = ["Pool", "Response"]

READ_SIZE = 65536


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0
    reused: bool = False

    def close(self) -> None:
        self.writer.close()


class _ServerClosed(ConnectionError):
    """A kept connection was closed by the server before any response: safe to retry."""


class Response:
    """Status, headers and a body read chunk by chunk (each within `read_timeout`)."""

    def __init__(self, pool: Pool, connection: _Connection, event: h11.Response,
                 read_timeout: float) -> None:
        self.status = event.status_code
        self.headers = [(k.decode(), v.decode()) for k, v in event.headers]
        self._pool = pool
        self._connection = connection
        self._read_timeout = read_timeout
        self.complete = False

    def header(self, name: str) -> str | None:
        """The first value of header `name` (h11 lower-cases names), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k == wanted), None)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while not self.complete:
            async with asyncio.timeout(self._read_timeout):
                event = await self._pool.next_event(self._connection)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True
            else:  # ConnectionClosed mid-body
                raise ConnectionResetError("server closed the connection mid-response")

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])


class Pool:
    """Connections to the server of `base_url`; close with `aclose()`."""

    def __init__(self, base_url: str, tls: ssl.SSLContext | None, *,
                 max_connections: int = 100, idle_expiry: float = 30.0) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._tls = tls if url.scheme == "https" else None
        self._host_header = url.netloc
        self._prefix = url.path.rstrip("/")
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._idle_expiry = idle_expiry  # below Go's default idle timeout on the server
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def request(self, method: str, target: str, headers: Sequence[tuple[str, str]],
                      body: bytes | None = None, *, timeout: float) -> tuple[int, bytes]:
        """One whole exchange within `timeout` seconds -> (status, body)."""
        async with asyncio.timeout(timeout), \
                self.stream(method, target, headers, body, timeout=timeout,
                            read_timeout=timeout) as response:
            return response.status, await response.aread()

    @contextlib.asynccontextmanager
    async def stream(self, method: str, target: str, headers: Sequence[tuple[str, str]],
                     body: bytes | None = None, *, timeout: float, read_timeout: float
                     ) -> AsyncIterator[Response]:
        """A response whose body the caller reads as it arrives (watches).

        `timeout` bounds connecting, sending and the response head; `read_timeout` each
        read of the body. Leaving early closes the connection instead of keeping it.
        """
        async with self._slots:
            async with asyncio.timeout(timeout):
                connection, head = await self._exchange(method, target, headers, body)
            response = Response(self, connection, head, read_timeout)
            try:
                yield response
            finally:
                if response.complete:
                    self._keep(connection)
                else:
                    connection.close()

    async def next_event(self, connection: _Connection) -> object:
        while True:
            event = connection.protocol.next_event()
            if event is not h11.NEED_DATA:
                return event
            connection.protocol.receive_data(await connection.reader.read(READ_SIZE))

    async def _exchange(self, method: str, target: str, headers: Sequence[tuple[str, str]],
                        body: bytes | None) -> tuple[_Connection, h11.Response]:
        connection = self._take_idle() or await self._connect()
        try:
            return connection, await self._send(connection, method, target, headers, body)
        except _ServerClosed:
            connection.close()
            if not connection.reused:
                raise
        except BaseException:
            connection.close()
            raise
        # The kept connection had been closed by the server; try once on a fresh one.
        connection = await self._connect()
        try:
            return connection, await self._send(connection, method, target, headers, body)
        except BaseException:
            connection.close()
            raise

    async def _send(self, connection: _Connection, method: str, target: str,
                    headers: Sequence[tuple[str, str]], body: bytes | None) -> h11.Response:
        protocol = connection.protocol
        all_headers = [("Host", self._host_header), *headers]
        if body is not None:
            all_headers.append(("Content-Length", str(len(body))))
        data = protocol.send(h11.Request(method=method, target=self._prefix + target,
                                         headers=all_headers)) or b""
        if body:
            data += protocol.send(h11.Data(data=body)) or b""
        data += protocol.send(h11.EndOfMessage()) or b""
        try:
            connection.writer.write(data)
            await connection.writer.drain()
            while True:
                event = await self.next_event(connection)
                if isinstance(event, h11.Response):
                    return event
                if isinstance(event, h11.ConnectionClosed):
                    raise _ServerClosed("server closed the connection before answering")
                # h11.InformationalResponse (1xx): wait for the real one.
        except (OSError, h11.RemoteProtocolError) as exc:
            # No response head yet: on a kept connection this is the server having
            # closed it while idle (the request never reached it); the caller retries.
            why = str(exc) or type(exc).__name__
            if connection.reused:
                raise _ServerClosed(why) from exc
            if isinstance(exc, h11.RemoteProtocolError):
                raise ConnectionResetError(f"no response from the server: {why}") from exc
            raise

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._tls,
            server_hostname=self._host if self._tls is not None else None,
            limit=READ_SIZE)
        return _Connection(reader, writer)

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.idle_since < self._idle_expiry \
                    and not connection.reader.at_eof():
                connection.reused = True
                return connection
            connection.close()
        return None

    def _keep(self, connection: _Connection) -> None:
        protocol = connection.protocol
        if self._closed or protocol.our_state is not h11.DONE \
                or protocol.their_state is not h11.DONE:
            connection.close()
            return
        protocol.start_next_cycle()
        connection.idle_since = time.monotonic()
        self._idle.append(connection)
