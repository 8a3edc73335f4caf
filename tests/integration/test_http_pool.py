"""kube/http.py on loopback against a scripted HTTP/1.1 server: keep-alive, the retry
after a server-closed idle connection, streaming, timeouts, early exits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from openelb.kube import http

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Server:
    """Counts connections; `handler(reader, writer, connection_number)` scripts each."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.pool: http.Pool  # a client pool for this server, closed by the fixture

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    started: list[Server] = []

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
        server.pool = http.Pool(server.url, None)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.pool.aclose()
        assert server.server is not None
        server.server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def test_keeps_connections_alive(serve: Callable[[Handler], Awaitable[Server]]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
                      ) -> None:
        while True:
            request = await read_request(reader)
            writer.write(ok(request.split(b" ")[1]))
            await writer.drain()

    server = await serve(handler)
    pool = server.pool
    for path in ("/a", "/b?x=1", "/c"):
        assert await pool.request("GET", path, [], timeout=5) == (200, path.encode())
    assert server.connections == 1


async def test_retries_once_when_the_server_closed_an_idle_connection(
        serve: Callable[[Handler], Awaitable[Server]]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int
                      ) -> None:
        await read_request(reader)
        writer.write(ok(b"first" if number == 1 else b"again"))
        await writer.drain()
        if number == 1:
            return  # closes the kept connection, as an apiserver's idle timeout does
        await read_request(reader)

    server = await serve(handler)
    pool = server.pool
    assert await pool.request("GET", "/", [], timeout=5) == (200, b"first")
    await asyncio.sleep(0.1)
    assert await pool.request("POST", "/", [], b"{}", timeout=5) == (200, b"again")
    assert server.connections == 2


async def test_a_fresh_connection_closed_without_answer_is_an_error(
        serve: Callable[[Handler], Awaitable[Server]]) -> None:
    async def handler(reader: asyncio.StreamReader, _w: asyncio.StreamWriter, _n: int
                      ) -> None:
        await read_request(reader)  # then hang up

    server = await serve(handler)
    pool = server.pool
    with pytest.raises(ConnectionError):
        await pool.request("GET", "/", [], timeout=5)
    assert server.connections == 1  # no retry on a connection that was never kept


async def test_streams_chunks_as_they_arrive(
        serve: Callable[[Handler], Awaitable[Server]]) -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
                      ) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"6\r\nline1\n\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\nline2\n\r\n0\r\n\r\n")
        await writer.drain()
        await read_request(reader)
        writer.write(ok(b"next"))
        await writer.drain()

    server = await serve(handler)
    pool = server.pool
    async with pool.stream("GET", "/watch", [], timeout=5, read_timeout=5) as response:
        chunks = response.aiter_bytes()
        assert await anext(chunks) == b"line1\n"  # before the server sent the rest
        release.set()
        assert [c async for c in chunks] == [b"line2\n"]
    assert await pool.request("GET", "/", [], timeout=5) == (200, b"next")
    assert server.connections == 1  # a fully read stream keeps its connection


async def test_read_timeout_and_early_exit_close_the_connection(
        serve: Callable[[Handler], Awaitable[Server]]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int
                      ) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await asyncio.sleep(30)  # stalls mid-body

    server = await serve(handler)
    pool = server.pool
    with pytest.raises(TimeoutError):
        async with pool.stream("GET", "/", [], timeout=5, read_timeout=0.3) as response:
            await response.aread()
    async with pool.stream("GET", "/", [], timeout=5, read_timeout=5) as response:
        assert await anext(response.aiter_bytes()) == b"abc"
    # Neither half-read connection was kept: a third request needs a third one.
    with pytest.raises(TimeoutError):
        await pool.request("GET", "/", [], timeout=0.5)
    assert server.connections == 3
