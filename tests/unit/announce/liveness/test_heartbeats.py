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
