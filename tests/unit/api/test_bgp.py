"""BgpConf and BgpPeer parsing with OpenELB's field names and nesting."""

from __future__ import annotations

from typing import Any

import pytest

from openelb.api import bgp, errors

PEER: dict[str, Any] = {
    "apiVersion": "network.kubesphere.io/v1alpha2",
    "kind": "BgpPeer",
    "metadata": {"name": "tor"},
    "spec": {
        "conf": {"peerAs": 64513, "neighborAddress": "192.0.2.1", "authPassword": "s3cret"},
        "ebgpMultihop": {"enabled": True, "multihopTtl": 3},
        "timers": {"config": {"holdTime": 9, "keepaliveInterval": "3", "connectRetry": 5}},
        "transport": {"passiveMode": False, "remotePort": 179},
        "gracefulRestart": {"enabled": True, "restartTime": 120},
        "afiSafis": [
            {"config": {"family": {"afi": "AFI_IP", "safi": "SAFI_UNICAST"}, "enabled": True},
             "addPaths": {"config": {"sendMax": 8}}},
            {"config": {"family": {"afi": "AFI_IP6", "safi": "SAFI_UNICAST"}, "enabled": True}},
        ],
        "nodeSelector": {"matchLabels": {"rack": "r1"},
                         "matchExpressions": [{"key": "role", "operator": "NotIn",
                                               "values": ["edge"]}]},
    },
}


def test_peer_with_every_documented_field() -> None:
    peer = bgp.BgpPeer.parse(PEER)
    assert peer.spec.conf.peer_as == 64513
    assert peer.spec.conf.auth_password == "s3cret"
    assert peer.spec.ebgp_multihop is not None
    assert peer.spec.ebgp_multihop.multihop_ttl == 3
    timers = peer.spec.timers.config if peer.spec.timers else None
    assert timers is not None
    assert bgp.TimersConfig.seconds(timers.keepalive_interval) == 3.0
    assert peer.to_raw() == PEER


def test_node_selector_decides_which_nodes_peer() -> None:
    peer = bgp.BgpPeer.parse(PEER)
    assert peer.selects({"rack": "r1", "role": "worker"})
    assert not peer.selects({"rack": "r1", "role": "edge"})
    assert not peer.selects({"rack": "r2"})


def test_objects_labelled_cni_are_ignored() -> None:
    raw = {**PEER, "metadata": {"name": "calico", "labels": {"openelb.kubesphere.io/cni": "x"}}}
    assert bgp.BgpPeer.parse(raw).ignored
    conf = bgp.BgpConf.parse({"metadata": {"name": "default"}, "spec": {"as": 64512}})
    assert conf.counts
    other = bgp.BgpConf.parse({"metadata": {"name": "extra"}, "spec": {"as": 64512}})
    assert not other.counts


def test_bgpconf_fields() -> None:
    conf = bgp.BgpConf.parse({
        "metadata": {"name": "default"},
        "spec": {"as": 64512, "asPerRack": {"r1": 65001}, "routerId": "192.0.2.2",
                 "listenPort": 17900, "listenAddresses": ["192.0.2.2"],
                 "families": [0, 1], "useMultiplePaths": True,
                 "gracefulRestart": {"enabled": True, "restartTime": 60}},
    })
    assert conf.spec.as_ == 64512
    assert conf.spec.as_per_rack == {"r1": 65001}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"conf": {"peerAs": 0, "neighborAddress": "192.0.2.1"}},
         "spec.conf.peerAs: must be an AS number between 1 and 4294967295, got 0"),
        ({"conf": {"peerAs": 1, "neighborAddress": "router"}},
         'spec.conf.neighborAddress: "router" is not an IP address'),
        ({"conf": {"peerAs": 1}}, "spec.conf.neighborAddress: required"),
        ({"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1"},
          "ebgpMultihop": {"multihopTtl": 300}},
         "spec.ebgpMultihop.multihopTtl: must be at most 255, got 300"),
        ({"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1"},
          "timers": {"config": {"holdTime": "soon"}}},
         "spec.timers.config.holdTime: must be a number of seconds, got 'soon'"),
        ({"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1"},
          "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Exists",
                                                 "values": ["x"]}]}},
         "spec.nodeSelector.matchExpressions[0].values: must be empty for operator Exists"),
        ({"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1"},
          "timers": {"config": {"holdTime": 2}}},
         "spec.timers.config.holdTime: must be 0 (use the default) or at least 3 seconds, got 2"),
        ({"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1"},
          "timers": {"config": {"holdTime": "1"}}},
         "spec.timers.config.holdTime: must be 0 (use the default) or at least 3 seconds,"
         " got '1'"),
        ({"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1"},
          "timers": {"config": {"holdTime": "9", "keepaliveInterval": 9}}},
         "spec.timers.config.keepaliveInterval: must be less than spec.timers.config.holdTime"
         " ('9'), got 9"),
        ({"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1", "authPassword": "é" * 41}},
         "spec.conf.authPassword: must be at most 80 bytes (the Linux TCP MD5 key limit),"
         " got 82"),
        ({"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1"},
          "ebgpMultihop": {"enabled": True, "multihopTtl": 0}},
         "spec.ebgpMultihop.multihopTtl: must be between 1 and 255 when"
         " spec.ebgpMultihop.enabled is true, got 0"),
        ({"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1"},
          "transport": {"remoteAddress": "tor.example"}},
         'spec.transport.remoteAddress: "tor.example" is not an IP address'),
    ],
    ids=["asn zero", "neighbor not ip", "neighbor missing", "ttl too big", "timer text",
         "selector values", "hold below 3", "hold text below 3", "keepalive not below hold",
         "md5 key over 80 bytes", "multihop ttl 0", "remote address not ip"],
)
def test_bad_peer_fields_are_named(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.InvalidObject) as caught:
        bgp.BgpPeer.parse({"metadata": {"name": "p"}, "spec": patch})
    assert caught.value.message == message


def test_bad_router_id_is_named() -> None:
    with pytest.raises(errors.InvalidObject) as caught:
        bgp.BgpConf.parse({"spec": {"as": 64512, "routerId": "2001:db8::1"}})
    assert caught.value.message == 'spec.routerId: "2001:db8::1" is not a dotted IPv4 router ID'


@pytest.mark.parametrize(
    "patch",
    [
        {"timers": {"config": {"holdTime": 0, "keepaliveInterval": 30}}},
        {"timers": {"config": {"holdTime": "3", "keepaliveInterval": "1"}}},
        {"timers": {"config": {"keepaliveInterval": 120}}},
        {"ebgpMultihop": {"enabled": True}},
        {"ebgpMultihop": {"enabled": False, "multihopTtl": 0}},
        {"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1", "authPassword": "x" * 80}},
    ],
    ids=["hold 0 is the default", "hold 3", "keepalive without hold", "multihop ttl unset",
         "ttl 0 while disabled", "md5 key of 80 bytes"],
)
def test_boundary_peer_fields_are_accepted(patch: dict[str, Any]) -> None:
    """The edges of the rules the CRD's CEL checks too: RFC 4271 hold times, the MD5 key."""
    spec = {"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1"}, **patch}
    assert bgp.BgpPeer.parse({"metadata": {"name": "p"}, "spec": spec}).to_raw()["spec"] == spec
