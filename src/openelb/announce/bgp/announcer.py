"""Turns the planner's BgpPlan into ExaBGP sessions and routes (STYLE §2.8).

announce/bgp (DESIGN §3, §4). `await announcer.set(plan)` takes the whole desired
state: a changed peer set is applied by a config reload (only changed neighbours are
reset), routes are diffed per peer and sent as API commands. After ExaBGP or the
bridge restarts, everything desired is sent again.

`aclose()` (SIGTERM) stops ExaBGP, which closes every session: a closed session takes
all of its routes with it at the router in one step (RFC 4271 §8.2.2), which at 1,100
prefixes is ~0.05 s where ExaBGP's per-prefix withdraws take ~1 s. Only over sessions
with graceful restart, where the router would keep the routes as stale (RFC 4724), are
they withdrawn one by one first.

Routes go to a neighbour only while its session is up; when it comes up, the routes it
lacks are sent at once. ExaBGP would queue them for a neighbour that is down, and while
anything is queued it drops every reload (exabgp 5.0.15, reactor/loop.py): one
unreachable router, or a wrong MD5 password, would freeze the configuration of every
peer, including the fix. Whatever ExaBGP already sent stays in its adj-rib-out and is
re-sent by ExaBGP itself after a flap; what changed meanwhile follows right after.
"""

import asyncio
import functools
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from openelb.announce.bgp import config, engine, errors
from openelb.planner import bgp

__all__ = ["BgpAnnouncer"]

log = logging.getLogger(__name__)


# Prefixes per API command: one `attributes ... nlri P1 P2 ...` line carries many routes
# that share their attributes, answered by one ack (a command per route costs a round
# trip through the bridge each: seconds for a thousand Services).
BATCH = 200


def _route_commands(verb: str, peer: str, routes: Iterable[bgp.Route]) -> Iterator[str]:
    """ExaBGP commands announcing or withdrawing `routes`, grouped by next hop and path
    id (the attributes they share), at most BATCH prefixes each."""
    def shared(route: bgp.Route) -> tuple[str, int]:
        return str(route.next_hop), -1 if route.path_id is None else route.path_id

    for (next_hop, path_id), group in itertools.groupby(sorted(routes, key=shared), key=shared):
        head = f"neighbor {peer} {verb} attributes"
        if path_id >= 0:
            head += f" path-information {path_id}"
        prefixes = [r.prefix for r in sorted(group, key=lambda r: r.address)]
        for start in range(0, len(prefixes), BATCH):
            nlri = " ".join(prefixes[start:start + BATCH])
            yield f"{head} next-hop {next_hop} nlri {nlri}"


def _rib_identity(peer: bgp.PeerSpec) -> tuple[object, ...]:
    # What ExaBGP names a neighbour's adj-rib-out by (exabgp 5.0.15, Neighbor.name()).
    local = peer.local_address if (peer.local_address is not None
                                   and peer.local_address.version == peer.address.version
                                   ) else None
    return (peer.address, local, peer.local_as, peer.peer_as, peer.router_id)


class BgpAnnouncer:
    def __init__(self, workdir: Path,
                 on_session: Callable[[str, str], None] = lambda peer, state: None) -> None:
        self._engine = engine.Engine(workdir, on_event=self._event, on_connect=self._resend)
        self._on_session = on_session
        self._lock = asyncio.Lock()
        self._started = False
        self._config = ""
        self._peers: dict[str, bgp.PeerSpec] = {}  # configured in ExaBGP, by address
        self._desired: Mapping[str, frozenset[bgp.Route]] = {}
        # What ExaBGP may hold per peer: a route is added before its announce is sent
        # and removed once its withdraw is acknowledged, so this never misses a route.
        self._sent: dict[str, set[bgp.Route]] = {}
        self._generation = 0  # ExaBGP process the session states below belong to
        self._tasks: set[asyncio.Task[None]] = set()
        self.sessions: dict[str, str] = {}  # peer address -> connected | up | down

    @property
    def engine(self) -> engine.Engine:
        return self._engine

    async def set(self, plan: bgp.BgpPlan | None) -> None:
        """Make ExaBGP's sessions and routes equal to `plan` (None: nothing at all)."""
        peers = plan.peers if plan is not None else ()
        speaker = plan.speaker if plan is not None else None
        text = config.render(speaker, peers, self._engine.bridge_argv)
        configured = {str(p.address): p for p in peers if not p.admin_down}
        wanted = {address: (plan.routes.get(address, frozenset()) if plan is not None
                            else frozenset())
                  for address in configured}
        async with self._lock:
            self._desired = wanted
            if not self._started:
                if not wanted:
                    return  # nothing to do: don't even start ExaBGP
                await self._engine.start(text)
                self._config, self._peers = text, configured
                self._started = True
                await self._engine.wait_connected()
                return  # _resend (on connect) and session events send the routes
            if text != self._config:
                await self._reconfigure(speaker, peers, text, configured)
            await self._sync_routes()

    async def _reconfigure(self, speaker: bgp.GlobalSpec | None, peers: tuple[bgp.PeerSpec, ...],
                           text: str, configured: dict[str, bgp.PeerSpec]) -> None:
        renamed = {address for address, spec in configured.items()
                   if address in self._peers
                   and _rib_identity(self._peers[address]) != _rib_identity(spec)}
        if renamed:
            # ExaBGP files a neighbour's adj-rib-out under its identity and keeps it
            # across reloads: under a new identity it would start empty while we think
            # our routes are there, and the old one would return with stale routes if
            # the identity came back. Removing the neighbour first drops its RIB.
            interim = functools.partial(
                config.render, speaker, [p for p in peers if str(p.address) not in renamed],
                self._engine.bridge_argv)
            await self._engine.reload(interim)
            for address in renamed:
                self._forget(address, "down")
        await self._engine.reload(functools.partial(config.render, speaker, peers,
                                                    self._engine.bridge_argv))
        for address in set(self._peers) - set(configured):
            self._forget(address, "removed")
        self._config, self._peers = text, configured

    def _forget(self, address: str, state: str) -> None:
        self._sent.pop(address, None)
        if self.sessions.pop(address, None) is not None or state == "removed":
            self._on_session(address, state)

    async def _sync_routes(self) -> None:
        for peer, routes in self._desired.items():
            if self.sessions.get(peer) != "up":
                continue  # sent when the session comes up (see the module docstring)
            sent = self._sent.setdefault(peer, set())
            await self._send("withdraw", peer, sent - routes)
            await self._send("announce", peer, routes - sent)

    async def _send(self, verb: str, peer: str, routes: AbstractSet[bgp.Route]) -> None:
        """Announce or withdraw `routes` to `peer`, keeping `_sent` a superset of what
        ExaBGP holds (announces are noted before they are sent, withdraws after)."""
        sent = self._sent.setdefault(peer, set())
        if verb == "announce":
            sent |= routes
        for line in _route_commands(verb, peer, routes):
            await self._engine.command(line)
        if verb == "withdraw":
            sent -= routes

    def _check_generation(self) -> None:
        """Session states belong to one ExaBGP process: forget them when it restarted."""
        generation = self._engine.restarts
        if generation == self._generation:
            return
        self._generation = generation
        self._sent = {}  # a new ExaBGP knows nothing
        for peer in list(self.sessions):
            self.sessions.pop(peer)
            self._on_session(peer, "down")

    async def _resend(self) -> None:
        """A fresh bridge: ExaBGP may have restarted and know nothing; send it all."""
        async with self._lock:
            self._check_generation()
            await self._sync_or_log("resend failed")

    async def _sync_or_log(self, what: str) -> None:
        try:
            await self._sync_routes()
        except errors.BgpEngineError as exc:
            log.warning(what, extra={"op": "bgp", "error": str(exc)})

    async def _sync_now(self) -> None:
        async with self._lock:
            if self._started:
                await self._sync_or_log("sending routes to a new session failed")

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("type") != "state":
            return
        self._check_generation()
        neighbor = event.get("neighbor") or {}
        peer = str((neighbor.get("address") or {}).get("peer", ""))
        state = str(neighbor.get("state", ""))
        if not peer or self.sessions.get(peer) == state:
            return
        old = self.sessions.get(peer, "idle")
        self.sessions[peer] = state
        log.info("bgp session state", extra={"op": "bgp", "peer": peer, "old": old,
                                             "new": state,
                                             "reason": neighbor.get("reason", "")})
        if state == "up":
            task = asyncio.get_running_loop().create_task(self._sync_now(),
                                                          name=f"bgp-up-{peer}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._on_session(peer, state)

    async def aclose(self) -> None:
        """Withdraw everything we announced, then stop ExaBGP."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self._lock:
            if self._started:
                try:
                    for peer, routes in list(self._sent.items()):
                        spec = self._peers.get(peer)
                        if (self.sessions.get(peer) != "up" or spec is None
                                or spec.graceful_restart is None):
                            continue  # closing the session withdraws them all at once
                        await self._send("withdraw", peer, frozenset(routes))
                except errors.BgpEngineError as exc:
                    log.warning("withdraw before exit failed", extra={"op": "bgp",
                                                                      "error": str(exc)})
                self._sent = {}
            await self._engine.stop()
            self._started = False
