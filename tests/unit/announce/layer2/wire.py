"""Frames for the layer-2 unit tests: the capture lab's constants, captured frames, and
decoders that check a reply the way a receiving Linux would.

Captures come from tests/integration/layer2/capture_frames.py (a real Linux client and
the announcer on a veth pair) and live in frames/<test name>.hex; hand-built frames are
made in the tests with the package's own encoders.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from openelb.announce.layer2 import arp, ethernet, ndp

FRAMES = Path(__file__).with_name("frames")
NODE_MAC = ethernet.parse_mac("02:00:00:00:0a:01")  # the announcer's interface (A)
CLIENT_MAC = ethernet.parse_mac("02:00:00:00:0b:01")  # the LAN client (B)
OTHER_MAC = ethernet.parse_mac("02:00:00:00:00:99")
VIP4 = IPv4Address("192.0.2.200")
VIP6 = IPv6Address("2001:db8:1::200")
CLIENT4 = IPv4Address("192.0.2.2")
CLIENT6 = IPv6Address("2001:db8:1::2")
OWNED: frozenset[IPv4Address | IPv6Address] = frozenset({VIP4, VIP6})


def load(name: str) -> bytes:
    """The frame in frames/<name>.hex (hex bytes; lines starting with # are comments)."""
    text = (FRAMES / f"{name}.hex").read_text()
    return bytes.fromhex(" ".join(line for line in text.splitlines()
                                  if not line.startswith("#")))


def all_captured() -> dict[str, bytes]:
    return {path.stem: load(path.stem) for path in sorted(FRAMES.glob("*.hex"))}


def patch(frame: bytes, offset: int, value: bytes) -> bytes:
    """`frame` with `value` written at `offset`."""
    return frame[:offset] + value + frame[offset + len(value):]


def arp_of(frame: bytes) -> tuple[ethernet.Header, arp.ArpPacket]:
    parsed = ethernet.parse(frame)
    assert parsed is not None
    assert parsed[0].ethertype == ethernet.ETHERTYPE_ARP
    packet = arp.parse(parsed[1])
    assert packet is not None
    return parsed[0], packet


def advertisement_of(frame: bytes) -> tuple[ethernet.Header, ndp.Ipv6Header,
                                            ndp.Advertisement]:
    """Decode an NA and check what Linux's ndisc_recv_na checks: hop limit, code, checksum."""
    parsed = ethernet.parse(frame)
    assert parsed is not None
    assert parsed[0].ethertype == ethernet.ETHERTYPE_IPV6
    ipv6 = ndp.parse_ipv6(parsed[1])
    assert ipv6 is not None
    header, message = ipv6
    assert header.next_header == ndp.NEXT_HEADER_ICMPV6
    assert header.hop_limit == 255
    assert ndp.checksum(header.source, header.destination, message) == 0
    icmp = ndp.parse_icmpv6(message)
    assert icmp is not None
    assert (icmp.type, icmp.code) == (ndp.TYPE_NEIGHBOR_ADVERTISEMENT, 0)
    advert = ndp.parse_advertisement(icmp.body)
    assert advert is not None
    return parsed[0], header, advert
