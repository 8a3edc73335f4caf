"""Who is alive, from heartbeats: the pure state machine behind layer-2 failover.

announce/liveness; pure, clocks passed in. A peer is alive while its last accepted
heartbeat is younger than `timeout` (monotonic clock). Rules for the edges:

* Start-up: for the first `timeout` after start this speaker reports `settled=False`,
  and the speaker keeps its claims empty, so a fresh speaker never answers for an
  address before it has heard the others.
* Fallback: if this speaker has never accepted a heartbeat from any peer since it
  started (heartbeats blocked or misconfigured), it falls back to `fallback` — the
  nodes the apiserver reports Ready — so all speakers still agree on one owner, at
  apiserver speed. Once any peer has been heard, heartbeats alone decide.
* Split brain: if heartbeats stop flowing between speakers that can still reach the
  LAN (e.g. a firewall change), each side takes over the other's addresses and two
  nodes may answer ARP for one address until heartbeats return. Keep the heartbeat
  port open between nodes.
* Rejoin: a peer heard again with the same boot id after it was dead kept running
  while we could not hear it (a cut link, lost heartbeats) and may have taken our
  addresses meanwhile, and the LAN may still point at it. `rejoins` counts such
  returns, so the speaker can announce what it owns once more. A peer that comes back
  with a new boot id restarted: it claimed nothing while down, nothing to correct.
* Boots are ordered: each heartbeat carries when its boot began (`booted_at`), and a
  boot older than the node's current, live one is refused (`oldBoot`), so packets
  captured before a restart cannot be replayed after it within the skew window. A
  heartbeat without `booted_at` (a speaker that predates it) counts as older than any
  boot that has one. Once the current boot has been silent for the timeout, a boot
  that looks older is taken: the node may have restarted after its clock stepped back,
  and refusing it would leave two nodes claiming its addresses.
* Leaving: a peer's last heartbeat says it stops (SIGTERM); it is dead from then on,
  so its addresses move at once instead of one timeout later. Only a goodbye of the
  node's current boot counts (`otherBoot` otherwise). Its boot and sequence number are
  kept, so a replay of that heartbeat is refused like any other, and if the peer is
  heard again with that boot it counts as a rejoin (this node announces again).
* Far peers: a peer that shares no layer-2 pool with this node (udp.py sends to it, and
  it to us, only every `far_interval`) is alive while its last heartbeat is younger
  than `far_timeout`. Its liveness decides no address this node may claim, so the
  longer timeout costs nothing but the precision of the `owners` map. The sender side
  decides who is far (`lenient`), with a grace period whenever that changes.
* Joining: a live peer whose heartbeats say it is not claiming yet (its own start-up
  hold-down) is `joining`. The node that holds an address such a peer will own keeps
  answering for it until the peer says it claims (make before break, planner's
  ownership), so a returning node never leaves its addresses unanswered for a timeout.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from openelb.announce.liveness import codec

__all__ = ["Membership"]


@dataclass
class _Peer:
    boot: str
    seq: int
    heard_at: float
    pools: frozenset[str]
    claiming: bool
    booted_at: float | None = None
    scoped: bool = False  # its pools are known (codec.Heartbeat.scoped)


@dataclass
class Membership:
    node: str
    started_at: float  # monotonic
    timeout: float = 1.0
    max_skew: float = 30.0  # accepted wall-clock difference, for replay safety
    far_timeout: float = 6.0  # the timeout of the peers in `lenient` (see Far peers)
    # peer -> until when (monotonic; inf: for good) far_timeout applies to it
    lenient: Mapping[str, float] = field(default_factory=dict)
    _peers: dict[str, _Peer] = field(default_factory=dict)
    _heard_anyone: bool = False
    rejoins: int = 0  # returns of a peer that was dead but did not restart (see Rejoin)

    def accept(self, beat: codec.Heartbeat, now: float, wall: float
               ) -> codec.Refused | None:
        """Take a verified heartbeat; returns why it was refused, or None."""
        if beat.node == self.node:
            return codec.Refused.NOT_OURS
        if abs(wall - beat.sent_at) > self.max_skew:
            return codec.Refused.STALE
        known = self._peers.get(beat.node)
        same_boot = known is not None and known.boot == beat.boot
        if known is not None and same_boot and beat.seq <= known.seq:
            return codec.Refused.REPLAYED
        if (known is not None and not same_boot and self._alive(beat.node, known, now)
                and _older(beat.booted_at, known.booted_at)):
            return codec.Refused.OLD_BOOT
        # A newer boot id (the peer restarted) starts a new sequence.
        if beat.leaving:
            if not same_boot:
                return codec.Refused.OTHER_BOOT
            self._peers[beat.node] = _Peer(beat.boot, beat.seq, -math.inf, frozenset(), True,
                                           beat.booted_at)
            return None
        if known is not None and same_boot and not self._alive(beat.node, known, now):
            self.rejoins += 1
        self._peers[beat.node] = _Peer(beat.boot, beat.seq, now, beat.pools, beat.claiming,
                                       beat.booted_at, beat.scoped)
        self._heard_anyone = True
        return None

    def _limit(self, node: str, now: float) -> float:
        """How long `node` may be silent and still count as alive (see Far peers)."""
        return self.far_timeout if now < self.lenient.get(node, -math.inf) else self.timeout

    def _alive(self, node: str, peer: _Peer, now: float) -> bool:
        return now - peer.heard_at <= self._limit(node, now)

    def settled(self, now: float) -> bool:
        return now - self.started_at >= self.timeout

    def heard(self, node: str, now: float) -> bool:
        """Whether `node`'s heartbeats count it alive now (O(1), for every packet)."""
        peer = self._peers.get(node)
        return peer is not None and self._alive(node, peer, now)

    def pools_of(self, node: str) -> frozenset[str] | None:
        """The layer-2 pools `node` last said it serves; None when unknown (never heard,
        or its heartbeats do not say: codec.Heartbeat.scoped)."""
        peer = self._peers.get(node)
        return None if peer is None or not peer.scoped else peer.pools

    def joining(self, now: float) -> frozenset[str]:
        """Live peers that do not claim yet (see Joining)."""
        return frozenset(n for n, p in self._peers.items()
                         if not p.claiming and self._alive(n, p, now))

    def is_joining(self, node: str, now: float) -> bool:
        peer = self._peers.get(node)
        return peer is not None and not peer.claiming and self._alive(node, peer, now)

    def next_expiry(self, now: float) -> float | None:
        """When the first peer alive now falls silent for its timeout unless heard
        again (monotonic); None when no peer is alive."""
        ends = [p.heard_at + self._limit(n, now)
                for n, p in self._peers.items() if self._alive(n, p, now)]
        return min(ends, default=None)

    def live(self, now: float, fallback: Iterable[str] = ()) -> frozenset[str]:
        """Alive nodes, this one included."""
        if not self._heard_anyone:
            return frozenset({self.node, *fallback})
        alive = {n for n, p in self._peers.items() if self._alive(n, p, now)}
        return frozenset({self.node, *alive})

    def serving(self, now: float) -> dict[str, frozenset[str]]:
        """Layer-2 pools each alive peer says it can serve."""
        return {n: p.pools for n, p in self._peers.items() if self._alive(n, p, now)}


def _older(booted_at: float | None, current: float | None) -> bool:
    """Whether a boot that began at `booted_at` predates the node's current boot."""
    if current is None:
        return False  # the current boot predates boot times: nothing to order by
    return booted_at is None or booted_at <= current
