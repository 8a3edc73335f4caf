"""Heartbeats are authenticated and replay-safe; liveness follows them (issue 6)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

from openelb.announce.liveness import codec, membership

SECRET = b"k" * 32


def _beat(seq: int, *, node: str = "node-b", boot: str = "b1", at: float = 1000.0,
          pools: frozenset[str] = frozenset({"lan"})) -> codec.Heartbeat:
    return codec.Heartbeat(node, boot, seq, at, pools)


def test_a_heartbeat_round_trips_with_the_right_secret_only() -> None:
    packet = codec.encode(_beat(1), SECRET)
    assert codec.decode(packet, SECRET) == _beat(1)
    assert codec.decode(packet, b"x" * 32) is codec.Refused.BAD_MAC
    tampered = packet[:-3] + b"99}"
    assert codec.decode(tampered, SECRET) is codec.Refused.BAD_MAC


def test_foreign_and_broken_datagrams_are_refused_not_raised() -> None:
    assert codec.decode(b"hello", SECRET) is codec.Refused.NOT_OURS
    assert codec.decode(b"", SECRET) is codec.Refused.NOT_OURS
    body = b"not json"
    import hashlib
    import hmac
    forged = codec.MAGIC + hmac.new(SECRET, body, hashlib.sha256).digest() + body
    assert codec.decode(forged, SECRET) is codec.Refused.MALFORMED


def test_replayed_and_stale_heartbeats_are_refused() -> None:
    state = membership.Membership("node-a", started_at=0.0, timeout=1.0)
    assert state.accept(_beat(5), now=10.0, wall=1000.0) is None
    assert state.accept(_beat(5), now=10.1, wall=1000.1) is codec.Refused.REPLAYED
    assert state.accept(_beat(4), now=10.1, wall=1000.1) is codec.Refused.REPLAYED
    assert state.accept(_beat(6, at=900.0), now=10.2, wall=1000.2) is codec.Refused.STALE
    assert state.accept(_beat(1, boot="b2", at=1000.3), now=10.3, wall=1000.3) is None


def test_a_silent_peer_is_dead_after_the_timeout() -> None:
    state = membership.Membership("node-a", started_at=0.0, timeout=1.0)
    state.accept(_beat(1), now=5.0, wall=1000.0)
    assert state.live(now=5.9) == {"node-a", "node-b"}
    assert state.serving(now=5.9) == {"node-b": frozenset({"lan"})}
    assert state.live(now=6.01) == {"node-a"}


def test_never_hearing_anyone_falls_back_to_the_apiserver_view() -> None:
    state = membership.Membership("node-a", started_at=0.0, timeout=1.0)
    assert state.live(now=50.0, fallback={"node-b", "node-c"}) == {"node-a", "node-b", "node-c"}
    state.accept(_beat(1), now=50.0, wall=1000.0)
    assert state.live(now=50.5, fallback={"node-b", "node-c"}) == {"node-a", "node-b"}


def test_a_fresh_speaker_is_not_settled_before_one_timeout() -> None:
    state = membership.Membership("node-a", started_at=100.0, timeout=1.0)
    assert not state.settled(100.5)
    assert state.settled(101.0)


def test_own_heartbeats_are_ignored() -> None:
    state = membership.Membership("node-a", started_at=0.0)
    assert state.accept(_beat(1, node="node-a"), now=1.0, wall=1000.0) is codec.Refused.NOT_OURS


def test_the_claiming_flag_round_trips_and_old_speakers_count_as_claiming() -> None:
    joining = dataclasses.replace(_beat(1), claiming=False)
    assert codec.decode(codec.encode(joining, SECRET), SECRET) == joining
    # A speaker from before the flag sends no "c": it claims as soon as it settles.
    body = b'{"n":"node-b","b":"b1","s":1,"t":1000.0,"p":["lan"]}'
    old = codec.MAGIC + hmac.new(SECRET, body, hashlib.sha256).digest() + body
    decoded = codec.decode(old, SECRET)
    assert isinstance(decoded, codec.Heartbeat)
    assert decoded.claiming


def test_a_peer_is_joining_until_its_heartbeats_say_it_claims() -> None:
    state = membership.Membership("node-a", started_at=0.0, timeout=1.0)
    state.accept(dataclasses.replace(_beat(1), claiming=False), now=5.0, wall=1000.0)
    assert state.joining(now=5.1) == {"node-b"}
    assert state.live(now=5.1) == {"node-a", "node-b"}
    state.accept(_beat(2, at=1000.2), now=5.2, wall=1000.2)
    assert state.joining(now=5.3) == frozenset()
    state.accept(dataclasses.replace(_beat(1, boot="b2", at=1003.0), claiming=False),
                 now=8.0, wall=1003.0)
    assert state.joining(now=8.1) == {"node-b"}  # restarted: joining again
    assert state.joining(now=9.5) == frozenset()  # and dead: not joining either


def test_a_leaving_peer_is_dead_at_once_and_its_goodbye_cannot_be_replayed() -> None:
    state = membership.Membership("node-a", started_at=0.0, timeout=1.0)
    state.accept(_beat(1), now=5.0, wall=1000.0)
    goodbye = dataclasses.replace(_beat(2, at=1000.1), leaving=True)
    assert codec.decode(codec.encode(goodbye, SECRET), SECRET) == goodbye
    assert state.accept(goodbye, now=5.1, wall=1000.1) is None
    assert state.live(now=5.1) == {"node-a"}
    assert state.accept(goodbye, now=5.2, wall=1000.2) is codec.Refused.REPLAYED
    # Its next start (a new boot) is live again, joining until it claims.
    state.accept(dataclasses.replace(_beat(1, boot="b2", at=1002.0), claiming=False),
                 now=7.0, wall=1002.0)
    assert state.live(now=7.1) == {"node-a", "node-b"}
    assert state.joining(now=7.1) == {"node-b"}


def _booted(seq: int, boot: str, booted_at: float | None, at: float, *,
            leaving: bool = False) -> codec.Heartbeat:
    return dataclasses.replace(_beat(seq, boot=boot, at=at), booted_at=booted_at,
                               leaving=leaving)


def test_the_boot_time_round_trips_and_old_speakers_send_none() -> None:
    beat = _booted(1, "b1", 990.5, 1000.0)
    assert codec.decode(codec.encode(beat, SECRET), SECRET) == beat
    assert codec.decode(codec.encode(_beat(1), SECRET), SECRET) == _beat(1)
    assert _beat(1).booted_at is None


def test_a_goodbye_captured_before_a_restart_is_refused_after_it() -> None:
    """The attack run's replay: node-b's "leaving" heartbeat of its previous boot, sent
    again seconds after node-b restarted, made node-a count it dead and take its
    addresses. A boot older than the newest one seen is refused; node-b stays live."""
    state = membership.Membership("node-a", started_at=0.0, timeout=1.0)
    assert state.accept(_booted(7, "b1", 900.0, 1000.0), now=5.0, wall=1000.0) is None
    captured = _booted(8, "b1", 900.0, 1000.2, leaving=True)
    assert state.accept(_booted(1, "b2", 1003.0, 1003.0), now=8.0, wall=1003.0) is None
    assert state.accept(_booted(2, "b2", 1003.0, 1007.9), now=12.9, wall=1007.9) is None
    replayed = dataclasses.replace(captured, sent_at=1008.0)  # inside the skew window
    assert state.accept(replayed, now=13.0, wall=1008.0) is codec.Refused.OLD_BOOT
    assert state.accept(_booted(9, "b1", 900.0, 1008.0), now=13.0, wall=1008.0) is (
        codec.Refused.OLD_BOOT)
    assert state.accept(_booted(3, "b2", 1003.0, 1008.0), now=13.0, wall=1008.0) is None
    assert state.live(now=13.1) == {"node-a", "node-b"}


def test_once_a_node_sends_boot_times_a_heartbeat_without_one_is_an_old_boot() -> None:
    state = membership.Membership("node-a", started_at=0.0, timeout=1.0)
    assert state.accept(_beat(1, boot="old", at=1000.0), now=5.0, wall=1000.0) is None
    # Upgraded: the new boot carries its time and replaces the old one ...
    assert state.accept(_booted(1, "b2", 1001.0, 1001.0), now=6.0, wall=1001.0) is None
    # ... after which nothing from a boot without a time is taken.
    assert state.accept(_beat(5, boot="old", at=1002.0), now=7.0, wall=1002.0) is (
        codec.Refused.OLD_BOOT)


def test_only_a_goodbye_of_the_current_boot_counts() -> None:
    state = membership.Membership("node-a", started_at=0.0, timeout=1.0)
    assert state.accept(_booted(1, "b1", 900.0, 1000.0), now=5.0, wall=1000.0) is None
    stray = _booted(1, "b9", 950.0, 1000.1, leaving=True)  # a newer boot never heard
    assert state.accept(stray, now=5.1, wall=1000.1) is codec.Refused.OTHER_BOOT
    assert state.live(now=5.2) == {"node-a", "node-b"}


def test_a_peer_heard_again_after_its_goodbye_counts_as_a_rejoin() -> None:
    """If a goodbye of the current boot was forged or the peer kept running, the owner
    announces its addresses again when the peer is heard once more."""
    state = membership.Membership("node-a", started_at=0.0, timeout=1.0)
    state.accept(_booted(1, "b1", 900.0, 1000.0), now=5.0, wall=1000.0)
    state.accept(_booted(2, "b1", 900.0, 1000.1, leaving=True), now=5.1, wall=1000.1)
    assert state.live(now=5.1) == {"node-a"}
    assert state.accept(_booted(3, "b1", 900.0, 1000.3), now=5.3, wall=1000.3) is None
    assert state.rejoins == 1
    assert state.live(now=5.3) == {"node-a", "node-b"}


def test_a_restart_after_the_clock_stepped_back_is_taken_once_the_old_boot_is_silent() -> None:
    """Refusing it for good would leave node-b's addresses claimed twice (it claims
    them, node-a thinks it is dead)."""
    state = membership.Membership("node-a", started_at=0.0, timeout=1.0)
    state.accept(_booted(1, "b1", 900.0, 1000.0), now=5.0, wall=1000.0)
    stepped_back = _booted(1, "b2", 800.0, 1000.5)
    assert state.accept(stepped_back, now=5.5, wall=1000.5) is codec.Refused.OLD_BOOT
    later = _booted(2, "b2", 800.0, 1001.5)
    assert state.accept(later, now=6.5, wall=1001.5) is None  # b1 silent since 5.0
    assert state.live(now=6.6) == {"node-a", "node-b"}
