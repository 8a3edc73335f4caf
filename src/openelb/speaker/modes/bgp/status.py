"""Writes this node's part of BgpConf and BgpPeer status (DESIGN §2, §6).

speaker/: each speaker merge-patches only its own key under
`status.nodesConfStatus[node]` / `status.nodesPeerStatus[node]`, so speakers never
overwrite each other. Writes are skipped when nothing changed.
"""

import logging
from collections.abc import Mapping
from typing import Any

from openelb.api import annotations
from openelb.kube import client, errors, informer, resources
from openelb.planner import bgp

__all__ = ["StatusWriter", "session_state"]

log = logging.getLogger(__name__)

# OpenELB reports GoBGP's FSM names; keep them so existing dashboards still read.
_STATES = {
    "up": "BGP_FSM_ESTABLISHED",
    "connected": "BGP_FSM_OPENSENT",
    "down": "BGP_FSM_IDLE",
}


def session_state(exabgp_state: str | None, admin_down: bool = False) -> str:
    if admin_down:
        return "BGP_FSM_IDLE"
    return _STATES.get(exabgp_state or "", "BGP_FSM_ACTIVE")


class StatusWriter:
    def __init__(self, kube: client.Kube, node: str, bgpconfs: informer.Informer,
                 bgppeers: informer.Informer) -> None:
        self._kube = kube
        self._node = node
        self._confs = bgpconfs
        self._peers = bgppeers
        self._written: dict[str, Any] = {}

    async def write(self, plan: bgp.BgpPlan, sessions: Mapping[str, str],
                    reasons: Mapping[str, str] | None = None,
                    transitions: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """`reasons`: neighbour address -> why it is not reached (speaker/reachability),
        written as peerState.reason while the session is not established;
        `transitions`: neighbour address -> when its session last came up ("uptime")
        and went down ("downtime"), RFC 3339, written as timersState (GoBGP's names)."""
        try:
            await self._write_conf(plan)
            await self._write_peers(plan, sessions, reasons or {}, transitions or {})
        except errors.KubeError as exc:
            log.warning("bgp status not written", extra={"node": self._node, "error": str(exc)})
            self._written.clear()  # write everything again next time

    async def _write_conf(self, plan: bgp.BgpPlan) -> None:
        name = annotations.DEFAULT_BGPCONF_NAME
        if self._confs.get(name) is None:
            return
        mine = ({"routerId": plan.speaker.router_id, "as": plan.speaker.local_as}
                if plan.speaker is not None else None)
        await self._patch(resources.BGPCONFS, name, "nodesConfStatus", mine)

    async def _write_peers(self, plan: bgp.BgpPlan, sessions: Mapping[str, str],
                           reasons: Mapping[str, str],
                           transitions: Mapping[str, Mapping[str, str]]) -> None:
        selected = {p.name: p for p in plan.peers}
        for raw in self._peers.items():
            name = str((raw.get("metadata") or {}).get("name", ""))
            peer = selected.get(name)
            mine = None
            if peer is not None:
                state: dict[str, Any] = {
                    "neighborAddress": str(peer.address), "peerAs": peer.peer_as,
                    "localAs": peer.local_as, "routerId": peer.router_id,
                    "sessionState": session_state(sessions.get(str(peer.address)),
                                                  peer.admin_down),
                    "adminState": "ADMIN_STATE_DOWN" if peer.admin_down
                    else "ADMIN_STATE_UP",
                    # Why the session is not up, when known; null removes a stale one
                    # (this is a merge patch).
                    "reason": reasons.get(str(peer.address)),
                }
                times = transitions.get(str(peer.address), {})
                mine = {"peerState": state,
                        "timersState": {"holdTime": str(int(peer.hold_time)),
                                        "uptime": times.get("uptime"),
                                        "downtime": times.get("downtime")}}
            await self._patch(resources.BGPPEERS, name, "nodesPeerStatus", mine)

    async def _patch(self, kind: resources.Resource, name: str, field: str,
                     mine: dict[str, Any] | None) -> None:
        key = f"{kind.plural}/{name}"
        if self._written.get(key, "unset") == mine:
            return
        cache = self._confs if kind is resources.BGPCONFS else self._peers
        current = ((cache.get(name) or {}).get("status") or {}).get(field) or {}
        if mine is None and self._node not in current:
            self._written[key] = None
            return
        await self._kube.patch(kind, name, {"status": {field: {self._node: mine}}},
                               subresource="status")
        self._written[key] = mine
