"""Turns the planner's BgpPlan into ExaBGP sessions and routes (STYLE §2.8).

announce/bgp (DESIGN §3, §4). `await announcer.set(plan)` takes the whole desired
state: a changed peer set is applied by a config reload (only changed neighbours are
reset), routes are diffed per peer and sent as API commands. After ExaBGP or the
bridge restarts, everything desired is sent again. `aclose()` withdraws every route
and shuts ExaBGP down (NOTIFICATION Cease), so routers drop our paths at once.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from openelb.announce.bgp import config, engine, errors
from openelb.planner import bgp

__all__ = ["BgpAnnouncer"]

log = logging.getLogger(__name__)


def _route_command(verb: str, peer: str, route: bgp.Route) -> str:
    line = f"neighbor {peer} {verb} route {route.prefix} next-hop {route.next_hop}"
    if route.path_id is not None:
        line += f" path-information {route.path_id}"
    return line


class BgpAnnouncer:
    def __init__(self, workdir: Path,
                 on_session: Callable[[str, str], None] = lambda peer, state: None) -> None:
        self._engine = engine.Engine(workdir, on_event=self._event, on_connect=self._resend)
        self._on_session = on_session
        self._lock = asyncio.Lock()
        self._started = False
        self._config = ""
        self._desired: Mapping[str, frozenset[bgp.Route]] = {}
        self._sent: dict[str, frozenset[bgp.Route]] = {}
        self.sessions: dict[str, str] = {}  # peer address -> connected | up | down

    @property
    def engine(self) -> engine.Engine:
        return self._engine

    async def set(self, plan: bgp.BgpPlan | None) -> None:
        """Make ExaBGP's sessions and routes equal to `plan` (None: nothing at all)."""
        peers = plan.peers if plan is not None else ()
        speaker = plan.speaker if plan is not None else None
        text = config.render(speaker, peers, self._engine.bridge_argv)
        wanted = {str(p.address): (plan.routes.get(str(p.address), frozenset())
                                   if plan is not None else frozenset())
                  for p in peers if not p.admin_down}
        async with self._lock:
            self._desired = wanted
            if not self._started:
                if not wanted:
                    return  # nothing to do: don't even start ExaBGP
                self._config = text
                await self._engine.start(text)
                self._started = True
                await self._engine.wait_connected()
                return  # _resend (on connect) sends the routes
            if text != self._config:
                self._config = text
                await self._engine.reload(text)
                for gone in set(self._sent) - set(wanted):
                    del self._sent[gone]
                    self.sessions.pop(gone, None)
                    self._on_session(gone, "removed")
            await self._sync_routes()

    async def _sync_routes(self) -> None:
        for peer, routes in self._desired.items():
            sent = self._sent.get(peer, frozenset())
            for route in sorted(sent - routes):
                await self._engine.command(_route_command("withdraw", peer, route))
            for route in sorted(routes - sent):
                await self._engine.command(_route_command("announce", peer, route))
            self._sent[peer] = routes

    async def _resend(self) -> None:
        """A fresh bridge: ExaBGP may have restarted and know nothing; send it all."""
        async with self._lock:
            self._sent = {}
            try:
                await self._sync_routes()
            except errors.BgpEngineError as exc:
                log.warning("resend failed", extra={"op": "bgp", "error": str(exc)})

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("type") != "state":
            return
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
        self._on_session(peer, state)

    async def aclose(self) -> None:
        """Withdraw everything we announced, then stop ExaBGP."""
        async with self._lock:
            if self._started:
                try:
                    for peer, routes in self._sent.items():
                        for route in sorted(routes):
                            await self._engine.command(_route_command("withdraw", peer, route))
                except errors.BgpEngineError as exc:
                    log.warning("withdraw before exit failed", extra={"op": "bgp",
                                                                      "error": str(exc)})
                self._sent = {}
            await self._engine.stop()
            self._started = False
