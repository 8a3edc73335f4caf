"""What this node announces over BGP and to whom: the pure half of BGP mode.

Pure (DESIGN §3, §4 fate-sharing); called by planner/__init__.py, consumed by
announce/bgp/. Each node announces only itself as next hop (its InternalIP of the
prefix's family), so when it dies its session drops and exactly its paths vanish.
Routes carry an explicit next hop and an optional ADD-PATH path id so the announcer can
later carry several paths per prefix (DESIGN §4, future work).
"""

import collections
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from openelb import validation
from openelb.api import addresses, annotations, bgp, service
from openelb.planner import eligibility, incremental, snapshot

__all__ = ["BgpPlan", "BgpPlanner", "GlobalSpec", "PeerSpec", "Route", "plan_bgp"]

DEFAULT_HOLD_TIME = 90.0


@dataclass(frozen=True, slots=True, order=True)
class Route:
    """The host route `address`/32 (or /128) via `next_hop`: we announce nothing else.

    Holds the address itself, not an ip_network: the plan is rebuilt after every burst
    of changes, and a network object per Service cost ~0.7 KB each time.
    """

    address: addresses.IPAddress
    next_hop: addresses.IPAddress
    path_id: int | None = None

    @property
    def prefix(self) -> str:
        return f"{self.address}/{self.address.max_prefixlen}"


@dataclass(frozen=True, slots=True)
class GlobalSpec:
    router_id: str
    local_as: int
    listen_port: int = 179  # -1: do not listen (only outgoing sessions)
    listen_addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """One BGP session this node keeps; equality decides whether it must be reset."""

    name: str  # the BgpPeer object
    address: addresses.IPAddress
    peer_as: int
    local_as: int
    router_id: str
    local_address: addresses.IPAddress | None = None
    password: str = ""
    hold_time: float = DEFAULT_HOLD_TIME
    keepalive: float | None = None
    connect_retry: float | None = None
    multihop_ttl: int | None = None
    passive: bool = False
    remote_port: int = 179
    families: frozenset[int] = frozenset({4})
    graceful_restart: int | None = None  # restart time in seconds when enabled
    add_path_send: bool = False
    admin_down: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class BgpPlan:
    speaker: GlobalSpec | None
    peers: tuple[PeerSpec, ...] = ()
    routes: Mapping[str, frozenset[Route]] = field(default_factory=dict)  # peer addr -> routes
    announced: Mapping[str, frozenset[addresses.IPAddress]] = field(default_factory=dict)
    skipped: Mapping[str, eligibility.Skip] = field(default_factory=dict)  # svc key -> why


def _families(peer: bgp.BgpPeer, address: addresses.IPAddress) -> frozenset[int]:
    found = set()
    for afi_safi in peer.spec.afi_safis:
        config = afi_safi.config
        if config is None or config.family is None:
            continue
        if config.enabled or config.family is not None:
            found.add(4 if config.family.afi == "AFI_IP" else 6)
    return frozenset(found) or frozenset({address.version})


def _peer_spec(peer: bgp.BgpPeer, local_as: int, router_id: str,
               local: Mapping[int, addresses.IPAddress]) -> PeerSpec:
    conf = peer.spec.conf
    address = ipaddress.ip_address(conf.neighbor_address)
    timers = peer.spec.timers.config if peer.spec.timers else None
    hold = bgp.TimersConfig.seconds(timers.hold_time) if timers else None
    keepalive = bgp.TimersConfig.seconds(timers.keepalive_interval) if timers else None
    retry = bgp.TimersConfig.seconds(timers.connect_retry) if timers else None
    multihop = peer.spec.ebgp_multihop
    transport = peer.spec.transport
    graceful = peer.spec.graceful_restart
    add_path = any(
        a.add_paths is not None and a.add_paths.config is not None
        and a.add_paths.config.send_max > 0
        for a in peer.spec.afi_safis
    )
    return PeerSpec(
        name=peer.metadata.name,
        address=address,
        peer_as=conf.peer_as,
        local_as=conf.local_as or local_as,
        router_id=router_id,
        local_address=local.get(address.version),
        password=conf.auth_password,
        hold_time=hold if hold else DEFAULT_HOLD_TIME,
        keepalive=keepalive or None,
        connect_retry=retry or None,
        multihop_ttl=(multihop.multihop_ttl or 255) if multihop and multihop.enabled else None,
        passive=bool(transport and transport.passive_mode),
        remote_port=(transport.remote_port if transport and transport.remote_port else 179),
        families=_families(peer, address),
        graceful_restart=(graceful.restart_time or 120) if graceful and graceful.enabled
        else None,
        add_path_send=add_path,
        admin_down=conf.admin_down,
        description=conf.description,
    )


class _Round:
    """What one round's Services are planned against: BGP on this node, if any."""

    def __init__(self, snap: snapshot.Snapshot) -> None:
        self.snap = snap
        me = snap.me
        conf = snap.bgp_conf if snap.bgp_conf is not None and snap.bgp_conf.counts else None
        self.speaker: GlobalSpec | None = None
        self.peers: tuple[PeerSpec, ...] = ()
        self.local: dict[int, addresses.IPAddress] = {}
        self.why: eligibility.Skip | None = None  # why this node speaks no BGP at all
        if conf is None or me is None:
            self.why = eligibility.Skip.NO_BGP_CONF if conf is None else \
                eligibility.Skip.NODE_UNKNOWN
            return
        rack = me.labels.get(annotations.RACK_LABEL, "")
        local_as = conf.spec.as_per_rack.get(rack, conf.spec.as_) if rack else conf.spec.as_
        v4 = me.internal_ip(4)
        router_id = conf.spec.router_id or (str(v4) if v4 else "")
        self.local = {v: ip for v in (4, 6) if (ip := me.internal_ip(v)) is not None}
        self.speaker = GlobalSpec(router_id, local_as, conf.spec.listen_port or 179,
                                  conf.spec.listen_addresses)
        # A second BgpPeer to one neighbour from the same nodes is not used (the
        # controller marks it not Ready and the webhook refuses new ones).
        duplicates = validation.refused_peers(snap.bgp_peers)
        self.peers = tuple(
            _peer_spec(p, local_as, router_id, self.local)
            for p in sorted(snap.bgp_peers, key=lambda p: p.metadata.name)
            if not p.ignored and p.metadata.name not in duplicates
            and p.selects(dict(me.labels))
        )

    def part(self, svc: service.LbService
             ) -> tuple[frozenset[addresses.IPAddress], eligibility.Skip | None] | None:
        """(the Service's BGP addresses, why this node does not announce them), or None
        when it has none."""
        if not svc.wants_address or not svc.assigned_ips:
            return None
        snap = self.snap
        mine = frozenset(ip for ip in svc.assigned_ips
                         if (pool := snap.pool_of(ip)) is not None and pool.protocol == "bgp")
        if not mine:
            return None
        skip = self.why or eligibility.service_skip(snap, svc, snap.node)
        if skip is None and not self.peers:
            skip = eligibility.Skip.NO_PEERS
        return mine, skip

    def plan(self, announced: Mapping[str, frozenset[addresses.IPAddress]],
             skipped: Mapping[str, eligibility.Skip],
             by_family: Mapping[int, frozenset[Route]]) -> BgpPlan:
        if self.speaker is None:
            return BgpPlan(None, skipped=skipped)
        routes: dict[str, frozenset[Route]] = {}
        for peer in self.peers:
            parts = [by_family[v] for v in sorted(peer.families) if v in by_family]
            # One family: that very set, not a copy (thousands of routes every round).
            routes[str(peer.address)] = parts[0] if len(parts) == 1 else \
                frozenset().union(*parts)
        return BgpPlan(self.speaker, self.peers, routes, announced, skipped)


def plan_bgp(snap: snapshot.Snapshot) -> BgpPlan:
    """The sessions and routes of this node; empty when BGP is not configured.
    BgpPlanner gives the same plans at the cost of what changed since its last."""
    round_ = _Round(snap)
    announced: dict[str, frozenset[addresses.IPAddress]] = {}
    skipped: dict[str, eligibility.Skip] = {}
    for svc in snap.services:
        part = round_.part(svc)
        if part is None:
            continue
        ips, skip = part
        if skip is None:
            announced[svc.key] = ips
        else:
            skipped[svc.key] = skip
    prefixes = {ip for ips in announced.values() for ip in ips}
    by_family = {version: frozenset(Route(ip, round_.local[version])
                                    for ip in prefixes if ip.version == version)
                 for version in round_.local}
    return round_.plan(announced if round_.speaker else {}, skipped, by_family)


class BgpPlanner:
    """plan_bgp kept across rounds: equal plans (a property test holds them equal), at
    a cost that follows what changed (issue #13): while this node's BGP settings, its
    Node and the pools stay the same, only the Services that changed are planned again
    (planner/incremental.py), and the route sets change by what was added or removed."""

    def __init__(self) -> None:
        self._tracker = incremental.ServiceTracker()
        self._forget(())

    def _forget(self, families: Iterable[int]) -> None:
        """No Service planned yet (a new planner, or a round whose context changed);
        an empty route set for each of `families`, this node's address families."""
        self._announced: dict[str, frozenset[addresses.IPAddress]] = {}
        self._skipped: dict[str, eligibility.Skip] = {}
        self._prefixes: collections.Counter[addresses.IPAddress] = collections.Counter()
        self._by_family: dict[int, frozenset[Route]] = {v: frozenset() for v in families}

    def plan(self, snap: snapshot.Snapshot) -> BgpPlan:
        """plan_bgp(snap)."""
        round_ = _Round(snap)
        context = (snap.node, snap.me, snap.bgp_conf, snap.bgp_peers,
                   sorted(snap.pools.items()))
        delta = self._tracker.delta(snap.services, snap.endpoints, context)
        if delta.reset:
            self._forget(round_.local)
        added: set[addresses.IPAddress] = set()
        gone: set[addresses.IPAddress] = set()
        for key in delta.removed:
            self._drop(key, gone)
        for svc in delta.changed:
            self._drop(svc.key, gone)
            part = round_.part(svc)
            if part is None:
                continue
            ips, skip = part
            if skip is not None:
                self._skipped[svc.key] = skip
                continue
            self._announced[svc.key] = ips
            for ip in ips:
                self._prefixes[ip] += 1
                if self._prefixes[ip] == 1:
                    added.add(ip)
        moved = (added - gone, gone - added)
        for version, next_hop in round_.local.items():
            new, old = ({Route(ip, next_hop) for ip in ips if ip.version == version}
                        for ips in moved)
            if new or old:
                self._by_family[version] = (self._by_family[version] - old) | new
        return round_.plan(dict(self._announced), dict(self._skipped), self._by_family)

    def _drop(self, key: str, gone: set[addresses.IPAddress]) -> None:
        self._skipped.pop(key, None)
        for ip in self._announced.pop(key, ()):
            self._prefixes[ip] -= 1
            if self._prefixes[ip] <= 0:
                del self._prefixes[ip]
                gone.add(ip)
