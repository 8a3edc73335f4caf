"""IPv6 Neighbor Discovery (RFC 4861) over Ethernet: decode Neighbor Solicitations,
build Neighbor Advertisements.

announce/layer2, pure (DESIGN §3): no I/O, never logs. Decoding is layered and
faithful: `parse_ipv6` -> `parse_icmpv6` -> `parse_solicitation` each return None only
when the bytes cannot be read; fields a receiver must refuse (hop limit, code,
checksum, multicast target; RFC 4861 §7.1.1) are decoded as they are and judged by
`frames.decide`. The announcer sends what `advertisement_frame` and
`unsolicited_frame` build.

An advertisement's IPv6 source is the target itself (the claimed address): Linux
accepts an NA from any source, and the announcer then needs no link-local address.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from openelb.announce.layer2 import ethernet

__all__ = [
    "ALL_NODES",
    "HOP_LIMIT",
    "NEXT_HEADER_ICMPV6",
    "TYPE_NEIGHBOR_ADVERTISEMENT",
    "TYPE_NEIGHBOR_SOLICITATION",
    "Advertisement",
    "Icmpv6",
    "Ipv6Header",
    "Solicitation",
    "advertisement_frame",
    "checksum",
    "encode",
    "is_solicited_node",
    "parse_advertisement",
    "parse_icmpv6",
    "parse_ipv6",
    "parse_solicitation",
    "solicitation_frame",
    "solicited_node",
    "unsolicited_frame",
]

NEXT_HEADER_ICMPV6 = 58
TYPE_NEIGHBOR_SOLICITATION = 135
TYPE_NEIGHBOR_ADVERTISEMENT = 136
OPTION_SOURCE_LINK_ADDRESS = 1
OPTION_TARGET_LINK_ADDRESS = 2
HOP_LIMIT = 255  # RFC 4861 §7.1: proves the packet was not forwarded by a router
ALL_NODES = IPv6Address("ff02::1")

FLAG_ROUTER = 0x8000_0000
FLAG_SOLICITED = 0x4000_0000
FLAG_OVERRIDE = 0x2000_0000

_IPV6 = struct.Struct("!IHBB16s16s")  # version|class|flow, payload length, next header, hops
_IPV6_LENGTH = _IPV6.size  # 40
_ICMP = struct.Struct("!BBH")  # type, code, checksum
_SOLICITED_NODE_PREFIX = IPv6Address("ff02::1:ff00:0")


@dataclass(frozen=True, slots=True)
class Ipv6Header:
    version: int
    payload_length: int
    next_header: int
    hop_limit: int
    source: IPv6Address
    destination: IPv6Address


@dataclass(frozen=True, slots=True)
class Icmpv6:
    type: int
    code: int
    checksum: int
    body: bytes  # after the 4-byte type/code/checksum header


@dataclass(frozen=True, slots=True)
class Solicitation:
    target: IPv6Address
    source_mac: bytes | None  # from the Source Link-Layer Address option, if any


@dataclass(frozen=True, slots=True)
class Advertisement:
    router: bool
    solicited: bool
    override: bool
    target: IPv6Address
    target_mac: bytes | None  # from the Target Link-Layer Address option, if any


def parse_ipv6(payload: bytes) -> tuple[Ipv6Header, bytes] | None:
    """The fixed header and exactly `payload_length` bytes after it (padding dropped).

    None if the header is short, the version is not 6, or the payload is truncated.
    """
    if len(payload) < _IPV6_LENGTH:
        return None
    first, length, next_header, hop_limit, source, destination = _IPV6.unpack_from(payload)
    version = first >> 28
    if version != 6 or _IPV6_LENGTH + length > len(payload):
        return None
    header = Ipv6Header(version, length, next_header, hop_limit,
                        IPv6Address(source), IPv6Address(destination))
    return header, payload[_IPV6_LENGTH:_IPV6_LENGTH + length]


def parse_icmpv6(message: bytes) -> Icmpv6 | None:
    if len(message) < _ICMP.size:
        return None
    icmp_type, code, check = _ICMP.unpack_from(message)
    return Icmpv6(icmp_type, code, check, message[_ICMP.size:])


def parse_solicitation(body: bytes) -> Solicitation | None:
    """An NS body (reserved, target, options); None if short or an option is broken."""
    if len(body) < 20:
        return None
    options = _options(body[20:])
    if options is None:
        return None
    return Solicitation(IPv6Address(body[4:20]), _link_address(options,
                                                               OPTION_SOURCE_LINK_ADDRESS))


def parse_advertisement(body: bytes) -> Advertisement | None:
    """An NA body (flags, target, options); None if short or an option is broken."""
    if len(body) < 20:
        return None
    options = _options(body[20:])
    if options is None:
        return None
    (flags,) = struct.unpack_from("!I", body)
    return Advertisement(bool(flags & FLAG_ROUTER), bool(flags & FLAG_SOLICITED),
                         bool(flags & FLAG_OVERRIDE), IPv6Address(body[4:20]),
                         _link_address(options, OPTION_TARGET_LINK_ADDRESS))


def _options(data: bytes) -> list[tuple[int, bytes]] | None:
    """(type, value) pairs; None if one has length 0 or runs past the end (§7.1.1)."""
    found: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 2:
            return None
        option_type, units = data[offset], data[offset + 1]
        end = offset + 8 * units
        if units == 0 or end > len(data):
            return None
        found.append((option_type, data[offset + 2:end]))
        offset = end
    return found


def _link_address(options: list[tuple[int, bytes]], option_type: int) -> bytes | None:
    for found_type, value in options:
        if found_type == option_type:
            return value[:6]  # Ethernet: 6 bytes, then padding to 8 (RFC 2464 §8)
    return None


def _fold(data: bytes) -> int:
    """The 16-bit ones' complement sum of `data` (RFC 1071)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(source: IPv6Address, destination: IPv6Address, message: bytes) -> int:
    """The ICMPv6 checksum (RFC 4443 §2.3) over the pseudo-header and `message`.

    Over a message that carries its checksum, the result is 0 when the checksum is right.
    """
    pseudo = source.packed + destination.packed + struct.pack(
        "!I3xB", len(message), NEXT_HEADER_ICMPV6)
    return ~_fold(pseudo + message) & 0xFFFF


def encode(source: IPv6Address, destination: IPv6Address, icmp_type: int, body: bytes,
           *, code: int = 0, hop_limit: int = HOP_LIMIT) -> bytes:
    """An IPv6 packet carrying one ICMPv6 message, checksum filled in."""
    unsummed = _ICMP.pack(icmp_type, code, 0) + body
    message = _ICMP.pack(icmp_type, code, checksum(source, destination, unsummed)) + body
    header = _IPV6.pack(6 << 28, len(message), NEXT_HEADER_ICMPV6, hop_limit,
                        source.packed, destination.packed)
    return header + message


def solicited_node(ip: IPv6Address) -> IPv6Address:
    """ff02::1:ffXX:XXXX, the group a solicitation for `ip` is sent to (RFC 4291 §2.7.1)."""
    return IPv6Address(int(_SOLICITED_NODE_PREFIX) | (int(ip) & 0xFF_FFFF))


def is_solicited_node(group: IPv6Address) -> bool:
    return int(group) & ~0xFF_FFFF == int(_SOLICITED_NODE_PREFIX)


def advertisement_frame(*, target: IPv6Address, my_mac: bytes, destination: IPv6Address,
                        destination_mac: bytes, solicited: bool) -> bytes:
    """An NA for `target` at `my_mac`, Override set, Router clear, with the TLLA option."""
    flags = FLAG_OVERRIDE | (FLAG_SOLICITED if solicited else 0)
    body = (struct.pack("!I", flags) + target.packed
            + bytes([OPTION_TARGET_LINK_ADDRESS, 1]) + my_mac)
    packet = encode(target, destination, TYPE_NEIGHBOR_ADVERTISEMENT, body)
    return ethernet.encode(destination_mac, my_mac, ethernet.ETHERTYPE_IPV6, packet)


def unsolicited_frame(ip: IPv6Address, my_mac: bytes) -> bytes:
    """The unsolicited NA to all-nodes (RFC 4861 §7.2.6) that moves neighbours' entries.

    Solicited clear (it is multicast), Override set: Linux then replaces the link-layer
    address of an existing entry and marks it STALE.
    """
    return advertisement_frame(target=ip, my_mac=my_mac, destination=ALL_NODES,
                               destination_mac=ethernet.ipv6_multicast_mac(ALL_NODES),
                               solicited=False)


def solicitation_frame(*, target: IPv6Address, source: IPv6Address, source_mac: bytes,
                       destination: IPv6Address | None = None,
                       destination_mac: bytes | None = None,
                       with_source_option: bool = True, hop_limit: int = HOP_LIMIT) -> bytes:
    """An NS as a host sends it (to the solicited-node group unless `destination`).

    The announcer never solicits; this builds requests for tests and benchmarks.
    """
    group = destination if destination is not None else solicited_node(target)
    body = b"\x00" * 4 + target.packed
    if with_source_option:
        body += bytes([OPTION_SOURCE_LINK_ADDRESS, 1]) + source_mac
    packet = encode(source, group, TYPE_NEIGHBOR_SOLICITATION, body, hop_limit=hop_limit)
    if destination_mac is None:
        if not group.is_multicast:
            raise ValueError("a unicast solicitation needs destination_mac")
        destination_mac = ethernet.ipv6_multicast_mac(group)
    return ethernet.encode(destination_mac, source_mac, ethernet.ETHERTYPE_IPV6, packet)
