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
from openelb_testenv import netlab

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
        beats.pools = frozenset({"lan"})
        beats.set_peers({"node-b": "127.0.0.1"})
        assert beats.live_peers() == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            beat = codec.Heartbeat("node-b", "b1", 1, time.time(), frozenset({"lan"}),
                                   scoped=True)
            sender.sendto(codec.encode(beat, SECRET), ("127.0.0.1", port))
            await _until(lambda: beats.live_peers() == 1)
        now[0] += 1.5  # silent for longer than the 1 s timeout
        assert beats.live_peers() == 0
    finally:
        await beats.aclose()


async def test_peers_sharing_no_pool_hear_each_other_every_far_interval() -> None:
    """Issue #13, item 4: heartbeats go at the full rate only to peers that share a
    layer-2 pool (and to peers not heard yet). A peer on another segment gets one every
    far_interval and stays alive for far_timeout; when the two come to share a pool, it
    gets the full rate again, and after a grace period the 1 s timeout applies."""
    now = [100.0]
    port = _free_udp_port()
    settings = udp.HeartbeatSettings(port=port)
    beats = udp.Heartbeats("node-a", SECRET, settings, clock=lambda: now[0])
    await beats.start()
    seq = iter(range(1, 100))

    async def heard_from_b(pools: frozenset[str]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            beat = codec.Heartbeat("node-b", "b1", next(seq), time.time(), pools, scoped=True)
            sender.sendto(codec.encode(beat, SECRET), ("127.0.0.1", port))
        await _until(lambda: beats.live_peers() == 1)

    def sends(seconds: float) -> dict[str, int]:
        """What node-a sends over `seconds` of its clock, one interval at a time."""
        before = dict(beats.sent)
        for _ in range(round(seconds / settings.interval)):
            now[0] += settings.interval
            beats._send()  # the send loop's work, on this test's clock
        return {k: beats.sent[k] - before[k] for k in before}

    try:
        beats.pools = frozenset({"rack-1"})
        beats.set_peers({"node-b": "127.0.0.1"})
        assert sends(1.0) == {"near": 4, "far": 0}  # not heard yet: full rate
        await heard_from_b(frozenset({"rack-2"}))
        grace = settings.far_interval + settings.timeout
        # Within the grace period it still gets the full rate.
        assert sends(grace - settings.interval) == {"near": 11, "far": 0}
        assert sends(8.0) == {"near": 0, "far": 4}  # then one per far_interval
        await heard_from_b(frozenset({"rack-2"}))
        now[0] += 5.0  # silent beyond the 1 s timeout, within far_timeout
        assert beats.live_peers() == 1
        now[0] += 1.5
        assert beats.live_peers() == 0

        await heard_from_b(frozenset({"rack-2"}))
        beats.pools = frozenset({"rack-1", "rack-2"})  # now they share a segment
        assert sends(1.0) == {"near": 4, "far": 0}
        now[0] += grace  # the grace period over: the 1 s timeout again
        await heard_from_b(frozenset({"rack-2"}))
        now[0] += 1.5
        assert beats.live_peers() == 0
    finally:
        await beats.aclose()


async def test_a_peer_whose_clock_drifts_is_reported_before_its_heartbeats_go_stale(
        caplog: pytest.LogCaptureFixture) -> None:
    """Beyond 30 s of skew a peer's heartbeats are refused as stale and it counts dead
    (two nodes then claim its addresses). The skew is measured on every heartbeat and a
    peer past 5 s is reported once (log line, alarm hook), and once more when it is
    back in step."""
    wall = [1000.0]
    skews: list[tuple[str, float]] = []
    port = _free_udp_port()
    alarms: list[tuple[str, float, bool]] = []
    beats = udp.Heartbeats("node-a", SECRET, udp.HeartbeatSettings(port=port),
                           wall=lambda: wall[0], on_skew=lambda *s: skews.append(s),
                           on_skew_alarm=lambda *a: alarms.append(a))
    await beats.start()
    caplog.set_level(logging.INFO, logger=udp.__name__)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for seq, (peer_clock, expected) in enumerate(
                    [(1001.0, 1.0), (1012.0, 12.0), (1013.0, 13.0), (1000.5, 0.5)], 1):
                beat = codec.Heartbeat("node-b", "b1", seq, peer_clock, frozenset())
                sender.sendto(codec.encode(beat, SECRET), ("127.0.0.1", port))
                await _until(lambda: len(skews) == seq)  # noqa: B023 (awaited at once)
                assert skews[-1] == ("node-b", expected)
        said = [(r.getMessage(), r.__dict__["skew_s"]) for r in caplog.records
                if "clock" in r.getMessage()]
        assert said == [("peer clock skewed", 12.0), ("peer clock back in step", 0.5)]
        # The speaker posts a ClockSkew Event on its Node at each of these.
        assert alarms == [("node-b", 12.0, True), ("node-b", 0.5, False)]
    finally:
        await beats.aclose()



async def test_during_a_key_rotation_both_keys_are_accepted_then_only_the_new() -> None:
    """Issue #16: the heartbeat key is rotated without a restart. On real sockets: while
    the rotation settles, heartbeats signed with either key are taken; once it is over,
    the old key is refused."""
    new = b"n" * 32
    now = [100.0]
    port = _free_udp_port()
    refused: list[codec.Refused] = []
    beats = udp.Heartbeats("node-a", SECRET, udp.HeartbeatSettings(port=port),
                           clock=lambda: now[0], on_refused=refused.append)
    await beats.start()
    try:
        beats.rotate(new, settle=10.0)
        beats.set_peers({"node-b": "127.0.0.1", "node-c": "127.0.0.1"})
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            # node-b has not read the new key yet, node-c has.
            for node, key in (("node-b", SECRET), ("node-c", new)):
                beat = codec.Heartbeat(node, "b1", 1, time.time(), frozenset())
                sender.sendto(codec.encode(beat, key), ("127.0.0.1", port))
            await _until(lambda: beats.live_peers() == 2)
            # (node-a's own heartbeats come back on loopback: refused as notOurs)
            assert codec.Refused.BAD_MAC not in refused
            now[0] += 25.0  # past twice the settle time: the old key is gone
            beat = codec.Heartbeat("node-b", "b1", 2, time.time(), frozenset())
            sender.sendto(codec.encode(beat, SECRET), ("127.0.0.1", port))
            await _until(lambda: codec.Refused.BAD_MAC in refused)
    finally:
        await beats.aclose()
