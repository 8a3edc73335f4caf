"""Says why a BGP session of this node does not come up, in the BgpPeer's status.

speaker/ (DESIGN §4 never silent, issue #19). After each plan round the speaker hands
over its peers and their session states. A neighbour whose address is this node's own
is named at once (`neighborIsThisNode`). A neighbour whose session has been down for
`grace` seconds is probed with announce/bgp/reach (one TCP connection, closed at once)
at most every `every` seconds; the reason, or none when the router accepts, is kept
until the session comes up. The grace keeps the probe away from sessions that are
simply still starting. Owns its probe tasks; `aclose()` cancels them.
"""

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from openelb.announce.bgp import reach
from openelb.api import addresses
from openelb.planner import bgp

__all__ = ["PeerReachability"]

log = logging.getLogger(__name__)


class PeerReachability:
    def __init__(self, node: str, on_change: Callable[[], None], *, grace: float = 10.0,
                 every: float = 30.0, clock: Callable[[], float] | None = None) -> None:
        self.node = node
        self.reasons: dict[str, str] = {}  # neighbour address -> why it is not reached
        self._on_change = on_change
        self._grace, self._every = grace, every
        self._clock = clock or asyncio.get_running_loop().time
        self._down_since: dict[str, float] = {}
        self._probed_at: dict[str, float] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def update(self, peers: Iterable[bgp.PeerSpec], sessions: Mapping[str, str],
               own: Iterable[addresses.IPAddress]) -> None:
        now, mine = self._clock(), set(own)
        current: set[str] = set()
        for peer in peers:
            address = str(peer.address)
            if peer.admin_down or sessions.get(address) == "up":
                continue
            current.add(address)
            if peer.address in mine:
                self._set(address, reach.Unreachable.NEIGHBOR_IS_THIS_NODE)
                continue
            since = self._down_since.setdefault(address, now)
            if (peer.passive or peer.password or address in self._tasks
                    or now - since < self._grace
                    or now - self._probed_at.get(address, -self._every) < self._every):
                continue
            self._probed_at[address] = now
            self._tasks[address] = asyncio.create_task(
                self._probe(address, peer.remote_port), name=f"bgp-reach-{address}")
        for address in set(self._down_since) - current:
            del self._down_since[address]
        for address in set(self.reasons) - current:
            self._set(address, None)

    async def _probe(self, address: str, port: int) -> None:
        try:
            self._set(address, await reach.why_unreachable(address, port))
        finally:
            self._tasks.pop(address, None)

    def _set(self, address: str, reason: str | None) -> None:
        if self.reasons.get(address) == reason:
            return
        if reason is None:
            self.reasons.pop(address, None)
        else:
            self.reasons[address] = reason
            log.warning("bgp neighbour not reached", extra={
                "op": "bgp", "node": self.node, "peer": address, "reason": reason})
        self._on_change()

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
