"""Layer-2 mode's network half: ARP (IPv4) and NDP (IPv6) answers for the claimed IPs.

announce/layer2 (DESIGN §3, §4). The speaker decides which IPs this node owns and
calls `Layer2Announcer.set(claims)`; `resolve_interface` turns an Eip's `interface`
into the name a Claim carries. Modules, bottom up:

    ethernet, arp, ndp   pure codecs of Ethernet, ARP and Neighbor Discovery
    frames               pure: decide(frame) -> Reply | Conflict | Drop.<reason>
    netlink              interface, MAC and route lookups (pyroute2)
    rawsocket            the AF_PACKET sockets, BPF-filtered, on the asyncio loop
    announcer            Layer2Announcer: diffs claims, answers, announces
    errors               Layer2Error and its subclasses
"""

from openelb.announce.layer2.announcer import (
    Claim,
    Counters,
    Layer2Announcer,
    Metric,
    OnConflict,
    OnCounter,
)
from openelb.announce.layer2.errors import InterfaceUnavailable, Layer2Error, NetlinkFailed
from openelb.announce.layer2.frames import Conflict, Drop, Family, Reply, decide
from openelb.announce.layer2.netlink import resolve_interface

__all__ = [
    "Claim",
    "Conflict",
    "Counters",
    "Drop",
    "Family",
    "InterfaceUnavailable",
    "Layer2Announcer",
    "Layer2Error",
    "Metric",
    "NetlinkFailed",
    "OnConflict",
    "OnCounter",
    "Reply",
    "decide",
    "resolve_interface",
]
