"""Records the real frames the unit tests replay (STYLE §2.14), named after their tests.

Run as root: `.venv/bin/python -m tests.integration.layer2.capture_frames`. It builds
the Lab, makes Linux (ping, arping, ndisc6, the kernel's DAD and MLD) and the
announcer talk across the veth, sniffs in the client namespace, and writes one hex file
per fixture into tests/unit/announce/layer2/frames/. The Lab's MACs are fixed, so a
re-run gives the same fixtures up to identifiers and checksums.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from openelb.announce.layer2 import arp, ethernet, ndp
from tests.integration.layer2 import lab as lab_module
from tests.integration.layer2.lab import A_IF, B_IF, MAC_A, MAC_B, VIP4, VIP6, Lab

OUT = Path(__file__).resolve().parents[2] / "unit" / "announce" / "layer2" / "frames"
A, B = ethernet.parse_mac(MAC_A), ethernet.parse_mac(MAC_B)


@dataclass(frozen=True)
class Fixture:
    name: str  # the test that replays it
    what: str
    pick: Callable[[bytes], bool]


def _arp(frame: bytes, source: bytes, operation: int, gratuitous: bool | None = None) -> bool:
    parsed = ethernet.parse(frame)
    if parsed is None or parsed[0].ethertype != ethernet.ETHERTYPE_ARP:
        return False
    packet = arp.parse(parsed[1])
    return (packet is not None and parsed[0].source == source and packet.operation == operation
            and (gratuitous is None
                 or gratuitous == (packet.sender_ip == packet.target_ip)))


def _icmpv6(frame: bytes, source: bytes, icmp_type: int,
            check: Callable[[ndp.Ipv6Header], bool] = lambda header: True) -> bool:
    parsed = ethernet.parse(frame)
    if parsed is None or parsed[0].ethertype != ethernet.ETHERTYPE_IPV6:
        return False
    ipv6 = ndp.parse_ipv6(parsed[1])
    if ipv6 is None or parsed[0].source != source or ipv6[0].next_header != 58:
        return False
    icmp = ndp.parse_icmpv6(ipv6[1])
    return icmp is not None and icmp.type == icmp_type and check(ipv6[0])


def _ethertype(frame: bytes, source: bytes, ethertype: int, first_byte: int | None = None) -> bool:
    parsed = ethernet.parse(frame)
    return (parsed is not None and parsed[0].source == source
            and parsed[0].ethertype == ethertype
            and (first_byte is None or (len(parsed[1]) > 6 and parsed[1][6] == first_byte)))


NS, NA = ndp.TYPE_NEIGHBOR_SOLICITATION, ndp.TYPE_NEIGHBOR_ADVERTISEMENT
REQUEST, REPLY = arp.OP_REQUEST, arp.OP_REPLY


def _steps(lab: Lab, announcer: lab_module.Announcer) -> list[tuple[str, Callable[[], object],
                                                                     list[Fixture]]]:
    def dad() -> None:
        lab.sh(lab.b, "sysctl", "-qw", f"net.ipv6.conf.{B_IF}.accept_dad=1")
        lab.sh(lab.b, "ip", "addr", "add", f"{VIP6}/64", "dev", B_IF)
        time.sleep(2.5)  # DAD and the delayed MLD report
        lab.sh(lab.b, "ip", "addr", "del", f"{VIP6}/64", "dev", B_IF)

    def ping_from_b(vip: IPv4Address | IPv6Address) -> Callable[[], None]:
        def run() -> None:
            lab.forget_neighbour(vip)
            lab.ping(vip)
        return run

    def ping_from_a() -> None:
        lab.sh(lab.a, "ping", "-c1", "-W1", lab_module.B4, check=False)
        lab.sh(lab.a, "ping", "-6", "-c1", "-W1", lab_module.B6, check=False)

    return [
        ("the announcer claims both VIPs", lambda: announcer.set((VIP4, A_IF), (VIP6, A_IF)), [
            Fixture("test_our_gratuitous_arp_is_a_broadcast_request_for_the_claimed_ip",
                    "the announcer's gratuitous ARP for 192.0.2.200",
                    lambda f: _arp(f, A, REQUEST, gratuitous=True)),
            Fixture("test_our_unsolicited_advertisement_overrides_for_all_nodes",
                    "the announcer's unsolicited NA for 2001:db8:1::200",
                    lambda f: _icmpv6(f, A, NA)),
        ]),
        ("arping -c1 192.0.2.200 from the client", lambda: lab.arping(VIP4), [
            Fixture("test_arping_request_for_a_claimed_ip_gets_a_unicast_arp_reply",
                    "iputils arping's request for 192.0.2.200",
                    lambda f: _arp(f, B, REQUEST, gratuitous=False)),
            Fixture("test_our_arp_reply_is_unicast_to_the_requester",
                    "the announcer's reply to arping", lambda f: _arp(f, A, REPLY)),
        ]),
        ("ping -4 192.0.2.200 from the client", ping_from_b(VIP4), [
            Fixture("test_kernel_arp_request_for_a_claimed_ip_gets_a_unicast_arp_reply",
                    "Linux's ARP request for 192.0.2.200",
                    lambda f: _arp(f, B, REQUEST, gratuitous=False)),
            Fixture("test_ipv4_packet_is_not_arp", "Linux's ICMP echo request to 192.0.2.200",
                    lambda f: _ethertype(f, B, 0x0800)),
        ]),
        ("ping -6 2001:db8:1::200 from the client", ping_from_b(VIP6), [
            Fixture("test_kernel_solicitation_for_a_claimed_ip_gets_a_solicited_advertisement",
                    "Linux's NS for 2001:db8:1::200 to its solicited-node group",
                    lambda f: _icmpv6(f, B, NS)),
            Fixture("test_our_solicited_advertisement_goes_to_the_solicitor",
                    "the announcer's NA answering Linux", lambda f: _icmpv6(f, A, NA)),
        ]),
        ("ndisc6 2001:db8:1::200 from the client", lambda: lab.ndisc6(VIP6), [
            Fixture("test_ndisc6_solicitation_for_a_claimed_ip_gets_a_solicited_advertisement",
                    "ndisc6's NS for 2001:db8:1::200", lambda f: _icmpv6(f, B, NS)),
        ]),
        ("arping -U for the client's own address", lambda: lab.sh(
            lab.b, "arping", "-U", "-c1", "-I", B_IF, lab_module.B4, check=False), [
            Fixture("test_someone_elses_gratuitous_arp_is_not_answered",
                    "iputils arping -U (gratuitous request) for 192.0.2.2",
                    lambda f: _arp(f, B, REQUEST, gratuitous=True)),
        ]),
        ("the node pings the client", ping_from_a, [
            Fixture("test_kernel_arp_reply_is_not_a_request", "Linux's ARP reply for 192.0.2.2",
                    lambda f: _arp(f, B, REPLY)),
            Fixture("test_kernel_advertisement_is_not_a_solicitation",
                    "Linux's solicited NA for 2001:db8:1::2", lambda f: _icmpv6(f, B, NA)),
        ]),
        ("the client runs DAD for 2001:db8:1::200", dad, [
            Fixture("test_duplicate_address_detection_is_answered_to_all_nodes",
                    "Linux's DAD NS (source ::) for 2001:db8:1::200",
                    lambda f: _icmpv6(f, B, NS, lambda h: h.source.is_unspecified)),
            Fixture("test_mld_report_is_not_ndp",
                    "Linux's MLDv2 report (hop-by-hop header first)",
                    lambda f: _ethertype(f, B, ethernet.ETHERTYPE_IPV6, first_byte=0)),
        ]),
    ]


def _write(fixture: Fixture, step: str, frame: bytes) -> None:
    lines = [f"# {fixture.what}", f"# step: {step}",
             f"# recorded by tests/integration/layer2/capture_frames.py; client (B) {MAC_B}, "
             f"node (A) {MAC_A}"]
    lines += [frame[i:i + 32].hex(" ") for i in range(0, len(frame), 32)]
    (OUT / f"{fixture.name}.hex").write_text("\n".join(lines) + "\n")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="oelb-capture-") as logs:
        lab = Lab(Path(logs))
        try:
            lab.up()
            announcer = lab.announcer(repeats=0)
            for step, action, fixtures in _steps(lab, announcer):
                sniffer = lab.sniffer(everything=True)
                action()
                frames: list[bytes] = []
                while (message := sniffer.read(timeout=0.7)) is not None:
                    frames.append(bytes.fromhex(message["frame"]))
                sniffer.stop()
                for fixture in fixtures:
                    found = next((f for f in frames if fixture.pick(f)), None)
                    if found is None:
                        raise SystemExit(f"{fixture.name}: no frame in step {step!r}")
                    _write(fixture, step, found)
                    print(f"{fixture.name}: {len(found)} bytes")
            announcer.close()
        finally:
            lab.down()


if __name__ == "__main__":
    main()
