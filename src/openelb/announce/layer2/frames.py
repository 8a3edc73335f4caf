"""Decides what to do with one received frame: a Reply to send, a Conflict to defend
against, or a Drop reason.

announce/layer2, pure (DESIGN §3, STYLE §2.7): no I/O, never logs, never raises, for
any bytes at all (the fuzz tests in tests/unit/announce/layer2 hold it to that). The
announcer calls `decide` for every frame its raw sockets read and counts the Drop
reasons; the codecs it judges with live in arp and ndp.

A Conflict is another MAC saying it has one of our addresses: any ARP packet whose
sender IP we own (RFC 5227 §2.4: a gratuitous ARP, a reply, a request), or a Neighbor
Advertisement for an address we own that passes RFC 4861 §7.1.2's checks. The
announcer defends the address (RFC 5227 §2.4 (b): announce again, at most once per
defence interval).

Checks run cheapest and most common first; the first failing one names the Drop. For
solicitations they are the receive checks of RFC 4861 §7.1.1.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address

from openelb.announce.layer2 import arp, ethernet, ndp

__all__ = ["Conflict", "Drop", "Family", "IPAddress", "Reply", "decide"]

IPAddress = IPv4Address | IPv6Address


class Family(StrEnum):
    """Which half of the responder: ARP for IPv4, NDP for IPv6 (a metric label)."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @classmethod
    def of(cls, ip: IPAddress) -> Family:
        return cls.IPV4 if ip.version == 4 else cls.IPV6


class Drop(StrEnum):
    """Why a frame gets no answer; the value is the log field and the metric label."""

    MALFORMED = "malformed"  # truncated, inconsistent lengths, not Ethernet/IPv4 ARP
    NOT_ARP = "notArp"  # neither an ARP nor an IPv6 frame
    NOT_NDP = "notNdp"  # IPv6, but not an ICMPv6 Neighbor Solicitation or Advertisement
    NOT_REQUEST = "notRequest"  # ARP, but not a request (a reply, RARP, ...)
    FROM_SELF = "fromSelf"  # sent with our own MAC: our frames looping back
    OTHER_HOST = "otherHost"  # unicast to another MAC, seen because of promiscuous mode
    BAD_SOURCE = "badSource"  # group sender MAC; multicast IPv6 source; RFC 4861 §7.1.1 DAD rules
    GRATUITOUS = "gratuitous"  # an announcement (sender IP = target IP) asks nothing
    BAD_HOP_LIMIT = "badHopLimit"  # NS hop limit not 255: it crossed a router
    BAD_CHECKSUM = "badChecksum"
    BAD_CODE = "badCode"  # ICMPv6 code not 0
    MULTICAST_TARGET = "multicastTarget"
    NOT_OWNED = "notOwned"  # a good request for an address we don't claim here


@dataclass(frozen=True, slots=True)
class Reply:
    frame: bytes  # the whole Ethernet frame to send
    ip: IPAddress  # the claimed address it answers for
    destination: bytes  # the MAC it goes to


@dataclass(frozen=True, slots=True)
class Conflict:
    ip: IPAddress  # one of our claimed addresses ...
    mac: bytes  # ... that this other MAC says it has


Verdict = Reply | Conflict | Drop


def decide(frame: bytes, owned: Container[IPAddress], my_mac: bytes) -> Verdict:
    """What to do with `frame`, read on an interface with MAC `my_mac` claiming `owned`."""
    parsed = ethernet.parse(frame)
    if parsed is None:
        return Drop.MALFORMED
    header, payload = parsed
    if header.source == my_mac:
        return Drop.FROM_SELF
    if header.ethertype == ethernet.ETHERTYPE_ARP:
        return _decide_arp(header, payload, owned, my_mac)
    if header.ethertype == ethernet.ETHERTYPE_IPV6:
        return _decide_ndp(header, payload, owned, my_mac)
    return Drop.NOT_ARP


def _decide_arp(header: ethernet.Header, payload: bytes, owned: Container[IPAddress],
                my_mac: bytes) -> Verdict:
    request = arp.parse(payload)
    if request is None:
        return Drop.MALFORMED
    if request.sender_mac == my_mac:
        return Drop.FROM_SELF
    if request.sender_ip in owned:  # RFC 5227 §2.4: whatever the operation
        return Conflict(request.sender_ip, request.sender_mac)
    if request.operation != arp.OP_REQUEST:
        return Drop.NOT_REQUEST
    if header.destination not in (ethernet.BROADCAST, my_mac):
        return Drop.OTHER_HOST
    if ethernet.is_multicast(request.sender_mac) or not any(request.sender_mac):
        return Drop.BAD_SOURCE  # we would answer to a group or to nobody
    if request.sender_ip == request.target_ip:
        return Drop.GRATUITOUS
    if request.target_ip not in owned:
        return Drop.NOT_OWNED
    return Reply(arp.reply_frame(request, my_mac), request.target_ip, request.sender_mac)


def _decide_ndp(header: ethernet.Header, payload: bytes, owned: Container[IPAddress],
                my_mac: bytes) -> Verdict:
    parsed = ndp.parse_ipv6(payload)
    if parsed is None:
        return Drop.MALFORMED
    ip, message = parsed
    if ip.next_header != ndp.NEXT_HEADER_ICMPV6:
        return Drop.NOT_NDP  # extension headers included: an NS never needs them
    icmp = ndp.parse_icmpv6(message)
    if icmp is None:
        return Drop.MALFORMED
    if icmp.type not in (ndp.TYPE_NEIGHBOR_SOLICITATION, ndp.TYPE_NEIGHBOR_ADVERTISEMENT):
        return Drop.NOT_NDP
    if not ethernet.is_multicast(header.destination) and header.destination != my_mac:
        return Drop.OTHER_HOST
    if ip.hop_limit != ndp.HOP_LIMIT:
        return Drop.BAD_HOP_LIMIT
    if ndp.checksum(ip.source, ip.destination, message) != 0:
        return Drop.BAD_CHECKSUM
    if icmp.code != 0:
        return Drop.BAD_CODE
    if icmp.type == ndp.TYPE_NEIGHBOR_ADVERTISEMENT:
        return _decide_advertisement(header, icmp.body, owned, my_mac)
    solicitation = ndp.parse_solicitation(icmp.body)
    if solicitation is None:
        return Drop.MALFORMED
    if solicitation.target.is_multicast:
        return Drop.MULTICAST_TARGET
    if ip.source.is_multicast:
        return Drop.BAD_SOURCE
    unspecified = ip.source.is_unspecified
    if unspecified and (solicitation.source_mac is not None
                        or not ndp.is_solicited_node(ip.destination)):
        return Drop.BAD_SOURCE  # §7.1.1: DAD goes to the solicited-node group, without SLLA
    reply_mac = solicitation.source_mac or header.source
    if not unspecified and (ethernet.is_multicast(reply_mac) or not any(reply_mac)):
        return Drop.BAD_SOURCE
    if solicitation.target not in owned:
        return Drop.NOT_OWNED
    if unspecified:
        # §7.2.4: answer duplicate address detection to all-nodes, Solicited clear.
        reply_mac = ethernet.ipv6_multicast_mac(ndp.ALL_NODES)
        frame = ndp.advertisement_frame(target=solicitation.target, my_mac=my_mac,
                                        destination=ndp.ALL_NODES,
                                        destination_mac=reply_mac, solicited=False)
    else:
        frame = ndp.advertisement_frame(target=solicitation.target, my_mac=my_mac,
                                        destination=ip.source, destination_mac=reply_mac,
                                        solicited=True)
    return Reply(frame, solicitation.target, reply_mac)


def _decide_advertisement(header: ethernet.Header, body: bytes, owned: Container[IPAddress],
                          my_mac: bytes) -> Conflict | Drop:
    """An NA that passed §7.1.2's hop limit, checksum and code checks."""
    advertisement = ndp.parse_advertisement(body)
    if advertisement is None:
        return Drop.MALFORMED
    if advertisement.target.is_multicast:
        return Drop.MULTICAST_TARGET
    if advertisement.target not in owned:
        return Drop.NOT_OWNED
    mac = advertisement.target_mac or header.source
    if mac == my_mac:
        return Drop.FROM_SELF
    return Conflict(advertisement.target, mac)
