"""The Ethernet, ARP and NDP codecs: what we send is what Linux accepted, and what we
encode decodes back unchanged."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openelb.announce.layer2 import arp, ethernet, ndp
from tests.unit.announce.layer2 import wire
from tests.unit.announce.layer2.wire import CLIENT6, CLIENT_MAC, NODE_MAC, VIP4, VIP6

macs = st.binary(min_size=6, max_size=6)
ipv4s = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
ipv6s = st.builds(IPv6Address, st.integers(0, 2**128 - 1))


def test_our_gratuitous_arp_is_a_broadcast_request_for_the_claimed_ip(captured: bytes) -> None:
    """Request form, sender IP = target IP: Linux (arp_accept=0) overrides an existing
    entry from it at once (the integration test watches it happen)."""
    assert arp.gratuitous_frame(VIP4, NODE_MAC) == captured
    header, packet = wire.arp_of(captured)
    assert (header.destination, header.source) == (ethernet.BROADCAST, NODE_MAC)
    assert packet == arp.ArpPacket(arp.OP_REQUEST, NODE_MAC, VIP4, b"\x00" * 6, VIP4)
    assert len(captured) == ethernet.MIN_FRAME_LENGTH


def test_our_unsolicited_advertisement_overrides_for_all_nodes(captured: bytes) -> None:
    assert ndp.unsolicited_frame(VIP6, NODE_MAC) == captured
    header, ipv6, advert = wire.advertisement_of(captured)
    assert header.destination == ethernet.ipv6_multicast_mac(ndp.ALL_NODES)
    assert (ipv6.source, ipv6.destination) == (VIP6, ndp.ALL_NODES)
    assert advert == ndp.Advertisement(router=False, solicited=False, override=True,
                                       target=VIP6, target_mac=NODE_MAC)


@pytest.mark.parametrize("name", sorted(
    n for n, f in wire.all_captured().items()
    if (p := ethernet.parse(f)) is not None and p[0].ethertype == ethernet.ETHERTYPE_IPV6
    and p[1][6] == ndp.NEXT_HEADER_ICMPV6))
def test_captured_icmpv6_checksums_verify(name: str) -> None:
    """Known answers for the checksum: every ICMPv6 frame Linux sent or accepted."""
    parsed = ethernet.parse(wire.load(name))
    assert parsed is not None
    ipv6 = ndp.parse_ipv6(parsed[1])
    assert ipv6 is not None
    assert ndp.checksum(ipv6[0].source, ipv6[0].destination, ipv6[1]) == 0


def test_linux_dad_solicitation_decodes_with_its_nonce_option_skipped() -> None:
    frame = wire.load("test_duplicate_address_detection_is_answered_to_all_nodes")
    parsed = ethernet.parse(frame)
    assert parsed is not None
    ipv6 = ndp.parse_ipv6(parsed[1])
    assert ipv6 is not None
    assert ipv6[0].source == IPv6Address("::")
    icmp = ndp.parse_icmpv6(ipv6[1])
    assert icmp is not None
    assert ndp.parse_solicitation(icmp.body) == ndp.Solicitation(VIP6, None)


def test_solicited_node_group_and_its_mac() -> None:
    group = ndp.solicited_node(VIP6)
    assert group == IPv6Address("ff02::1:ff00:200")
    assert ndp.is_solicited_node(group)
    assert not ndp.is_solicited_node(ndp.ALL_NODES)
    assert ethernet.ipv6_multicast_mac(group) == bytes.fromhex("3333ff000200")


def test_mac_text_round_trips_and_rejects_garbage() -> None:
    assert ethernet.parse_mac("02:00:00:00:0a:01") == NODE_MAC
    assert ethernet.format_mac(NODE_MAC) == "02:00:00:00:0a:01"
    for bad in ("", "02:00:00:00:0a", "02-00-00-00-0a-01", "zz:00:00:00:0a:01"):
        with pytest.raises(ValueError, match="MAC"):
            ethernet.parse_mac(bad)


@given(st.integers(0, 0xFFFF), macs, ipv4s, macs, ipv4s)
def test_arp_packets_round_trip(op: int, sha: bytes, spa: IPv4Address, tha: bytes,
                                tpa: IPv4Address) -> None:
    packet = arp.ArpPacket(op, sha, spa, tha, tpa)
    assert arp.parse(arp.encode(packet)) == packet


@given(ipv6s.filter(lambda ip: not ip.is_multicast), macs, ipv6s, macs, st.booleans())
def test_advertisements_round_trip(target: IPv6Address, mac: bytes, destination: IPv6Address,
                                   destination_mac: bytes, solicited: bool) -> None:
    frame = ndp.advertisement_frame(target=target, my_mac=mac, destination=destination,
                                    destination_mac=destination_mac, solicited=solicited)
    header, ipv6, advert = wire.advertisement_of(frame)
    assert (header.destination, header.source) == (destination_mac, mac)
    assert (ipv6.source, ipv6.destination) == (target, destination)
    assert advert == ndp.Advertisement(False, solicited, True, target, mac)


@given(ipv6s, ipv6s, macs, st.booleans())
def test_solicitations_round_trip(target: IPv6Address, source: IPv6Address, mac: bytes,
                                  with_option: bool) -> None:
    frame = ndp.solicitation_frame(target=target, source=source, source_mac=mac,
                                   with_source_option=with_option)
    parsed = ethernet.parse(frame)
    assert parsed is not None
    ipv6 = ndp.parse_ipv6(parsed[1])
    assert ipv6 is not None
    assert ipv6[0].destination == ndp.solicited_node(target)
    assert ndp.checksum(ipv6[0].source, ipv6[0].destination, ipv6[1]) == 0
    icmp = ndp.parse_icmpv6(ipv6[1])
    assert icmp is not None
    assert ndp.parse_solicitation(icmp.body) == ndp.Solicitation(target,
                                                                 mac if with_option else None)


def test_unicast_solicitation_needs_a_destination_mac() -> None:
    with pytest.raises(ValueError, match="destination_mac"):
        ndp.solicitation_frame(target=VIP6, source=CLIENT6, source_mac=CLIENT_MAC,
                               destination=VIP6)


@given(st.binary(max_size=64))
def test_frames_are_padded_to_the_ethernet_minimum(payload: bytes) -> None:
    frame = ethernet.encode(ethernet.BROADCAST, NODE_MAC, ethernet.ETHERTYPE_ARP, payload)
    assert len(frame) == max(ethernet.MIN_FRAME_LENGTH, ethernet.HEADER_LENGTH + len(payload))
    assert frame[ethernet.HEADER_LENGTH:].startswith(payload)
