"""frames.decide answers claimed IPs only, and names a Drop reason for everything else."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

import pytest

from openelb.announce.layer2 import arp, ethernet, frames, ndp
from openelb.announce.layer2.frames import Drop
from tests.unit.announce.layer2 import wire
from tests.unit.announce.layer2.wire import (
    CLIENT4,
    CLIENT6,
    CLIENT_MAC,
    NODE_MAC,
    OTHER_MAC,
    OWNED,
    VIP4,
    VIP6,
    load,
    patch,
)

ARPING = "test_arping_request_for_a_claimed_ip_gets_a_unicast_arp_reply"
KERNEL_NS = "test_kernel_solicitation_for_a_claimed_ip_gets_a_solicited_advertisement"
UNSPECIFIED = IPv6Address("::")


def _reply(verdict: frames.Reply | Drop) -> frames.Reply:
    assert isinstance(verdict, frames.Reply), verdict
    return verdict


# -- answers --------------------------------------------------------------------------


def test_arping_request_for_a_claimed_ip_gets_a_unicast_arp_reply(captured: bytes) -> None:
    reply = _reply(frames.decide(captured, OWNED, NODE_MAC))
    header, packet = wire.arp_of(reply.frame)
    assert (reply.ip, reply.destination) == (VIP4, CLIENT_MAC)
    assert (header.destination, header.source) == (CLIENT_MAC, NODE_MAC)
    assert packet == arp.ArpPacket(arp.OP_REPLY, NODE_MAC, VIP4, CLIENT_MAC, CLIENT4)


def test_our_arp_reply_is_unicast_to_the_requester(captured: bytes) -> None:
    """The reply to arping is byte for byte the one arping accepted on the wire."""
    assert _reply(frames.decide(load(ARPING), OWNED, NODE_MAC)).frame == captured


def test_kernel_arp_request_for_a_claimed_ip_gets_a_unicast_arp_reply(captured: bytes) -> None:
    _, packet = wire.arp_of(_reply(frames.decide(captured, OWNED, NODE_MAC)).frame)
    assert packet == arp.ArpPacket(arp.OP_REPLY, NODE_MAC, VIP4, CLIENT_MAC, CLIENT4)


def test_kernel_solicitation_for_a_claimed_ip_gets_a_solicited_advertisement(
        captured: bytes) -> None:
    reply = _reply(frames.decide(captured, OWNED, NODE_MAC))
    header, ipv6, advert = wire.advertisement_of(reply.frame)
    assert (reply.ip, reply.destination) == (VIP6, CLIENT_MAC)
    assert (header.destination, header.source) == (CLIENT_MAC, NODE_MAC)
    assert (ipv6.source, ipv6.destination) == (VIP6, CLIENT6)
    assert advert == ndp.Advertisement(router=False, solicited=True, override=True,
                                       target=VIP6, target_mac=NODE_MAC)


def test_our_solicited_advertisement_goes_to_the_solicitor(captured: bytes) -> None:
    """The NA to Linux's solicitation is byte for byte the one Linux accepted."""
    assert _reply(frames.decide(load(KERNEL_NS), OWNED, NODE_MAC)).frame == captured


def test_ndisc6_solicitation_for_a_claimed_ip_gets_a_solicited_advertisement(
        captured: bytes) -> None:
    _, _, advert = wire.advertisement_of(_reply(frames.decide(captured, OWNED, NODE_MAC)).frame)
    assert (advert.target, advert.target_mac, advert.solicited) == (VIP6, NODE_MAC, True)


def test_duplicate_address_detection_is_answered_to_all_nodes(captured: bytes) -> None:
    """RFC 4861 §7.2.4: a solicitation from :: is answered to ff02::1, Solicited clear."""
    reply = _reply(frames.decide(captured, OWNED, NODE_MAC))
    header, ipv6, advert = wire.advertisement_of(reply.frame)
    assert header.destination == bytes.fromhex("333300000001")
    assert ipv6.destination == ndp.ALL_NODES
    assert (advert.solicited, advert.override, advert.target_mac) == (False, True, NODE_MAC)


def test_unicast_solicitation_without_source_option_is_answered_to_its_sender() -> None:
    """A neighbour-unreachability probe may omit the SLLA option; the Ethernet source
    is then where the answer goes."""
    probe = ndp.solicitation_frame(target=VIP6, source=CLIENT6, source_mac=CLIENT_MAC,
                                   destination=VIP6, destination_mac=NODE_MAC,
                                   with_source_option=False)
    reply = _reply(frames.decide(probe, OWNED, NODE_MAC))
    header, ipv6, _ = wire.advertisement_of(reply.frame)
    assert (header.destination, ipv6.destination) == (CLIENT_MAC, CLIENT6)


def test_arp_probe_is_answered_so_the_prober_sees_the_address_taken() -> None:
    """RFC 5227 probe: sender IP 0.0.0.0; the reply goes to the prober's MAC."""
    probe = arp.ArpPacket(arp.OP_REQUEST, CLIENT_MAC, IPv4Address(0), b"\x00" * 6, VIP4)
    frame = ethernet.encode(ethernet.BROADCAST, CLIENT_MAC, ethernet.ETHERTYPE_ARP,
                            arp.encode(probe))
    header, packet = wire.arp_of(_reply(frames.decide(frame, OWNED, NODE_MAC)).frame)
    assert header.destination == CLIENT_MAC
    assert (packet.sender_ip, packet.target_ip) == (VIP4, IPv4Address(0))


def test_unicast_arp_request_to_our_mac_is_answered() -> None:
    frame = patch(load(ARPING), 0, NODE_MAC)
    assert isinstance(frames.decide(frame, OWNED, NODE_MAC), frames.Reply)


def test_padding_after_the_ipv6_payload_is_ignored() -> None:
    frame = load(KERNEL_NS) + b"\x00" * 10
    assert isinstance(frames.decide(frame, OWNED, NODE_MAC), frames.Reply)


# -- drops ----------------------------------------------------------------------------


def _ns(icmp_type: int = ndp.TYPE_NEIGHBOR_SOLICITATION, body: bytes | None = None, *,
        code: int = 0, source: IPv6Address = CLIENT6,
        destination: IPv6Address | None = None) -> bytes:
    """A hand-built ICMPv6 frame from the client, checksum right."""
    group = destination or ndp.solicited_node(VIP6)
    if body is None:
        body = b"\x00" * 4 + VIP6.packed + bytes([1, 1]) + CLIENT_MAC
    packet = ndp.encode(source, group, icmp_type, body, code=code)
    return ethernet.encode(ethernet.ipv6_multicast_mac(group), CLIENT_MAC,
                           ethernet.ETHERTYPE_IPV6, packet)


def _arp_request(sender_mac: bytes = CLIENT_MAC, sender_ip: IPv4Address = CLIENT4,
                 target_ip: IPv4Address = VIP4, source: bytes = CLIENT_MAC) -> bytes:
    packet = arp.ArpPacket(arp.OP_REQUEST, sender_mac, sender_ip, b"\x00" * 6, target_ip)
    return ethernet.encode(ethernet.BROADCAST, source, ethernet.ETHERTYPE_ARP, arp.encode(packet))


def _ipv6_header_only(next_header: int, payload: bytes) -> bytes:
    header = bytes([0x60, 0, 0, 0]) + len(payload).to_bytes(2, "big") + bytes([next_header, 255])
    packet = header + CLIENT6.packed + ndp.solicited_node(VIP6).packed + payload
    return ethernet.encode(b"\x33\x33\xff\x00\x02\x00", CLIENT_MAC, ethernet.ETHERTYPE_IPV6,
                           packet)


@dataclass(frozen=True)
class Case:
    desc: str
    frame: bytes
    expected: Drop | frames.Conflict
    owned: frozenset[IPv4Address | IPv6Address] = OWNED


DROPS = [
    Case("a frame shorter than an Ethernet header", b"\xff" * 13, Drop.MALFORMED),
    Case("an ARP request cut short", load(ARPING)[:41], Drop.MALFORMED),
    Case("ARP for another hardware type", patch(load(ARPING), 14, b"\x00\x06"), Drop.MALFORMED),
    Case("an IPv6 packet shorter than its length field", load(KERNEL_NS)[:80], Drop.MALFORMED),
    Case("an IPv6 header saying version 4", patch(load(KERNEL_NS), 14, b"\x40"), Drop.MALFORMED),
    Case("ICMPv6 shorter than its own header", _ipv6_header_only(58, b"\x87\x00"),
         Drop.MALFORMED),
    Case("an NS shorter than its target field", _ns(body=b"\x00" * 12), Drop.MALFORMED),
    Case("an NS option of length zero",
         _ns(body=b"\x00" * 4 + VIP6.packed + bytes([1, 0]) + CLIENT_MAC), Drop.MALFORMED),
    Case("an NS option running past the end",
         _ns(body=b"\x00" * 4 + VIP6.packed + bytes([1, 2]) + CLIENT_MAC), Drop.MALFORMED),
    Case("Linux's ICMP echo request (IPv4)", load("test_ipv4_packet_is_not_arp"), Drop.NOT_ARP),
    Case("Linux's MLDv2 report behind a hop-by-hop header", load("test_mld_report_is_not_ndp"),
         Drop.NOT_NDP),
    Case("Linux's neighbour advertisement for an address we do not claim",
         load("test_kernel_advertisement_is_not_a_solicitation"), Drop.NOT_OWNED),
    Case("a router solicitation", _ns(133, b"\x00" * 4), Drop.NOT_NDP),
    Case("Linux's ARP reply", load("test_kernel_arp_reply_is_not_a_request"), Drop.NOT_REQUEST),
    Case("our own gratuitous ARP, looped back",
         load("test_our_gratuitous_arp_is_a_broadcast_request_for_the_claimed_ip"),
         Drop.FROM_SELF),
    Case("our own unsolicited NA, looped back",
         load("test_our_unsolicited_advertisement_overrides_for_all_nodes"), Drop.FROM_SELF),
    Case("an ARP request whose sender MAC is ours", _arp_request(sender_mac=NODE_MAC),
         Drop.FROM_SELF),
    Case("an ARP request unicast to another host", patch(load(ARPING), 0, OTHER_MAC),
         Drop.OTHER_HOST),
    Case("an NS unicast to another host", patch(load(KERNEL_NS), 0, OTHER_MAC), Drop.OTHER_HOST),
    Case("an ARP request from a multicast MAC",
         _arp_request(sender_mac=bytes.fromhex("01005e000001")), Drop.BAD_SOURCE),
    Case("an ARP request from MAC zero", _arp_request(sender_mac=b"\x00" * 6), Drop.BAD_SOURCE),
    Case("a DAD NS carrying a source link-layer option", _ns(source=UNSPECIFIED),
         Drop.BAD_SOURCE),
    Case("a DAD NS sent to a unicast address",
         ndp.solicitation_frame(target=VIP6, source=UNSPECIFIED, source_mac=CLIENT_MAC,
                                destination=VIP6, destination_mac=NODE_MAC,
                                with_source_option=False), Drop.BAD_SOURCE),
    Case("an NS from a multicast source", _ns(source=IPv6Address("ff02::1")), Drop.BAD_SOURCE),
    Case("an NS whose SLLA option is multicast",
         _ns(body=b"\x00" * 4 + VIP6.packed + bytes([1, 1]) + ethernet.BROADCAST),
         Drop.BAD_SOURCE),
    Case("arping -U: someone announcing its own address",
         load("test_someone_elses_gratuitous_arp_is_not_answered"), Drop.GRATUITOUS),
    Case("an NA for a claimed address that crossed a router (hop limit 64)",
         patch(ndp.unsolicited_frame(VIP6, OTHER_MAC), 21, b"\x40"), Drop.BAD_HOP_LIMIT),
    Case("an NA for a multicast target",
         ndp.unsolicited_frame(IPv6Address("ff02::1"), OTHER_MAC), Drop.MULTICAST_TARGET),
    Case("an NS that crossed a router (hop limit 64)", patch(load(KERNEL_NS), 21, b"\x40"),
         Drop.BAD_HOP_LIMIT),
    Case("an NS with a corrupted checksum", patch(load(KERNEL_NS), 56, b"\x00\x00"),
         Drop.BAD_CHECKSUM),
    Case("an NS with a bit flipped in its target", patch(load(KERNEL_NS), 14 + 40 + 8, b"\x21"),
         Drop.BAD_CHECKSUM),
    Case("an NS with ICMP code 1", _ns(code=1), Drop.BAD_CODE),
    Case("an NS for a multicast target",
         _ns(body=b"\x00" * 4 + ndp.ALL_NODES.packed + bytes([1, 1]) + CLIENT_MAC),
         Drop.MULTICAST_TARGET),
    Case("arping for an address we don't claim", load(ARPING), Drop.NOT_OWNED,
         owned=frozenset({VIP6})),
    Case("Linux's NS for an address we don't claim", load(KERNEL_NS), Drop.NOT_OWNED,
         owned=frozenset({VIP4})),
    Case("an ARP request for our IPv6 VIP's low bits", _arp_request(target_ip=IPv4Address(
        int(VIP6) & 0xFFFF_FFFF)), Drop.NOT_OWNED),
]


@pytest.mark.parametrize("case", DROPS, ids=[c.desc for c in DROPS])
def test_frames_that_must_not_be_answered_are_dropped_with_a_reason(case: Case) -> None:
    assert frames.decide(case.frame, case.owned, NODE_MAC) is case.expected


def test_someone_elses_gratuitous_arp_is_not_answered(captured: bytes) -> None:
    assert frames.decide(captured, OWNED, NODE_MAC) is Drop.GRATUITOUS


CONFLICTS = [
    Case("arping -U from another host for an address we claim",
         load("test_someone_elses_gratuitous_arp_is_not_answered"),
         frames.Conflict(CLIENT4, CLIENT_MAC), owned=OWNED | {CLIENT4}),
    Case("an ARP reply from another MAC for an address we claim",
         ethernet.encode(NODE_MAC, OTHER_MAC, ethernet.ETHERTYPE_ARP, arp.encode(
             arp.ArpPacket(arp.OP_REPLY, OTHER_MAC, VIP4, NODE_MAC, CLIENT4))),
         frames.Conflict(VIP4, OTHER_MAC)),
    Case("an ARP request whose sender IP is an address we claim",
         _arp_request(sender_mac=OTHER_MAC, sender_ip=VIP4, target_ip=CLIENT4,
                      source=OTHER_MAC), frames.Conflict(VIP4, OTHER_MAC)),
    Case("an unsolicited NA from another MAC for an address we claim",
         ndp.unsolicited_frame(VIP6, OTHER_MAC), frames.Conflict(VIP6, OTHER_MAC)),
]


@pytest.mark.parametrize("case", CONFLICTS, ids=[c.desc for c in CONFLICTS])
def test_another_mac_claiming_an_address_we_answer_for_is_a_conflict(case: Case) -> None:
    """RFC 5227 §2.4 for ARP, whatever the operation; RFC 4861 §7.1.2-valid NAs."""
    assert frames.decide(case.frame, case.owned, NODE_MAC) == case.expected


def test_every_drop_reason_is_exercised() -> None:
    assert {c.expected for c in DROPS} == set(Drop)


def test_drop_reasons_are_lower_camel_labels() -> None:
    """STYLE §2.7: the value is the log field and the metric label, unchanged."""
    for reason in Drop:
        assert reason.value[0].islower(), reason
        assert reason.value.isalnum(), reason
