"""The lab's pure parts: reading daemon and kernel output, rendering configs, kubeconfigs.

No namespaces here (no root needed); the real daemons check the rendered configs in
test_lab.py.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from openelb_testenv import netlab, routers


def test_kernel_next_hops_reads_single_and_multipath_routes() -> None:
    routes: list[dict[str, Any]] = [
        {"dst": "203.0.113.10", "gateway": "192.0.2.11", "dev": "eth0"},
        {
            "dst": "203.0.113.10",
            "nexthops": [
                {"gateway": "2001:db8:1:0::12", "dev": "eth0"},
                {"gateway": "192.0.2.13", "dev": "eth0"},
            ],
        },
        {"type": "blackhole", "dst": "203.0.113.10"},
    ]
    assert netlab.kernel_next_hops(routes) == {"192.0.2.11", "2001:db8:1::12", "192.0.2.13"}


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("Established", netlab.SessionState.ESTABLISHED),
        ("ESTABLISHED", netlab.SessionState.ESTABLISHED),
        ("OpenSent", netlab.SessionState.OPEN_SENT),
        ("open_confirm", netlab.SessionState.OPEN_CONFIRM),
        ("Clearing", netlab.SessionState.IDLE),
    ],
    ids=["bird-frr", "upper", "camel", "snake", "unknown-is-idle"],
)
def test_session_states_of_every_daemon_map_to_rfc_names(
    text: str, state: netlab.SessionState
) -> None:
    assert netlab.SessionState.parse(text) == state


def _path(hop: str, asns: list[int], *, best: bool = False, mp: bool = False) -> dict[str, object]:
    hop_attr = {"type": 14, "nexthop": hop} if mp else {"type": 3, "nexthop": hop}
    return {
        "best": best,
        "attrs": [
            {"type": 1, "value": 0},
            {"type": 2, "as_paths": [{"segment_type": 2, "num": len(asns), "asns": asns}]},
            hop_attr,
        ],
    }


def test_gobgp_ecmp_set_is_every_path_as_good_as_the_best() -> None:
    rib = {
        "203.0.113.10/32": [
            _path("192.0.2.11", [64512], best=True),
            _path("192.0.2.12", [64512]),
            _path("192.0.2.13", [64512, 64999]),  # longer AS path: not part of the set
        ],
        "2001:db8:3::10/128": [_path("2001:db8:1::11", [64512], best=True, mp=True)],
        "203.0.113.20/32": [_path("192.0.2.11", [64512])],  # no best path: not installed
    }
    assert routers.gobgp_ecmp(rib) == {
        "203.0.113.10/32": {"192.0.2.11", "192.0.2.12"},
        "2001:db8:3::10/128": {"2001:db8:1::11"},
    }


def test_rewritten_kubeconfig_points_every_cluster_at_the_relay(tmp_path: Path) -> None:
    source = tmp_path / "in.yaml"
    source.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {"name": "a", "cluster": {"server": "https://127.0.0.1:39999"}},
                    {"name": "b", "cluster": {"server": "https://10.96.0.1/prefix"}},
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    written = netlab.rewrite_kubeconfig(source, tmp_path / "out", 6443)
    config = json.loads(written.read_text())
    servers = [cluster["cluster"]["server"] for cluster in config["clusters"]]
    assert servers == ["https://127.0.0.1:6443", "https://127.0.0.1:6443/prefix"]
    assert config["users"] == [{"name": "u", "user": {"token": "t"}}]
    assert written.stat().st_mode & 0o777 == 0o600


def _peers() -> tuple[netlab.Peer, ...]:
    return (
        netlab.Peer(ipaddress.ip_address("192.0.2.11"), password="s3cret"),
        netlab.Peer(ipaddress.ip_address("2001:db8:1::11"), passive=True),
    )


class _FakeHost:
    """Just enough of a Host for rendering (no namespace is touched)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.name = "router"


@pytest.mark.parametrize("flavour", sorted(routers.FLAVOURS), ids=sorted(routers.FLAVOURS))
def test_every_flavour_renders_password_passive_timers_and_ecmp(
    flavour: str, tmp_path: Path
) -> None:
    config = netlab.RouterConfig(peers=_peers(), hold_time=6, keepalive=2, add_path_receive=True)
    router = routers.FLAVOURS[flavour](_FakeHost(tmp_path), config)  # type: ignore[arg-type]
    text = router.render()
    assert "192.0.2.11" in text
    assert "2001:db8:1::11" in text
    assert "s3cret" in text
    expected = {
        "bird": ("passive on", "hold time 6", "merge paths on", "add paths rx"),
        "frr": ("passive", "timers bgp 2 6", "maximum-paths 16", "ebgp-requires-policy"),
        "gobgp": ("passive-mode = true", "hold-time = 6", "use-multiple-paths", "receive = true"),
    }
    for fragment in expected[flavour]:
        assert fragment in text


def test_a_password_the_config_cannot_quote_is_refused(tmp_path: Path) -> None:
    peer = netlab.Peer(ipaddress.ip_address("192.0.2.11"), password='x"; export all; "')
    router = routers.Bird(_FakeHost(tmp_path), netlab.RouterConfig(peers=(peer,)))  # type: ignore[arg-type]
    with pytest.raises(netlab.NetlabError, match="password"):
        router.render()


def test_gratuitous_arps_of_both_senders_are_recognised() -> None:
    """The LAN client's capture: the speaker's gratuitous ARP leaves the target hardware
    address zero, keepalived's sets it to broadcast (tcpdump prints it); both announce
    the address. A request for it from another address is not an announcement."""
    from tests.e2e.layer2 import lan

    head = "{at} {mac} > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: "
    lines = [
        head.format(at="1.1", mac="02:00:00:00:00:01")
        + "Request who-has 192.0.2.200 (ff:ff:ff:ff:ff:ff) tell 192.0.2.200, length 28",
        head.format(at="1.2", mac="02:00:00:00:00:02")
        + "Request who-has 192.0.2.200 tell 192.0.2.200, length 28",
        head.format(at="1.3", mac="02:00:00:00:00:03")
        + "Request who-has 192.0.2.200 tell 192.0.2.1, length 28",
        head.format(at="1.4", mac="02:00:00:00:00:04")
        + "Request who-has 192.0.2.201 (ff:ff:ff:ff:ff:ff) tell 192.0.2.201, length 28",
    ]
    found = lan.announcements(lines, "192.0.2.200")
    assert [(f.at, f.source) for f in found] == [(1.1, "02:00:00:00:00:01"),
                                                 (1.2, "02:00:00:00:00:02")]
