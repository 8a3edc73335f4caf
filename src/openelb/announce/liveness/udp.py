"""Sends and receives heartbeats over UDP on the event loop (no threads).

announce/liveness: the network half. Sends one datagram to every peer address every
`interval` seconds and feeds received datagrams through codec.decode and
Membership.accept; calls `on_change` when the set of live nodes changes. Cost: one
~150-byte datagram per peer per interval each way; at 100 nodes and 0.25 s that is
400 packets/s (60 kB/s) in and out per node.
"""

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from openelb.announce.liveness import codec, membership

__all__ = ["HeartbeatSettings", "Heartbeats"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HeartbeatSettings:
    port: int = 7473
    interval: float = 0.25  # how often a heartbeat goes to each peer
    timeout: float = 1.0  # silent this long -> dead (detection <= 1 s by default)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, received: Callable[[bytes], None]) -> None:
        self._received = received

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self._received(data)


class Heartbeats:
    def __init__(self, node: str, secret: bytes, settings: HeartbeatSettings,
                 on_change: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.node = node
        self._secret = secret
        self.settings = settings
        self._on_change = on_change
        self._clock, self._wall = clock, wall
        self.state = membership.Membership(node, clock(), settings.timeout)
        self._boot = secrets.token_hex(8)
        self._seq = 0
        self._peers: dict[str, str] = {}  # node -> address
        self.pools: frozenset[str] = frozenset()
        self._transports: list[asyncio.DatagramTransport] = []
        self._task: asyncio.Task[None] | None = None
        self._last_live: frozenset[str] = frozenset()
        self.refused: dict[str, int] = {}

    def set_peers(self, peers: Mapping[str, str]) -> None:
        """Peer node name -> address to send to (its InternalIP)."""
        self._peers = {n: a for n, a in peers.items() if n != self.node}

    def set_secret(self, secret: bytes) -> None:
        self._secret = secret

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
        decoded = codec.decode(data, self._secret)
        if isinstance(decoded, codec.Refused):
            self.refused[decoded] = self.refused.get(decoded, 0) + 1
            return
        refusal = self.state.accept(decoded, self._clock(), self._wall())
        if refusal is not None:
            self.refused[refusal] = self.refused.get(refusal, 0) + 1
            return
        self._check_change()

    def _check_change(self) -> None:
        live = self.state.live(self._clock())
        if live != self._last_live:
            log.info("live speakers changed", extra={
                "op": "liveness", "node": self.node,
                "joined": ",".join(sorted(live - self._last_live)),
                "left": ",".join(sorted(self._last_live - live))})
            self._last_live = live
            self._on_change()

    async def _send_loop(self) -> None:
        while True:
            self._seq += 1
            packet = codec.encode(codec.Heartbeat(self.node, self._boot, self._seq,
                                                  self._wall(), self.pools), self._secret)
            for address in list(self._peers.values()):
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                for transport in self._transports:
                    sock = transport.get_extra_info("socket")
                    if sock is not None and sock.family == family:
                        with contextlib.suppress(OSError):
                            transport.sendto(packet, (address, self.settings.port))
            self._check_change()  # silence is noticed here, once per interval
            await asyncio.sleep(self.settings.interval)

    def live(self, fallback: Iterable[str] = ()) -> frozenset[str]:
        return self.state.live(self._clock(), fallback)

    def serving(self) -> dict[str, frozenset[str]]:
        return self.state.serving(self._clock())

    def settled(self) -> bool:
        return self.state.settled(self._clock())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for transport in self._transports:
            transport.close()
        self._transports.clear()
