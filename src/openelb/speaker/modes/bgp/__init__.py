"""BGP mode: sessions to the routers, this node as next hop (a speaker Mode).

speaker/modes (DESIGN §2, §3, §4 fate-sharing). Each round: planner/bgp turns the
snapshot into sessions and routes, the BgpAnnouncer (ExaBGP) makes them so, and this
node's part of BgpConf/BgpPeer status is written, with why a peer is not reached.
"""

import logging
import time

from openelb.announce.bgp import announcer
from openelb.announce.bgp import errors as bgp_errors
from openelb.planner import bgp as bgp_plan
from openelb.planner import snapshot
from openelb.speaker import seam
from openelb.speaker.modes.bgp import reachability, status

__all__ = ["BgpMode"]

log = logging.getLogger(__name__)


class BgpMode:
    name = "bgp"
    how = "over BGP"
    retryable: tuple[type[Exception], ...] = (bgp_errors.BgpEngineError,)

    def __init__(self, ctx: seam.ModeContext) -> None:
        self._ctx = ctx
        node = ctx.settings.node
        self.announcer = announcer.BgpAnnouncer(ctx.settings.workdir / "bgp",
                                                self._session_changed)
        self.status = status.StatusWriter(ctx.kube, node, ctx.informers["bgpconfs"],
                                          ctx.informers["bgppeers"])
        self.reachability = reachability.PeerReachability(node, ctx.wake)
        self._planner = bgp_plan.BgpPlanner()  # plans what changed (planner/incremental.py)
        # peer address -> when its session last came up and last went down (RFC 3339),
        # written as timersState.uptime/downtime
        self._transitions: dict[str, dict[str, str]] = {}
        self._up: dict[str, bool] = {}  # peer address -> its session is established

    def _session_changed(self, peer: str, state: str) -> None:
        self._ctx.stats.session_up.labels(peer).set(1 if state == "up" else 0)
        up = state == "up"
        if self._up.get(peer) != up:
            self._up[peer] = up
            self._transitions.setdefault(peer, {})["uptime" if up else "downtime"] = (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self._ctx.wake()  # status carries the session state

    async def start(self) -> None:
        return None

    def ready(self) -> tuple[bool, str]:
        engine = self.announcer.engine
        if engine.started and not engine.running:
            return False, f"exabgp not running (restarted {engine.restarts} times)"
        return True, "ok"

    async def apply(self, snap: snapshot.Snapshot) -> seam.Round:
        plan = self._planner.plan(snap)
        await self.announcer.set(plan)
        # Peers of one family share one route set (the planner's, not a copy).
        distinct = list({id(routes): routes for routes in plan.routes.values()}.values())
        self._ctx.stats.announced_prefixes.set(
            len(distinct[0]) if len(distinct) == 1 else
            len({r.address for routes in distinct for r in routes}))
        info = snap.nodes.get(snap.node)
        self.reachability.update(plan.peers, self.announcer.sessions,
                                 info.internal_ips if info is not None else ())
        await self.status.write(plan, self.announcer.sessions, self.reachability.reasons,
                                self._transitions)
        return seam.Round(plan.announced, plan.skipped,
                          (plan.peers, frozenset(plan.routes.items())))

    async def aclose(self) -> None:
        await self.reachability.aclose()
        await self.announcer.aclose()
