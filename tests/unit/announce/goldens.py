"""The ExaBGP configurations we compare against golden files (and load into ExaBGP)."""

from __future__ import annotations

import ipaddress

from openelb.planner import bgp

BRIDGE = ["/usr/bin/nc.openbsd", "-N", "-U", "/run/openelb/api.sock"]

BASE = bgp.PeerSpec(
    name="tor", address=ipaddress.ip_address("192.0.2.1"), peer_as=64513, local_as=64512,
    router_id="192.0.2.11", local_address=ipaddress.ip_address("192.0.2.11"),
    hold_time=9,
)

CASES: dict[str, tuple[bgp.GlobalSpec | None, tuple[bgp.PeerSpec, ...]]] = {
    "one_peer": (bgp.GlobalSpec("192.0.2.11", 64512, -1), (BASE,)),
    "every_option": (
        bgp.GlobalSpec("192.0.2.11", 64512, 17900),
        (
            bgp.PeerSpec(
                name="edge", address=ipaddress.ip_address("198.51.100.1"), peer_as=65000,
                local_as=64512, router_id="192.0.2.11",
                local_address=ipaddress.ip_address("192.0.2.11"), password='se"cret',
                hold_time=30, multihop_ttl=3, passive=True, remote_port=1179,
                families=frozenset({4, 6}), graceful_restart=120, add_path_send=True,
                description="edge router",
            ),
        ),
    ),
    "admin_down_and_ipv6": (
        bgp.GlobalSpec("192.0.2.11", 64512, -1),
        (
            bgp.PeerSpec(name="down", address=ipaddress.ip_address("192.0.2.2"),
                         peer_as=64513, local_as=64512, router_id="192.0.2.11",
                         admin_down=True),
            bgp.PeerSpec(name="v6", address=ipaddress.ip_address("2001:db8:1::1"),
                         peer_as=64513, local_as=64512, router_id="192.0.2.11",
                         local_address=ipaddress.ip_address("2001:db8:1::11"),
                         families=frozenset({6})),
        ),
    ),
}
