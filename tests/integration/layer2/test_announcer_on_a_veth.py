"""The announcer on a real veth, judged by real Linux tools in a second namespace.

Namespace A runs the Layer2Announcer (helper.py), namespace B is a LAN client using
arping, ndisc6, ping and its neighbour table (see lab.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest

from tests.integration.layer2.lab import (
    A_IF,
    B4,
    B6,
    B_IF,
    MAC_A,
    VIP4,
    VIP6,
    WRONG_MAC,
    Lab,
    wait_for,
)

pytestmark = pytest.mark.root


def _neighbour_is(lab: Lab, ip: IPv4Address | IPv6Address,
                  mac: str) -> Callable[[], tuple[str, str] | None]:
    def probe() -> tuple[str, str] | None:
        entry = lab.neighbour(ip)
        return entry if entry is not None and entry[0] == mac else None
    return probe


def test_claimed_ipv4_address_resolves_to_the_announcer_mac(lab: Lab) -> None:
    announcer = lab.announcer()
    announcer.set((VIP4, A_IF))
    result = lab.arping(VIP4)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[{MAC_A.upper()}]" in result.stdout
    lab.forget_neighbour(VIP4)
    lab.ping(VIP4)
    assert lab.neighbour(VIP4) == (MAC_A, "REACHABLE")
    counters = announcer.counters()
    assert counters["replies_sent"]["ipv4"] >= 2
    announcer.close()


def test_claimed_ipv6_address_resolves_to_the_announcer_mac(lab: Lab) -> None:
    announcer = lab.announcer()
    announcer.set((VIP6, A_IF))
    result = lab.ndisc6(VIP6)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Target link-layer address: {MAC_A.upper()}" in result.stdout
    lab.forget_neighbour(VIP6)
    lab.ping(VIP6)  # the kernel's own NS, to the solicited-node group
    assert lab.neighbour(VIP6) == (MAC_A, "REACHABLE")
    announcer.close()


def test_claimed_ipv6_address_joins_its_solicited_node_group(lab: Lab) -> None:
    """On a real NIC the multicast filter drops groups nobody joined; the NS for a
    claimed address goes to 33:33:ff + its last 24 bits."""
    group = "33:33:ff:00:02:00"  # of 2001:db8:1::200; none of A's own addresses has it

    def joined() -> str:
        return lab.sh(lab.a, "ip", "maddr", "show", "dev", A_IF).stdout

    assert group not in joined()
    announcer = lab.announcer()
    announcer.set((VIP6, A_IF))
    assert group in joined()
    announcer.set()
    assert group not in joined()
    announcer.close()


def test_released_addresses_are_not_answered_any_more(lab: Lab) -> None:
    announcer = lab.announcer()
    announcer.set((VIP4, A_IF), (VIP6, A_IF))
    assert lab.arping(VIP4).returncode == 0
    announcer.set()
    assert lab.arping(VIP4).returncode != 0
    assert lab.ndisc6(VIP6).returncode != 0
    for vip in (VIP4, VIP6):
        lab.forget_neighbour(vip)
        lab.ping(vip)
        entry = wait_for(functools.partial(lab.neighbour, vip), f"a probe entry for {vip}")
        assert entry[0] == "", entry
        assert entry[1] in {"INCOMPLETE", "FAILED"}, entry
    announcer.close()


def test_only_claimed_addresses_are_answered(lab: Lab) -> None:
    """With sockets open for 192.0.2.200 and 2001:db8:1::300, their neighbours on the
    same link stay unanswered."""
    announcer = lab.announcer()
    announcer.set((VIP4, A_IF), (IPv6Address("2001:db8:1::300"), A_IF))
    assert lab.arping(IPv4Address("192.0.2.201")).returncode != 0
    assert lab.ndisc6(VIP6).returncode != 0
    assert lab.arping(VIP4).returncode == 0
    drops = announcer.counters()["drops"]
    assert drops.get("ipv4/notOwned", 0) >= 1
    assert drops.get("ipv6/notOwned", 0) >= 1
    announcer.close()


def test_gratuitous_announcements_move_an_existing_neighbour_entry(lab: Lab) -> None:
    """B holds stale entries with a wrong MAC and sends nothing; claiming the VIPs
    rewrites them (gratuitous ARP request form; unsolicited NA with Override)."""
    for vip in (VIP4, VIP6):
        lab.seed_neighbour(vip, WRONG_MAC)
        assert lab.neighbour(vip) == (WRONG_MAC, "STALE")
    announcer = lab.announcer(repeats=0)
    announcer.set((VIP4, A_IF), (VIP6, A_IF))
    for vip in (VIP4, VIP6):
        entry = wait_for(_neighbour_is(lab, vip, MAC_A),
                         f"B's entry for {vip} to move to {MAC_A}", timeout=5.0)
        assert entry == (MAC_A, "STALE")
    announcer.close()


def test_first_gratuitous_announcement_is_on_the_wire_at_once(lab: Lab) -> None:
    """set() sends before it returns; the repeats follow `garp_interval` apart."""
    sniffer = lab.sniffer()
    announcer = lab.announcer(repeats=2, interval=0.3)
    started = announcer.set((VIP4, A_IF), (VIP6, A_IF))["t0"]
    seen = [wait_for(lambda: sniffer.read(timeout=0.1), "a gratuitous frame in B")
            for _ in range(6)]
    first = {family: min(s["t"] for s in seen if s["family"] == family)
             for family in ("ipv4", "ipv6")}
    delays = {family: round((t - started) * 1000, 2) for family, t in first.items()}
    print(f"set() -> first gratuitous frame seen in B, ms: {delays}")
    assert all(delay < 250 for delay in delays.values()), delays  # the repeat comes at 300
    assert {(s["family"], s["ip"], s["mac"]) for s in seen} == {
        ("ipv4", str(VIP4), MAC_A), ("ipv6", str(VIP6), MAC_A)}
    assert sniffer.read(timeout=1.0) is None  # 1 + 2 repeats per address, then quiet
    assert announcer.counters()["gratuitous_sent"] == {"ipv4": 3, "ipv6": 3}
    announcer.close()


def test_client_duplicate_address_detection_finds_the_claimed_address(lab: Lab) -> None:
    """B tries to configure the claimed IPv6 address; our answer to its DAD (from ::,
    answered to all-nodes) makes the kernel mark it dadfailed."""
    announcer = lab.announcer()
    announcer.set((VIP6, A_IF))
    lab.sh(lab.b, "sysctl", "-qw", f"net.ipv6.conf.{B_IF}.accept_dad=1")
    lab.sh(lab.b, "ip", "addr", "add", f"{VIP6}/64", "dev", B_IF)

    def dad_failed() -> bool | None:
        shown = lab.sh(lab.b, "ip", "-6", "addr", "show", "dev", B_IF).stdout
        return True if "dadfailed" in shown else None

    wait_for(dad_failed, f"B's DAD for {VIP6} to fail", timeout=10.0)
    announcer.close()


def test_resolve_interface_by_name_and_by_route(lab: Lab) -> None:
    announcer = lab.announcer()
    cases = {
        A_IF: A_IF,
        f"can_reach:{B4}": A_IF,
        f"can_reach:{B6}": A_IF,
        "lo": None,
        "can_reach:127.0.0.1": None,  # local: routed via lo
        "can_reach:198.51.100.1": None,  # no route at all in the namespace
        "nosuch0": None,
        "can_reach:not-an-ip": None,
    }
    for spec, expected in cases.items():
        answer = announcer.call(op="resolve", spec=spec, ip=str(VIP4))
        assert answer == {"ok": True, "interface": expected}, spec
    announcer.close()
