"""ARP for IPv4 over Ethernet (RFC 826, RFC 5227): decode requests, build replies and
gratuitous announcements.

announce/layer2, pure (DESIGN §3): no I/O, never logs. `frames.decide` parses and
judges incoming frames with `parse`; the announcer sends what `reply_frame` and
`gratuitous_frame` build. Judging (is it for us, is it from us) is left to frames.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from openelb.announce.layer2 import ethernet

__all__ = [
    "LENGTH",
    "OP_REPLY",
    "OP_REQUEST",
    "ArpPacket",
    "encode",
    "gratuitous_frame",
    "parse",
    "reply_frame",
]

HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800
OP_REQUEST = 1
OP_REPLY = 2
LENGTH = 28  # the Ethernet/IPv4 form: 8-byte header + 2 x (6-byte MAC + 4-byte IP)

# htype, ptype, hlen, plen, op, sha, spa, tha, tpa
_PACKET = struct.Struct("!HHBBH6s4s6s4s")
_ZERO_MAC = b"\x00" * 6


@dataclass(frozen=True, slots=True)
class ArpPacket:
    operation: int
    sender_mac: bytes
    sender_ip: IPv4Address
    target_mac: bytes
    target_ip: IPv4Address


def parse(payload: bytes) -> ArpPacket | None:
    """The packet in an ARP payload, or None unless it is whole Ethernet/IPv4 ARP.

    Bytes after the 28 that matter (Ethernet padding) are ignored.
    """
    if len(payload) < LENGTH:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _PACKET.unpack_from(payload)
    if (htype, ptype, hlen, plen) != (HTYPE_ETHERNET, PTYPE_IPV4, 6, 4):
        return None
    return ArpPacket(op, sha, IPv4Address(spa), tha, IPv4Address(tpa))


def encode(packet: ArpPacket) -> bytes:
    return _PACKET.pack(HTYPE_ETHERNET, PTYPE_IPV4, 6, 4, packet.operation,
                        packet.sender_mac, packet.sender_ip.packed,
                        packet.target_mac, packet.target_ip.packed)


def reply_frame(request: ArpPacket, my_mac: bytes) -> bytes:
    """The reply to `request`, unicast to the requester, saying its target is at my_mac.

    A probe (sender 0.0.0.0, RFC 5227 §2.1.1) gets the same unicast reply: the prober
    then sees that the address is taken.
    """
    answer = ArpPacket(OP_REPLY, my_mac, request.target_ip, request.sender_mac,
                       request.sender_ip)
    return ethernet.encode(request.sender_mac, my_mac, ethernet.ETHERTYPE_ARP, encode(answer))


def gratuitous_frame(ip: IPv4Address, my_mac: bytes) -> bytes:
    """A broadcast ARP announcement (RFC 5227 §3): a request with sender IP = target IP.

    The request form, not the reply form: Linux with the default arp_accept=0 treats a
    request whose sender and target IP are equal as gratuitous (arp_is_garp) and then
    overrides an existing neighbour entry at once, without waiting for locktime; a
    reply only counts as gratuitous if its target MAC is broadcast. Both forms update
    existing entries only; neither creates new ones with arp_accept=0.
    """
    announcement = ArpPacket(OP_REQUEST, my_mac, ip, _ZERO_MAC, ip)
    return ethernet.encode(ethernet.BROADCAST, my_mac, ethernet.ETHERTYPE_ARP,
                           encode(announcement))
