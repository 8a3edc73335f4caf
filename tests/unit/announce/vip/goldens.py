"""The keepalived configurations we compare against golden files (and check with the
real keepalived)."""

from __future__ import annotations

import ipaddress

from openelb.announce.vip import config

FIFO = "/run/openelb/vip/notify.fifo"


def _ip(text: str) -> config.addresses.IPAddress:
    return ipaddress.ip_address(text)


CASES: dict[str, tuple[config.Instance, ...]] = {
    "one_address_three_nodes": (
        config.Instance("oelb_192_0_2_10", 17, "eth0", 250, _ip("203.0.113.11"),
                        (_ip("203.0.113.12"), _ip("203.0.113.13")), _ip("192.0.2.10")),
    ),
    "alone_and_ipv6": (
        config.Instance("oelb_192_0_2_11", 200, "eth0", 250, _ip("203.0.113.11"), (),
                        _ip("192.0.2.11")),
        config.Instance("oelb_2001_db8__10", 17, "eth0", 249, _ip("2001:db8:1::11"),
                        (_ip("2001:db8:1::12"),), _ip("2001:db8::10")),
    ),
}
