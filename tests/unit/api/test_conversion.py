"""v1alpha1 <-> v1alpha2 conversion of OpenELB's objects: field mapping, edits made through
the old version, the preserving annotations, ConversionReview answers, and the lossless
round trip in both directions (hypothesis).

Objects are compared as sorted JSON (`_same`), because Python's == calls True, 1 and 1.0
equal while the apiserver does not.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from openelb.api import bgp, conversion, errors

V1 = conversion.V1ALPHA1
V2 = conversion.V1ALPHA2
V1_FIELDS = conversion.V1ALPHA1_FIELDS  # sits on v1alpha2 objects
V2_FIELDS = conversion.V1ALPHA2_FIELDS  # sits on v1alpha1 objects
ROUND_TRIPS = settings(max_examples=200, deadline=None)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _notes(obj: dict[str, Any]) -> dict[str, str]:
    notes: dict[str, str] = obj.get("metadata", {}).get("annotations", {})
    return notes


def _kept(obj: dict[str, Any], key: str) -> Any:
    return json.loads(_notes(obj)[key])


def _ipv4(send_max: int, **add_paths: Any) -> dict[str, Any]:
    return {"config": {"family": {"afi": "AFI_IP", "safi": "SAFI_UNICAST"}, "enabled": True},
            "addPaths": {"config": {**add_paths, "sendMax": send_max}}}


# ---- OpenELB-style objects -----------------------------------------------------------------

OLD_BGPCONF: dict[str, Any] = {
    "apiVersion": V1,
    "kind": "BgpConf",
    "metadata": {"name": "default", "resourceVersion": "41", "uid": "c0nf"},
    "spec": {"as": 50001, "routerID": "192.0.2.1", "port": 17900},
}

OLD_BGPPEER: dict[str, Any] = {
    "apiVersion": V1,
    "kind": "BgpPeer",
    "metadata": {"name": "tor", "labels": {"rack": "r1"}},
    "spec": {
        "config": {"peerAs": 50000, "neighborAddress": "192.0.2.254"},
        "addPaths": {"sendMax": 10},
        "transport": {"passiveMode": False, "remotePort": 179},
        "usingPortForward": True,
    },
}

RICH_BGPPEER: dict[str, Any] = {
    "apiVersion": V2,
    "kind": "BgpPeer",
    "metadata": {"name": "spine", "annotations": {"team": "net"}, "generation": 3},
    "spec": {
        "conf": {"peerAs": 64513, "neighborAddress": "2001:db8::fe", "authPassword": "s3cret",
                 "description": "spine switch"},
        "afiSafis": [
            {"config": {"family": {"afi": "AFI_IP6", "safi": "SAFI_UNICAST"}, "enabled": True},
             "addPaths": {"config": {"sendMax": 4}}},
            {"config": {"family": {"afi": "AFI_IP", "safi": "SAFI_UNICAST"}, "enabled": True},
             "addPaths": {"config": {"receive": True, "sendMax": 8}},
             "mpGracefulRestart": {"config": {"enabled": True}}},
        ],
        "timers": {"config": {"holdTime": "9", "keepaliveInterval": 3}},
        "transport": {"passiveMode": True, "remotePort": 1179, "mtuDiscovery": True},
        "ebgpMultihop": {"enabled": True, "multihopTtl": 2},
        "gracefulRestart": {"enabled": True, "restartTime": 120},
        "nodeSelector": {"matchLabels": {"openelb.kubesphere.io/rack": "leaf1"}},
    },
    "status": {"nodesPeerStatus": {"node-a": {"peerState": {"sessionState": "ESTABLISHED"}}},
               "conditions": [{"type": "Ready", "status": "True", "reason": "Established",
                               "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
}


# ---- BgpConf ----------------------------------------------------------------------------


def test_openelb_v1alpha1_bgpconf_renames_its_fields() -> None:
    converted = conversion.convert(OLD_BGPCONF, V2)
    assert _same(converted, {**OLD_BGPCONF, "apiVersion": V2,
                             "spec": {"as": 50001, "routerId": "192.0.2.1",
                                      "listenPort": 17900}})
    assert _same(conversion.convert(converted, V1), OLD_BGPCONF)
    bgp.BgpConf.parse(converted)  # and the result is a valid v1alpha2 BgpConf


def test_v1alpha2_only_bgpconf_fields_ride_in_the_annotation() -> None:
    new = {"apiVersion": V2, "kind": "BgpConf", "metadata": {"name": "default"},
           "spec": {"as": 64512, "routerId": "192.0.2.2", "listenPort": -1,
                    "asPerRack": {"r1": 65001}, "useMultiplePaths": True},
           "status": {"nodesConfStatus": {"node-a": {"as": 64512}}}}
    old = conversion.convert(new, V1)
    assert _same(old["spec"], {"as": 64512, "routerID": "192.0.2.2"})  # -1 is no v1 port
    assert _notes(old)[V2_FIELDS] == (
        '{"asPerRack":{"r1":65001},"listenPort":-1,"useMultiplePaths":true}')
    assert _same(old["status"], new["status"])
    assert _same(conversion.convert(old, V2), new)


def test_v1alpha1_client_edits_win_and_the_rest_comes_back() -> None:
    """A v1alpha1 client moves the port and drops routerID; asPerRack survives."""
    new = {"apiVersion": V2, "kind": "BgpConf", "metadata": {"name": "default"},
           "spec": {"as": 64512, "routerId": "192.0.2.2", "listenPort": 179,
                    "asPerRack": {"r1": 65001}}}
    old = conversion.convert(new, V1)
    del old["spec"]["routerID"]
    old["spec"]["port"] = 1179
    back = conversion.convert(old, V2)
    assert _same(back["spec"], {"as": 64512, "listenPort": 1179, "asPerRack": {"r1": 65001}})
    assert "annotations" not in back["metadata"]


# ---- BgpPeer ------------------------------------------------------------------------------


def test_openelb_v1alpha1_bgppeer_maps_onto_v1alpha2() -> None:
    converted = conversion.convert(OLD_BGPPEER, V2)
    assert _same(converted["spec"], {
        "conf": {"peerAs": 50000, "neighborAddress": "192.0.2.254"},
        "afiSafis": [_ipv4(10)],
        "transport": {"passiveMode": False, "remotePort": 179},
    })
    assert _kept(converted, V1_FIELDS) == {"usingPortForward": True}
    assert _same(converted["metadata"]["labels"], {"rack": "r1"})
    bgp.BgpPeer.parse(converted)
    assert _same(conversion.convert(converted, V1), OLD_BGPPEER)


def test_go_clients_empty_objects_survive_the_trip() -> None:
    """OpenELB's Go client writes `addPaths: {}` and `transport: {}` for unset structs."""
    old = {**OLD_BGPPEER, "spec": {"config": {"peerAs": 1, "neighborAddress": "192.0.2.1"},
                                   "addPaths": {}, "transport": {}}}
    new = conversion.convert(old, V2)
    assert _same(new["spec"], {"conf": {"peerAs": 1, "neighborAddress": "192.0.2.1"},
                               "transport": {}})
    assert _kept(new, V1_FIELDS) == {"addPaths": {}}
    assert _same(conversion.convert(new, V1), old)


def test_rich_v1alpha2_bgppeer_reads_as_v1alpha1_and_back() -> None:
    old = conversion.convert(RICH_BGPPEER, V1)
    assert _same(old["spec"], {
        "config": {"peerAs": 64513, "neighborAddress": "2001:db8::fe"},
        "addPaths": {"sendMax": 8},  # the AFI_IP entry's, not the AFI_IP6 one listed first
        "transport": {"passiveMode": True, "remotePort": 1179},
    })
    kept = _kept(old, V2_FIELDS)
    assert kept["conf"] == {"authPassword": "s3cret", "description": "spine switch"}
    assert kept["transport"] == {"mtuDiscovery": True}
    assert _same(kept["afiSafis"], [
        RICH_BGPPEER["spec"]["afiSafis"][0],
        {"config": {"family": {"afi": "AFI_IP", "safi": "SAFI_UNICAST"}, "enabled": True},
         "addPaths": {"config": {"receive": True}},
         "mpGracefulRestart": {"config": {"enabled": True}}},
    ])
    assert set(kept) == {"conf", "transport", "afiSafis", "timers", "ebgpMultihop",
                         "gracefulRestart", "nodeSelector"}
    assert _notes(old)["team"] == "net"
    assert _same(old["status"], RICH_BGPPEER["status"])
    assert _same(conversion.convert(old, V2), RICH_BGPPEER)


def _edited(change: Any) -> dict[str, Any]:
    """RICH_BGPPEER read through v1alpha1, changed by `change(spec)`, written back."""
    old = conversion.convert(RICH_BGPPEER, V1)
    change(old["spec"])
    return conversion.convert(old, V2)


def test_v1alpha1_client_changes_the_ipv4_send_max() -> None:
    new = _edited(lambda spec: spec["addPaths"].update(sendMax=2))
    ipv6, ipv4 = new["spec"]["afiSafis"]
    assert ipv4["addPaths"] == {"config": {"receive": True, "sendMax": 2}}
    assert _same(ipv6, RICH_BGPPEER["spec"]["afiSafis"][0])  # AFI_IP6's own sendMax untouched


def test_v1alpha1_client_removes_add_paths() -> None:
    new = _edited(lambda spec: spec.pop("addPaths"))
    ipv6, ipv4 = new["spec"]["afiSafis"]
    assert ipv4["addPaths"] == {"config": {"receive": True}}
    assert ipv4["mpGracefulRestart"] == {"config": {"enabled": True}}
    assert ipv6["addPaths"] == {"config": {"sendMax": 4}}


def test_v1alpha1_client_edits_conf_and_transport() -> None:
    def change(spec: dict[str, Any]) -> None:
        spec["config"]["neighborAddress"] = "2001:db8::fd"
        del spec["transport"]["passiveMode"]

    new = _edited(change)
    assert new["spec"]["conf"] == {"peerAs": 64513, "neighborAddress": "2001:db8::fd",
                                   "authPassword": "s3cret", "description": "spine switch"}
    assert new["spec"]["transport"] == {"remotePort": 1179, "mtuDiscovery": True}
    assert _same(new["spec"]["timers"], RICH_BGPPEER["spec"]["timers"])
    assert "annotations" in new["metadata"]
    assert set(_notes(new)) == {"team"}


def test_send_max_added_where_only_ipv6_had_one_appends_an_ipv4_entry() -> None:
    only_v6 = copy.deepcopy(RICH_BGPPEER)
    only_v6["spec"]["afiSafis"] = only_v6["spec"]["afiSafis"][:1]
    old = conversion.convert(only_v6, V1)
    assert "addPaths" not in old["spec"]  # v1alpha1 has no place for an IPv6 sendMax
    old["spec"]["addPaths"] = {"sendMax": 6}
    new = conversion.convert(old, V2)
    assert _same(new["spec"]["afiSafis"], [only_v6["spec"]["afiSafis"][0], _ipv4(6)])


def test_send_max_added_to_an_ipv4_entry_without_add_paths() -> None:
    plain = copy.deepcopy(RICH_BGPPEER)
    plain["spec"]["afiSafis"] = [{"config": {"family": {"afi": "AFI_IP"}, "enabled": False}}]
    old = conversion.convert(plain, V1)
    old["spec"]["addPaths"] = {"sendMax": 3}
    new = conversion.convert(old, V2)
    assert _same(new["spec"]["afiSafis"], [
        {"config": {"family": {"afi": "AFI_IP"}, "enabled": False},
         "addPaths": {"config": {"sendMax": 3}}}])


def test_removing_the_send_max_of_a_bare_ipv4_entry_removes_the_entry() -> None:
    """The entry was what the v1alpha1 sendMax stood for; without it nothing is left."""
    old = conversion.convert(OLD_BGPPEER, V2)
    old = conversion.convert(old, V1)
    del old["spec"]["addPaths"]
    assert "afiSafis" not in conversion.convert(old, V2)["spec"]


def test_v1alpha2_client_edits_keep_the_v1alpha1_only_fields() -> None:
    new = conversion.convert(OLD_BGPPEER, V2)
    new["spec"]["conf"]["peerAs"] = 50009
    new["spec"]["timers"] = {"config": {"holdTime": 30}}
    old = conversion.convert(new, V1)
    assert old["spec"]["config"]["peerAs"] == 50009
    assert old["spec"]["usingPortForward"] is True
    assert _kept(old, V2_FIELDS) == {"timers": {"config": {"holdTime": 30}}}
    assert V1_FIELDS not in _notes(old)


@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '"text"', "[" * 100_000, ""],
                         ids=["truncated", "a-list", "a-string", "too-deep", "empty"])
def test_an_unreadable_annotation_is_ignored(garbage: str) -> None:
    old = copy.deepcopy(OLD_BGPPEER)
    old["metadata"]["annotations"] = {V2_FIELDS: garbage, "team": "net"}
    new = conversion.convert(old, V2)
    assert new["spec"]["conf"] == {"peerAs": 50000, "neighborAddress": "192.0.2.254"}
    assert _same(new["spec"]["afiSafis"], [_ipv4(10)])
    assert set(_notes(new)) == {"team", V1_FIELDS}


def test_a_stale_annotation_of_the_objects_own_version_is_dropped() -> None:
    """A v1alpha2 object never carries v1alpha2-fields; carried over it would come back."""
    new = {"apiVersion": V2, "kind": "BgpConf", "metadata": {"name": "default", "annotations": {
        V2_FIELDS: '{"policy":"stale"}'}}, "spec": {"as": 64512, "routerId": "192.0.2.2"}}
    old = conversion.convert(new, V1)
    assert "annotations" not in old["metadata"]
    assert conversion.convert(old, V2)["spec"] == {"as": 64512, "routerId": "192.0.2.2"}


def test_a_moot_empty_add_paths_is_dropped_once_v1alpha2_sets_a_send_max() -> None:
    new = conversion.convert({**OLD_BGPPEER, "spec": {"addPaths": {}}}, V2)
    new["spec"]["afiSafis"] = [_ipv4(5)]
    old = conversion.convert(new, V1)
    assert old["spec"] == {"addPaths": {"sendMax": 5}}
    assert "annotations" not in conversion.convert(old, V2)["metadata"]


def test_the_annotation_keeps_no_empty_shells_of_a_removed_send_max() -> None:
    """An AFI_IP entry whose addPaths held only sendMax is kept without addPaths, so a
    v1alpha1 client that removes the sendMax leaves no `addPaths: {config: {}}` behind."""
    new = copy.deepcopy(RICH_BGPPEER)
    new["spec"]["afiSafis"][1] = _ipv4(8) | {"mpGracefulRestart": {"config": {"enabled": True}}}
    old = conversion.convert(new, V1)
    assert "addPaths" not in _kept(old, V2_FIELDS)["afiSafis"][1]
    del old["spec"]["addPaths"]
    assert "addPaths" not in conversion.convert(old, V2)["spec"]["afiSafis"][1]


def test_a_hand_edited_annotation_cannot_override_mapped_fields() -> None:
    """What the v1alpha1 object says about a mapped field wins, even about its absence."""
    peer = {**OLD_BGPPEER, "metadata": {"name": "tor", "annotations": {V2_FIELDS: json.dumps({
        "conf": {"peerAs": 1, "authPassword": "pw"}, "transport": {"remotePort": 2},
        "afiSafis": [_ipv4(9, receive=True)]})}},
        "spec": {"config": {"neighborAddress": "192.0.2.254"}, "transport": {}}}
    new = conversion.convert(peer, V2)
    assert new["spec"]["conf"] == {"neighborAddress": "192.0.2.254", "authPassword": "pw"}
    assert new["spec"]["transport"] == {}
    assert new["spec"]["afiSafis"][0]["addPaths"] == {"config": {"receive": True}}

    conf = {**OLD_BGPCONF, "metadata": {"name": "default", "annotations": {
        V2_FIELDS: '{"listenPort":179,"policy":"p","routerId":"192.0.2.9"}'}},
        "spec": {"as": 64512}}
    assert conversion.convert(conf, V2)["spec"] == {"as": 64512, "policy": "p"}


def test_a_v1alpha1_port_that_is_no_port_is_kept_aside() -> None:
    """v1alpha1 `port: 0` is not a port; it is preserved rather than mapped to listenPort."""
    zero = {**OLD_BGPCONF, "spec": {"as": 64512, "port": 0}}
    new = conversion.convert(zero, V2)
    assert new["spec"] == {"as": 64512}
    assert _kept(new, V1_FIELDS) == {"port": 0}
    assert _same(conversion.convert(new, V1), zero)


# ---- Eip, identities and errors -------------------------------------------------------------


def test_eip_changes_only_its_api_version() -> None:
    pool = {"apiVersion": V1, "kind": "Eip", "metadata": {"name": "lan"},
            "spec": {"address": "192.0.2.0/24", "protocol": "layer2", "interface": "eth0"},
            "status": {"usage": 1, "ready": True}}
    assert _same(conversion.convert(pool, V2), {**pool, "apiVersion": V2})


def test_same_version_is_an_unchanged_copy_and_the_input_is_never_touched() -> None:
    before = copy.deepcopy(RICH_BGPPEER)
    same = conversion.convert(RICH_BGPPEER, V2)
    assert _same(same, RICH_BGPPEER)
    assert same is not RICH_BGPPEER
    same["spec"]["conf"]["peerAs"] = 1
    conversion.convert(RICH_BGPPEER, V1)
    assert _same(RICH_BGPPEER, before)


@pytest.mark.parametrize(
    ("obj", "version", "message"),
    [
        ({**OLD_BGPCONF, "kind": "Service"}, V2,
         'kind: cannot convert "Service"; openelb converts BgpConf, BgpPeer, Eip'),
        ({**OLD_BGPCONF, "apiVersion": "network.kubesphere.io/v1"}, V2,
         'apiVersion: cannot convert from "network.kubesphere.io/v1"; openelb serves '
         f"{V1} and {V2}"),
        (OLD_BGPCONF, "network.kubesphere.io/v1beta1",
         'apiVersion: cannot convert to "network.kubesphere.io/v1beta1"; openelb serves '
         f"{V1} and {V2}"),
        ({**OLD_BGPCONF, "spec": ["as"]}, V2, "spec: must be an object"),
        ({**OLD_BGPCONF, "metadata": {"annotations": "x"}}, V2,
         "metadata.annotations: must be an object"),
    ],
    ids=["unknown-kind", "unknown-source", "unknown-target", "spec-list", "annotations-text"],
)
def test_unconvertible_objects_name_the_field(obj: Any, version: str, message: str) -> None:
    with pytest.raises(errors.InvalidObject) as refused:
        conversion.convert(obj, version)
    assert refused.value.message == message


# ---- ConversionReview ---------------------------------------------------------------------


def test_review_converts_every_object_and_echoes_the_uid() -> None:
    answer = conversion.review({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "705ab4f5", "desiredAPIVersion": V2,
                    "objects": [OLD_BGPCONF, OLD_BGPPEER]},
    })
    assert answer["apiVersion"] == "apiextensions.k8s.io/v1"
    assert answer["kind"] == "ConversionReview"
    response = answer["response"]
    assert response["uid"] == "705ab4f5"
    assert response["result"] == {"status": "Success"}
    assert _same(response["convertedObjects"],
                 [conversion.convert(OLD_BGPCONF, V2), conversion.convert(OLD_BGPPEER, V2)])


def test_review_fails_as_a_whole_naming_the_object_and_field() -> None:
    broken = {**OLD_BGPPEER, "spec": "config"}
    answer = conversion.review({"request": {"uid": "u1", "desiredAPIVersion": V2,
                                            "objects": [OLD_BGPCONF, broken]}})
    assert answer["response"] == {"uid": "u1", "result": {
        "status": "Failure", "message": "BgpPeer/tor spec: must be an object"}}


@pytest.mark.parametrize(
    ("body", "uid", "message"),
    [
        (None, "", "ConversionReview request: must be an object"),
        ({"kind": "ConversionReview"}, "", "ConversionReview request: must be an object"),
        ({"request": {"desiredAPIVersion": V2, "objects": []}}, "",
         "ConversionReview request.uid: required"),
        ({"request": {"uid": "u", "objects": []}}, "u",
         "ConversionReview request.desiredAPIVersion: required"),
        ({"request": {"uid": "u", "desiredAPIVersion": V2, "objects": {}}}, "u",
         "ConversionReview request.objects: must be a list"),
        ({"request": {"uid": "u", "desiredAPIVersion": V2, "objects": [7]}}, "u",
         "request.objects[0] (object): must be an object"),
    ],
    ids=["no-body", "no-request", "no-uid", "no-version", "objects-not-list", "object-not-dict"],
)
def test_a_malformed_review_gets_a_failure_answer(body: Any, uid: str, message: str) -> None:
    answer = conversion.review(body)
    assert answer["kind"] == "ConversionReview"
    assert answer["response"] == {"uid": uid, "result": {"status": "Failure", "message": message}}


# ---- round trips (hypothesis) -------------------------------------------------------------

ASN = st.integers(1, 4_294_967_295)
IPV4 = st.ip_addresses(v=4).map(str)
IP = st.ip_addresses().map(str)
WORD = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
SECONDS = st.one_of(st.integers(0, 600), st.integers(0, 600).map(str))
BOOL = st.booleans()


def _object(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict holding any subset of `fields`."""
    return st.fixed_dictionaries({}, optional=fields)


METADATA = st.fixed_dictionaries(
    {"name": WORD},
    optional={
        "labels": st.dictionaries(WORD, WORD, min_size=1, max_size=2),
        # Kubernetes omits an empty annotations map, so a valid object has none.
        "annotations": st.dictionaries(WORD, WORD, min_size=1, max_size=2),
        "resourceVersion": st.integers(1, 999).map(str),
        "generation": st.integers(1, 9),
        "finalizers": st.lists(WORD, max_size=1),
    },
)
GRACEFUL = _object(enabled=BOOL, restartTime=st.integers(0, 4095), helperOnly=BOOL,
                   mode=WORD)
CONDITIONS = st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["Ready", "Valid"]), "status": st.sampled_from(["True", "False"]),
    "reason": WORD, "message": st.text(max_size=8),
    "lastTransitionTime": st.just("2024-01-01T00:00:00Z")}), max_size=2)

V2_BGPCONF_SPEC = _object(
    **{"as": ASN}, routerId=IPV4, listenPort=st.integers(-1, 65535),
    asPerRack=st.dictionaries(WORD, ASN, max_size=2), listenAddresses=st.lists(IP, max_size=2),
    families=st.lists(st.integers(0, 3), max_size=2), useMultiplePaths=BOOL,
    gracefulRestart=GRACEFUL, policy=WORD,
)
FAMILY = _object(afi=st.sampled_from(["AFI_IP", "AFI_IP6"]), safi=st.just("SAFI_UNICAST"))
AFI_SAFI = st.one_of(
    _object(
        config=_object(family=FAMILY, enabled=BOOL),
        addPaths=_object(config=_object(receive=BOOL, sendMax=st.integers(0, 255))),
        mpGracefulRestart=_object(config=_object(enabled=BOOL)),
    ),
    st.integers(0, 255).map(_ipv4),  # what a bare v1alpha1 sendMax stands for
)
V2_BGPPEER_SPEC = st.fixed_dictionaries(
    {"conf": st.fixed_dictionaries(
        {"peerAs": ASN, "neighborAddress": IP},
        optional={"authPassword": st.text(max_size=8), "localAs": ASN, "description": WORD,
                  "adminDown": BOOL})},
    optional={
        "afiSafis": st.lists(AFI_SAFI, max_size=3),
        "timers": _object(config=_object(holdTime=SECONDS, keepaliveInterval=SECONDS,
                                         connectRetry=SECONDS)),
        "transport": _object(passiveMode=BOOL, remotePort=st.integers(1, 65535),
                             mtuDiscovery=BOOL, remoteAddress=IP, tcpMss=st.integers(0, 9000)),
        "ebgpMultihop": _object(enabled=BOOL, multihopTtl=st.integers(1, 255)),
        "gracefulRestart": GRACEFUL,
        "nodeSelector": _object(matchLabels=st.dictionaries(WORD, WORD, max_size=2)),
    },
)
V2_STATUS = {
    "BgpConf": _object(nodesConfStatus=st.dictionaries(WORD, _object(routerId=IPV4, **{"as": ASN}),
                                                       max_size=2), conditions=CONDITIONS),
    "BgpPeer": _object(nodesPeerStatus=st.dictionaries(
        WORD, _object(peerState=_object(sessionState=st.sampled_from(["ESTABLISHED", "IDLE"]))),
        max_size=2), conditions=CONDITIONS),
}
V1_SPECS = {
    "BgpConf": _object(**{"as": ASN}, routerID=IPV4, port=st.integers(1, 65535)),
    "BgpPeer": _object(
        config=_object(peerAs=ASN, neighborAddress=IPV4),
        addPaths=_object(sendMax=st.integers(0, 255)),
        transport=_object(passiveMode=BOOL, remotePort=st.integers(0, 65535)),
        usingPortForward=BOOL,
    ),
}
V2_SPECS = {"BgpConf": V2_BGPCONF_SPEC, "BgpPeer": V2_BGPPEER_SPEC}
KIND = st.sampled_from(["BgpConf", "BgpPeer"])


@st.composite
def _objects(draw: st.DrawFn, version: str) -> dict[str, Any]:
    kind = draw(KIND)
    specs = V1_SPECS if version == V1 else V2_SPECS
    obj = {"apiVersion": version, "kind": kind, "metadata": draw(METADATA),
           "spec": draw(specs[kind])}
    if draw(BOOL):
        # OpenELB's v1alpha1 status was empty; ours is whatever the stored object holds.
        obj["status"] = draw(V2_STATUS[kind])
    return obj


@st.composite
def _v2_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A v1alpha2 object; sometimes one first written through v1alpha1, so it carries
    v1alpha1-fields."""
    if draw(BOOL):
        return draw(_objects(V2))
    return conversion.convert(draw(_objects(V1)), V2)


@st.composite
def _v1_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A v1alpha1 object; sometimes a v1alpha2 one read through v1alpha1, so it carries
    v1alpha2-fields."""
    if draw(BOOL):
        return draw(_objects(V1))
    return conversion.convert(draw(_v2_objects()), V1)


V1_SPEC_KEYS = {"BgpConf": {"as", "routerID", "port"},
                "BgpPeer": {"config", "addPaths", "transport", "usingPortForward"}}


@ROUND_TRIPS
@given(_v2_objects())
def test_v1alpha2_survives_a_trip_through_v1alpha1(obj: dict[str, Any]) -> None:
    old = conversion.convert(obj, V1)
    assert set(old["spec"]) <= V1_SPEC_KEYS[obj["kind"]]  # nothing the v1alpha1 schema prunes
    assert _same(conversion.convert(old, V2), obj)


@ROUND_TRIPS
@given(_v1_objects())
def test_v1alpha1_survives_a_trip_through_v1alpha2(obj: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    new = conversion.convert(obj, V2)
    assert _same(obj, before)
    assert _same(conversion.convert(new, V1), obj)


@ROUND_TRIPS
@given(_objects(V1))
def test_a_valid_v1alpha1_object_becomes_a_valid_v1alpha2_object(obj: dict[str, Any]) -> None:
    complete = copy.deepcopy(obj)
    if obj["kind"] == "BgpPeer":
        complete["spec"]["config"] = {"peerAs": 1, "neighborAddress": "192.0.2.1"}
    else:
        complete["spec"]["as"] = 64512
    parse = bgp.BgpPeer.parse if obj["kind"] == "BgpPeer" else bgp.BgpConf.parse
    parse(conversion.convert(complete, V2))


JSON = st.recursive(
    st.one_of(st.none(), BOOL, st.integers(-2, 70_000), st.text(max_size=4),
              st.sampled_from(["AFI_IP", "SAFI_UNICAST", V1, V2, "BgpPeer"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(
            ["spec", "conf", "config", "afiSafis", "addPaths", "family", "afi", "safi",
             "enabled", "sendMax", "transport", "metadata", "annotations", "port",
             "listenPort", V1_FIELDS, V2_FIELDS, "x"]), inner, max_size=4)),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(KIND, st.sampled_from([V1, V2]), st.dictionaries(st.sampled_from(
    ["conf", "config", "afiSafis", "addPaths", "transport", "as", "port", "listenPort",
     "routerId", "routerID", "x"]), JSON, max_size=4))
@example("BgpPeer", V2, {"afiSafis": [_ipv4(5) | {"config": {
    "family": {"afi": "AFI_IP", "safi": "SAFI_UNICAST"}, "enabled": 1}}]})
def test_any_spec_without_annotations_survives_a_round_trip(
    kind: str, version: str, spec: dict[str, Any]
) -> None:
    """Even shapes no schema allows (`enabled: 1` where true is expected) come back exactly."""
    obj = {"apiVersion": version, "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    other = V1 if version == V2 else V2
    assert _same(conversion.convert(conversion.convert(obj, other), version), obj)


@settings(max_examples=300, deadline=None)
@given(KIND, st.sampled_from([V1, V2]), JSON, JSON, st.sampled_from([V1, V2]))
def test_any_shape_converts_or_is_refused_as_invalid_object(
    kind: str, version: str, spec: Any, notes: Any, target: str
) -> None:
    obj = {"apiVersion": version, "kind": kind, "metadata": {"name": "x", "annotations": notes},
           "spec": spec}
    with contextlib.suppress(errors.InvalidObject):
        conversion.convert(obj, target)
    answer = conversion.review({"request": {"uid": "u", "desiredAPIVersion": target,
                                            "objects": [obj]}})
    assert answer["response"]["result"]["status"] in ("Success", "Failure")
