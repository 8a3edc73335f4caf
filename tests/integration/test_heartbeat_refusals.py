"""Heartbeats on real UDP sockets (loopback only): refused datagrams are counted by
reason for the metric, and logged at most once per reason per window with the count,
so a flood is visible without flooding the log (issue #19, item 4)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import pytest

from openelb.announce.liveness import codec, udp
from openelb.testenv import netlab

SECRET = b"k" * 32


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _until(check: Callable[[], bool]) -> None:
    async def probe() -> tuple[bool, object]:
        return check(), None

    await netlab.poll_until("heartbeats received", probe, 10.0, interval=0.01)


def _refusal_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int]]:
    """(reason, count) of each "heartbeats refused" line, from its structured fields."""
    return [(r.__dict__["reason"], r.__dict__["count"]) for r in caplog.records
            if r.getMessage() == "heartbeats refused"]


async def test_refusals_are_counted_by_reason_and_logged_once_per_window(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    seen: list[codec.Refused] = []
    port = _free_udp_port()
    beats = udp.Heartbeats("node-a", SECRET, udp.HeartbeatSettings(port=port),
                           clock=lambda: now[0], on_refused=seen.append)
    await beats.start()
    caplog.set_level(logging.WARNING, logger=udp.__name__)
    try:
        forged = codec.encode(codec.Heartbeat("node-b", "b1", 1, time.time(), frozenset()),
                              b"x" * 32)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(200):
                sender.sendto(forged, ("127.0.0.1", port))
            sender.sendto(b"hello", ("127.0.0.1", port))
            await _until(lambda: len(seen) == 201)
            assert seen.count(codec.Refused.BAD_MAC) == 200
            assert seen.count(codec.Refused.NOT_OURS) == 1
            assert _refusal_lines(caplog) == [("badMac", 1), ("notOurs", 1)]

            now[0] += 10.0  # the window passed: the next refusal says how many since
            sender.sendto(forged, ("127.0.0.1", port))
            await _until(lambda: len(seen) == 202)
        assert _refusal_lines(caplog) == [("badMac", 1), ("notOurs", 1), ("badMac", 200)]
    finally:
        await beats.aclose()


async def test_live_peers_counts_the_speakers_heard_within_the_timeout() -> None:
    now = [100.0]
    port = _free_udp_port()
    beats = udp.Heartbeats("node-a", SECRET, udp.HeartbeatSettings(port=port),
                           clock=lambda: now[0])
    await beats.start()
    try:
        beats.set_peers({"node-b": "127.0.0.1"})
        assert beats.live_peers() == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            beat = codec.Heartbeat("node-b", "b1", 1, time.time(), frozenset())
            sender.sendto(codec.encode(beat, SECRET), ("127.0.0.1", port))
            await _until(lambda: beats.live_peers() == 1)
        now[0] += 1.5  # silent for longer than the 1 s timeout
        assert beats.live_peers() == 0
    finally:
        await beats.aclose()
