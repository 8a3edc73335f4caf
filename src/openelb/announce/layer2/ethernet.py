"""Ethernet II headers and MAC addresses for the ARP and NDP codecs.

announce/layer2, pure (DESIGN §3): no I/O, never logs. Called by arp, ndp and frames;
MACs are 6-byte `bytes` everywhere in this package, text only in logs and tests.
"""

from __future__ import annotations

import string
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

__all__ = [
    "BROADCAST",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV6",
    "HEADER_LENGTH",
    "MIN_FRAME_LENGTH",
    "Header",
    "encode",
    "format_mac",
    "ipv6_multicast_mac",
    "is_multicast",
    "parse",
    "parse_mac",
]

ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
HEADER_LENGTH = 14
MIN_FRAME_LENGTH = 60  # 64 on the wire minus the FCS; some drivers don't pad short frames
BROADCAST = b"\xff" * 6

_HEADER = struct.Struct("!6s6sH")
_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True, slots=True)
class Header:
    destination: bytes
    source: bytes
    ethertype: int


def parse(frame: bytes) -> tuple[Header, bytes] | None:
    """The header and the payload after it, or None for a frame shorter than a header."""
    if len(frame) < HEADER_LENGTH:
        return None
    destination, source, ethertype = _HEADER.unpack_from(frame)
    return Header(destination, source, ethertype), frame[HEADER_LENGTH:]


def encode(destination: bytes, source: bytes, ethertype: int, payload: bytes) -> bytes:
    """A whole frame, zero-padded to the Ethernet minimum."""
    frame = _HEADER.pack(destination, source, ethertype) + payload
    return frame.ljust(MIN_FRAME_LENGTH, b"\x00")


def is_multicast(mac: bytes) -> bool:
    """True for group addresses (broadcast included): the I/G bit of the first octet."""
    return bool(mac[0] & 0x01)


def ipv6_multicast_mac(group: IPv6Address) -> bytes:
    """RFC 2464 §7: 33:33 followed by the group's last four octets."""
    return b"\x33\x33" + group.packed[-4:]


def format_mac(mac: bytes) -> str:
    return ":".join(f"{octet:02x}" for octet in mac)


def parse_mac(text: str) -> bytes:
    """`aa:bb:cc:dd:ee:ff` -> 6 bytes; raises ValueError for anything else."""
    octets = text.split(":")
    if len(octets) != 6 or not all(len(o) == 2 and o[0] in _HEX and o[1] in _HEX
                                   for o in octets):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(o, 16) for o in octets)
