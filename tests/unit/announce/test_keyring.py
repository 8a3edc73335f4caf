"""Heartbeat key rotation (announce/liveness/keys.py): no moment where one speaker
signs with a key another does not accept, whatever order they read the Secret in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from openelb.announce.liveness import keys

OLD, NEW, NEWER = b"o" * 32, b"n" * 32, b"w" * 32
SETTLE = 60.0


def test_a_rotation_accepts_at_once_signs_after_settle_and_forgets_after_twice() -> None:
    ring = keys.KeyRing(OLD)
    assert ring.rotate(NEW, 100.0, SETTLE)
    assert not ring.rotate(NEW, 110.0, SETTLE)  # re-read: nothing new
    assert ring.accepted(100.0) == (OLD, NEW)
    assert ring.signing == OLD
    assert ring.accepted(161.0) == (NEW, OLD)
    assert ring.signing == NEW
    assert ring.accepted(221.0) == (NEW,)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=SETTLE / 2), min_size=2, max_size=6),
       st.lists(st.floats(min_value=0, max_value=4 * SETTLE), min_size=1, max_size=30))
def test_every_signature_is_accepted_by_every_peer(read_delays: list[float],
                                                   instants: list[float]) -> None:
    """Peers read the new key at different times, each within SETTLE/2 of the change
    (they poll the Secret every SETTLE/2); at any instant, what any peer signs with is
    accepted by every other peer."""
    ring = [keys.KeyRing(OLD) for _ in read_delays]
    events = sorted((delay, index) for index, delay in enumerate(read_delays))
    for now in sorted(instants):
        for delay, index in events:
            if delay <= now:
                ring[index].rotate(NEW, delay, SETTLE)
        for signer in ring:
            for verifier in ring:
                signer.tick(now)
                assert signer.signing in verifier.accepted(now)
    end = 3 * SETTLE + max(read_delays)
    for peer in ring:
        peer.rotate(NEW, 0.0, SETTLE)  # the ones the instants never reached
        assert peer.accepted(end) == (NEW,)
