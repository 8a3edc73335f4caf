"""Membership's timing: when the heartbeat loop must look for silence."""

from __future__ import annotations

import math

from openelb.announce.liveness import codec, membership


def test_next_expiry_is_when_the_first_live_peer_falls_silent() -> None:
    """What the heartbeat loop wakes for, so a dead peer is noticed at its timeout."""
    m = membership.Membership("node-a", started_at=0.0, timeout=1.0, far_timeout=6.0)
    assert m.next_expiry(10.0) is None
    for node, at in (("node-b", 10.0), ("node-c", 10.2)):
        m.accept(codec.Heartbeat(node, "b1", 1, 1000.0, frozenset()), at, 1000.0)
    assert m.next_expiry(10.3) == 11.0
    m.lenient = {"node-b": math.inf}  # node-b is far: its 6 s timeout applies
    assert m.next_expiry(10.3) == 11.2
    assert m.next_expiry(12.0) == 16.0  # node-c fell silent; node-b is alive until 16
