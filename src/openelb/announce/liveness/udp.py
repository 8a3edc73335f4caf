"""Sends and receives heartbeats over UDP on the event loop (no threads).

announce/liveness: the network half. Sends one datagram to every peer address every
`interval` seconds and feeds received datagrams through codec.decode and
Membership.accept; calls `on_change` when the set of live nodes changes, when a peer
rejoins (Membership.rejoins), when a joining peer starts claiming (the holder of its
addresses may let go now), and once when the membership settles, at the moment the
start-up hold-down ends (the speaker may claim now, and nothing else would make it plan
again if the live set did not change). A heartbeat goes out at once when there are
peers for the first time (the hold-down counts from there) and when the speaker says it
claims (`mark_claiming`), so peers do not wait an interval to hear either. `leave()`
(SIGTERM) stops the heartbeats with a last one saying so: the peers take over this
node's addresses at once, while it keeps answering for a moment (make before break).

Scope (issue #13): heartbeats go every `interval` only to the peers that share a
layer-2 pool with this node (each heartbeat says which pools its sender serves: the
Eips whose interface it resolved), and to peers not heard yet. The others, far peers,
get one every `far_interval`, and count as alive for `far_timeout`
(membership's Far peers): their liveness decides no address either side may claim.
When a peer turns near or far (either side's pools changed), both sides keep the full
rate and the lenient timeout for a grace period (`far_interval + timeout`), long enough
for the other side to hear of the change, so no one counts a peer dead for the switch.
A node with no layer-2 pool (BGP only) is far to everyone.

Cost: one ~150-byte datagram per near peer per interval each way; at 100 nodes on one
segment and 0.25 s that is 400 packets/s (60 kB/s) in and out per node, a full mesh.
Four racks of 25 on their own segments send 96 per node, plus 50 to the far ones.
A received heartbeat costs O(1) unless its sender was dead, starts claiming or changed
its pools (bench/layer2.py measures about 0.04 % of a core per peer per speaker).
"""

import asyncio
import contextlib
import logging
import math
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from openelb.announce.liveness import codec, keys, membership

__all__ = ["HeartbeatSettings", "Heartbeats"]

# A peer is alive while silent for at most its timeout: look just after it ends.
_SILENCE_MARGIN = 0.001

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HeartbeatSettings:
    port: int = 7473
    interval: float = 0.25  # how often a heartbeat goes to each peer
    timeout: float = 1.0  # silent this long -> dead (detection <= 1 s by default)
    refusal_log_every: float = 10.0  # at most one warning per refusal reason this often
    # A peer whose clock is off by more than this is reported (heartbeats are refused
    # beyond membership's 30 s window, which would count the peer dead: split ownership).
    skew_warn: float = 5.0
    key_check: float = 30.0  # how often the speaker re-reads the shared key's Secret
    far_interval: float = 2.0  # how often a heartbeat goes to a peer sharing no pool
    far_timeout: float = 6.0  # such a peer silent this long -> dead


OnRefused = Callable[[codec.Refused], None]
OnSkew = Callable[[str, float], None]  # (peer, its clock minus ours, in seconds)
# (peer, skew, whether it is now off by more than skew_warn): once per crossing.
OnSkewAlarm = Callable[[str, float, bool], None]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, received: Callable[[bytes], None]) -> None:
        self._received = received

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self._received(data)


class Heartbeats:
    def __init__(self, node: str, secret: bytes, settings: HeartbeatSettings,
                 on_change: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 on_refused: OnRefused = lambda reason: None,
                 on_skew: OnSkew = lambda peer, skew: None,
                 on_skew_alarm: OnSkewAlarm = lambda peer, skew, off: None) -> None:
        """`on_refused` sees every refused datagram's reason (for metrics); refusals are
        also logged, at most once per reason every `settings.refusal_log_every` s with
        the count since the last line, so a flood cannot flood the log."""
        self.node = node
        self._on_refused = on_refused
        self._on_skew = on_skew
        self._on_skew_alarm = on_skew_alarm
        self._skewed: set[str] = set()  # peers whose clock is off by more than skew_warn
        self._keys = keys.KeyRing(secret)  # signs what it sends, checks what it receives
        self.settings = settings
        self._on_change = on_change
        self._clock, self._wall = clock, wall
        self.state = membership.Membership(node, clock(), settings.timeout,
                                           far_timeout=settings.far_timeout)
        self._boot = secrets.token_hex(8)
        self._booted_at = wall()
        self._seq = 0
        self._peers: dict[str, str] = {}  # node -> address
        self._pools: frozenset[str] = frozenset()
        self._pools_known = False  # set once the speaker planned: until then all are near
        # peer -> (shares a pool with us or unheard, end of its grace period); see Scope
        self._scope: dict[str, tuple[bool, float]] = {}
        self._far_due = 0.0  # when the far peers get their next heartbeat
        self.sent = {"near": 0, "far": 0}  # datagrams sent, by scope
        self._transports: list[asyncio.DatagramTransport] = []
        self._task: asyncio.Task[None] | None = None
        self._last_live: frozenset[str] = frozenset()
        self._reported_settled = False
        self._sent_to_peers = False
        self._claiming = False
        self._wake = asyncio.Event()  # cuts the send loop's sleep short
        self.refused: dict[str, int] = {}
        self._refusals_logged: dict[codec.Refused, tuple[float, int]] = {}  # (at, count then)

    def set_peers(self, peers: Mapping[str, str]) -> None:
        """Peer node name -> address to send to (its InternalIP).

        The start-up hold-down (Membership.settled) counts from the first time there
        are peers to send to, not from start(): the peers must hear this speaker (and
        give up what it owns) before it claims, and until the speaker's caches synced
        it sent them nothing.
        """
        first = not self._peers and not self._sent_to_peers
        others = {n: a for n, a in peers.items() if n != self.node}
        renamed = others.keys() != self._peers.keys()
        self._peers = others
        if renamed:
            self._update_scope()
        if first and self._peers:
            self._sent_to_peers = True
            self.state.started_at = self._clock()
            self._reported_settled = False
            self._wake.set()

    @property
    def pools(self) -> frozenset[str]:
        """The layer-2 pools this node serves (the speaker sets them every round)."""
        return self._pools

    @pools.setter
    def pools(self, pools: frozenset[str]) -> None:
        if pools != self._pools or not self._pools_known:
            self._pools, self._pools_known = pools, True
            if self._update_scope():
                self._wake.set()

    def _update_scope(self) -> bool:
        """Sort the peers into near and far (see Scope); True when one switched."""
        now, grace = self._clock(), self.settings.far_interval + self.settings.timeout
        switched = False
        scope: dict[str, tuple[bool, float]] = {}
        for peer in self._peers:
            theirs = self.state.pools_of(peer)
            near = not self._pools_known or theirs is None or bool(theirs & self._pools)
            before = self._scope.get(peer)
            if before is None:
                scope[peer] = (near, now)  # unheard peers are near: no grace needed
            elif before[0] != near:
                switched = True
                scope[peer] = (near, now + grace)
            else:
                scope[peer] = before
        self._scope = scope
        self.state.lenient = {p: until if near else math.inf
                              for p, (near, until) in scope.items() if not near or now < until}
        return switched

    def mark_claiming(self) -> None:
        """The speaker applied its first claims after the hold-down: say so to the peers
        now (a peer holding our addresses until then lets go of them)."""
        if not self._claiming:
            self._claiming = True
            self._wake.set()

    def rotate(self, secret: bytes, settle: float) -> None:
        """A new shared key (the Secret changed): accepted at once, signed with after
        `settle` seconds, the old key accepted `settle` longer (keys.py)."""
        if self._keys.rotate(secret, self._clock(), settle):
            log.info("heartbeat key rotating", extra={"op": "liveness", "node": self.node,
                                                      "settle_s": settle})

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Protocol(self._received), local_addr=(host, self.settings.port),
                    family=family, reuse_port=True)
            except OSError as exc:
                log.warning("heartbeat socket not opened", extra={
                    "op": "liveness", "error": str(exc), "family": family.name})
                continue
            if family == socket.AF_INET6:
                sock = transport.get_extra_info("socket")
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            self._transports.append(transport)
        self._task = asyncio.create_task(self._send_loop(), name="heartbeats")

    def _received(self, data: bytes) -> None:
        accepted = self._keys.accepted(self._clock())
        decoded = codec.decode(data, accepted[0])
        for other in accepted[1:]:  # during a key rotation
            if decoded is not codec.Refused.BAD_MAC:
                break
            decoded = codec.decode(data, other)
        if isinstance(decoded, codec.Refused):
            self._refuse(decoded)
            return
        now, rejoins = self._clock(), self.state.rejoins
        # A heartbeat can only add its sender to the live set: the whole set is only
        # recomputed when the sender was not alive (O(1) per packet, not O(peers)).
        known = self.state.heard(decoded.node, now)
        was_joining = self.state.is_joining(decoded.node, now)
        pools_before = self.state.pools_of(decoded.node)
        refusal = self.state.accept(decoded, now, self._wall())
        if refusal is not None:
            self._refuse(refusal, decoded.node)
            return
        if (not decoded.leaving and self.state.pools_of(decoded.node) != pools_before
                and decoded.node in self._peers and self._update_scope()):
            self._wake.set()  # a peer turned near: it hears from us at the full rate now
        self._check_skew(decoded)
        if decoded.leaving:
            if known:
                log.info("peer leaving", extra={"op": "liveness", "node": self.node,
                                                "peer": decoded.node})
                self._check_change()
            return
        started_claiming = was_joining and decoded.claiming
        if started_claiming:
            log.info("peer claiming", extra={"op": "liveness", "node": self.node,
                                              "peer": decoded.node})
        if not known or started_claiming:
            self._check_change(rejoined=self.state.rejoins != rejoins,
                               claimed=started_claiming)

    def _refuse(self, reason: codec.Refused, claimed_sender: str = "") -> None:
        count = self.refused[reason] = self.refused.get(reason, 0) + 1
        self._on_refused(reason)
        now = self._clock()
        last_at, count_then = self._refusals_logged.get(reason, (None, 0))
        if last_at is None or now - last_at >= self.settings.refusal_log_every:
            # The sender's name is only what the datagram claims; a refused MAC says
            # nothing trustworthy, so only authenticated refusals carry it.
            log.warning("heartbeats refused", extra={
                "op": "liveness", "node": self.node, "reason": str(reason),
                "peer": claimed_sender, "count": count - count_then})
            self._refusals_logged[reason] = (now, count)

    def _check_skew(self, beat: codec.Heartbeat) -> None:
        """Report a peer whose wall clock is off by more than `skew_warn` (once per
        crossing; transit time, milliseconds, counts as skew too)."""
        # The sender's clock minus ours: positive when the peer runs ahead.
        skew = beat.sent_at - self._wall()
        self._on_skew(beat.node, skew)
        off = abs(skew) > self.settings.skew_warn
        if off == (beat.node in self._skewed):
            return
        fields = {"op": "liveness", "node": self.node, "peer": beat.node,
                  "skew_s": round(skew, 3), "limit_s": self.settings.skew_warn}
        if off:
            self._skewed.add(beat.node)
            log.warning("peer clock skewed", extra=fields)
        else:
            self._skewed.discard(beat.node)
            log.info("peer clock back in step", extra=fields)
        self._on_skew_alarm(beat.node, skew, off)

    def live_peers(self) -> int:
        """How many other speakers are alive now, as the heartbeats say."""
        return len(self.state.live(self._clock()) - {self.node}) if self._peers else 0

    def _check_change(self, rejoined: bool = False, claimed: bool = False) -> None:
        now = self._clock()
        live = self.state.live(now)
        # A rejoin: the speaker announces its addresses again (Membership); a peer that
        # started claiming: the holder of its addresses lets go.
        changed = rejoined or claimed
        if live != self._last_live:
            log.info("live speakers changed", extra={
                "op": "liveness", "node": self.node,
                "joined": ",".join(sorted(live - self._last_live)),
                "left": ",".join(sorted(self._last_live - live))})
            self._last_live = live
            changed = True
        if not self._reported_settled and self.state.settled(now):
            # The hold-down is over: the speaker must plan again to claim what it owns,
            # even when the live set stayed the same all along.
            log.info("live speakers settled", extra={
                "op": "liveness", "node": self.node, "live": ",".join(sorted(live))})
            self._reported_settled = True
            changed = True
        if changed:
            self._on_change()

    def _send(self, *, leaving: bool = False) -> None:
        self._seq += 1
        self._keys.tick(self._clock())  # a rotation may have reached its signing step
        packet = codec.encode(codec.Heartbeat(self.node, self._boot, self._seq, self._wall(),
                                              self._pools, self._claiming, leaving,
                                              self._booted_at, self._pools_known),
                              self._keys.signing)
        self._update_scope()  # grace periods end
        now = self._clock()
        far_now = leaving or now >= self._far_due
        if far_now:
            self._far_due = now + self.settings.far_interval
        for peer, address in list(self._peers.items()):
            near, until = self._scope.get(peer, (True, 0.0))
            kind = "near" if near or now < until else "far"
            if kind == "far" and not far_now:
                continue
            self.sent[kind] += 1
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            for transport in self._transports:
                sock = transport.get_extra_info("socket")
                if sock is not None and sock.family == family:
                    with contextlib.suppress(OSError):
                        transport.sendto(packet, (address, self.settings.port))

    async def _send_loop(self) -> None:
        """Send every interval (at once when woken), and look for silence exactly when
        the first live peer's timeout ends: a dead peer is noticed at its timeout, not
        up to an interval later, which would add ~0.1 s to the median failover."""
        next_send = self._clock()
        while True:
            now = self._clock()
            if now >= next_send:
                self._send()
                next_send = now + self.settings.interval
            self._check_change()
            wake_at = next_send
            expiry = self.state.next_expiry(now)
            if expiry is not None:
                wake_at = min(wake_at, expiry + _SILENCE_MARGIN)
            if self._sent_to_peers and not self._reported_settled:
                # Wake when the hold-down ends, not up to an interval later.
                wake_at = min(wake_at, self.state.started_at + self.settings.timeout)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wake_at - self._clock())):
                    await self._wake.wait()
                    next_send = self._clock()  # woken: send now

    def live(self, fallback: Iterable[str] = ()) -> frozenset[str]:
        return self.state.live(self._clock(), fallback)

    def serving(self) -> dict[str, frozenset[str]]:
        return self.state.serving(self._clock())

    def joining(self) -> frozenset[str]:
        return self.state.joining(self._clock())

    def settled(self) -> bool:
        return self.state.settled(self._clock())

    @property
    def rejoins(self) -> int:
        """How many times a peer came back without having restarted (Membership)."""
        return self.state.rejoins

    async def leave(self) -> None:
        """Stop the heartbeats and tell the peers this speaker is leaving (twice, one
        interval apart, in case a datagram is lost). Returns after that interval, in
        which the caller still answers while the peers take over."""
        await self._stop_sending()
        if not self._peers or not self._transports:
            return
        self._send(leaving=True)
        await asyncio.sleep(self.settings.interval)
        self._send(leaving=True)

    async def _stop_sending(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def aclose(self) -> None:
        await self._stop_sending()
        for transport in self._transports:
            transport.close()
        self._transports.clear()
