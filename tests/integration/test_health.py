"""health.py served on loopback: what kubelet probes and Prometheus get back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, Gauge

from openelb import health


class Readiness:
    def __init__(self) -> None:
        self.state = (False, "caches not synced")

    def __call__(self) -> tuple[bool, str]:
        return self.state


@pytest.fixture
async def served() -> AsyncIterator[tuple[health.HealthServer, Readiness]]:
    registry = CollectorRegistry()
    Gauge("openelb_test_value", "A value for the test", registry=registry).set(7)
    readiness = Readiness()
    server = health.HealthServer(registry, readiness, "127.0.0.1", 0)
    await server.start()
    try:
        yield server, readiness
    finally:
        await server.aclose()


async def exchange(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        writer.write_eof()
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    answer = await exchange(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_probes_and_metrics(served: tuple[health.HealthServer, Readiness]) -> None:
    server, readiness = served
    assert await get(server.port, "/healthz") == (200, b"ok\n")
    assert await get(server.port, "/readyz") == (503, b"caches not synced\n")
    readiness.state = (True, "ready")
    assert await get(server.port, "/readyz?verbose") == (200, b"ready\n")
    status, body = await get(server.port, "/metrics")
    assert status == 200
    assert b"openelb_test_value 7.0" in body
    assert await get(server.port, "/metrics", "HEAD") == (200, b"")
    assert (await get(server.port, "/nothing"))[0] == 404
    assert (await get(server.port, "/healthz", "POST"))[0] == 405


async def test_garbage_does_not_stop_the_server(
        served: tuple[health.HealthServer, Readiness]) -> None:
    server, _ = served
    answer = await exchange(server.port, b"\x16\x03\x01 this is not http\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert await exchange(server.port, b"") == b""  # connect and hang up: no answer
    assert await get(server.port, "/healthz") == (200, b"ok\n")


async def test_a_flood_of_idle_connections_is_capped_and_closed_quickly(
        served: tuple[health.HealthServer, Readiness]) -> None:
    """The attack run held 1,000 slow connections open for 10 s each. Beyond
    MAX_CONNECTIONS a new one is closed unanswered, idle ones are closed after
    READ_TIMEOUT, and probes are answered again once the flood is gone."""
    server, _ = served
    idle = [await asyncio.open_connection("127.0.0.1", server.port)
            for _ in range(health.MAX_CONNECTIONS + 20)]
    try:
        async with asyncio.timeout(health.READ_TIMEOUT + 5):
            closed = await asyncio.gather(*(reader.read() for reader, _ in idle))
        assert closed == [b""] * len(idle)  # every one closed by the server, none answered
        assert server.turned_away >= 20
        assert await get(server.port, "/healthz") == (200, b"ok\n")
    finally:
        for _, writer in idle:
            writer.close()
