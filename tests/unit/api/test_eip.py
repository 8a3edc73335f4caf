"""Eip parsing: OpenELB's manifests parse unchanged, bad fields are named, nothing is lost."""

from __future__ import annotations

from typing import Any

import pytest

from openelb.api import addresses, eip, errors


def _raw(spec: dict[str, Any], version: str = "v1alpha2", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"network.kubesphere.io/{version}",
        "kind": "Eip",
        "metadata": {"name": "pool", **meta},
        "spec": spec,
    }


def test_v1alpha2_eip_with_every_field() -> None:
    obj = eip.Eip.parse(
        _raw(
            {
                "address": "192.0.2.10-192.0.2.20",
                "protocol": "layer2",
                "interface": "can_reach:192.0.2.1",
                "disable": False,
                "usingKnownIPs": True,
                "priority": 3,
                "namespaces": ["shop", "blog"],
                "namespaceSelector": {"team": "blue"},
            },
            annotations={"eip.openelb.kubesphere.io/is-default-eip": "true"},
        )
    )
    assert obj.declared.kind is addresses.AddressKind.RANGE
    assert obj.spec.protocol == "layer2"
    assert obj.spec.priority == 3
    assert obj.spec.namespaces == ("shop", "blog")
    assert obj.spec.namespace_selector == {"team": "blue"}
    assert obj.is_default
    assert str(obj.can_reach) == "192.0.2.1"


def test_v1alpha1_eip_parses_with_bgp_default() -> None:
    obj = eip.Eip.parse(_raw({"address": "198.51.100.0/24", "usingKnownIPs": False}, "v1alpha1"))
    assert obj.spec.protocol == "bgp"
    assert obj.declared.prefixlen == 24


def test_empty_protocol_means_bgp_as_in_openelb() -> None:
    assert eip.Eip.parse(_raw({"address": "192.0.2.1", "protocol": ""})).spec.protocol == "bgp"


def test_unknown_fields_survive_a_round_trip() -> None:
    raw = _raw({"address": "192.0.2.0/24", "futureField": {"x": 1}}, labels={"a": "b"})
    raw["status"] = {"usage": 2, "poolSize": 254, "somethingNew": True}
    assert eip.Eip.parse(raw).to_raw() == raw


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"address": "192.0.2.1", "protocol": "ospf"},
         "spec.protocol: must be one of 'bgp', 'layer2' or 'vip', got \"ospf\""),
        ({}, "spec.address: required"),
        ({"address": 5}, "spec.address: must be a string, got 5"),
        ({"address": "192.0.2.1", "priority": "high"},
         'spec.priority: must be an integer, got "high"'),
        ({"address": "192.0.2.1", "protocol": "layer2"},
         "spec.interface: required when spec.protocol is layer2"),
        ({"address": "192.0.2.1", "protocol": "vip", "interface": "can_reach:nope"},
         'spec.interface: "nope" is not an IP address'),
        ({"address": "192.0.2.1", "protocol": "layer2", "interface": "lo"},
         'spec.interface: must not be "lo": no LAN client can reach it'),
        ({"address": "192.0.2.1", "namespaces": "shop"},
         'spec.namespaces: must be a list, got "shop"'),
    ],
    ids=["bad protocol", "missing address", "address not a string", "priority not int",
         "layer2 without interface", "bad can_reach", "loopback interface",
         "namespaces not a list"],
)
def test_bad_fields_are_named_with_the_reason(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.InvalidObject) as caught:
        eip.Eip.parse(_raw(spec))
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.0/8", "127.0.0.0/8 reaches into 127.0.0.0/8, loopback addresses (RFC 1122)"),
        ("126.255.255.250-127.0.0.1",
         "126.255.255.250-127.0.0.1 reaches into 127.0.0.0/8, loopback addresses (RFC 1122)"),
        ("0.0.0.0/0", "0.0.0.0/0 reaches into 0.0.0.0/8, this-network addresses (RFC 791)"),
        ("169.254.10.10", "169.254.10.10 reaches into 169.254.0.0/16, link-local addresses"
                          " (RFC 3927)"),
        ("239.1.1.0/24", "239.1.1.0/24 reaches into 224.0.0.0/4, multicast addresses (RFC 5771)"),
        ("255.255.255.255", "255.255.255.255 reaches into 240.0.0.0/4, reserved and broadcast"
                            " addresses (RFC 1112)"),
        ("::1", "::1 reaches into ::1/128, the loopback address (RFC 4291)"),
        ("::-::5", "::-::5 reaches into ::/128, the unspecified address (RFC 4291)"),
        ("::ffff:192.0.2.0/120", "::ffff:192.0.2.0/120 reaches into ::ffff:0:0/96, IPv4-mapped"
                                 " addresses (RFC 4291)"),
        ("fe80::/64", "fe80::/64 reaches into fe80::/10, link-local addresses (RFC 4291)"),
        ("ff02::1", "ff02::1 reaches into ff00::/8, multicast addresses (RFC 4291)"),
    ],
    ids=["loopback", "range ending in loopback", "everything", "link-local", "multicast",
         "broadcast", "v6 loopback", "v6 unspecified", "v4-mapped", "v6 link-local",
         "v6 multicast"],
)
def test_special_purpose_ranges_are_refused_with_the_reason(address: str, message: str) -> None:
    with pytest.raises(errors.InvalidObject) as caught:
        eip.Eip.parse(_raw({"address": address}))
    assert caught.value.message == f"spec.address: {message}: no client can reach a Service there"


@pytest.mark.parametrize("address", [
    "192.0.2.0/24", "10.0.0.0/8", "100.64.0.0/10", "126.0.0.0/8", "128.0.0.0/16",
    "223.255.255.0/24", "2001:db8::/32", "fd00::/8", "fe7f::1", "fec0::1",
])
def test_addresses_next_to_special_ranges_stay_usable(address: str) -> None:
    assert eip.Eip.parse(_raw({"address": address})).declared.first is not None


def test_orchestration_adds_the_object_to_the_message() -> None:
    with pytest.raises(errors.InvalidObject) as caught:
        eip.Eip.parse(_raw({"address": "192.0.2.9-192.0.2.1"}))
    assert str(caught.value.with_ref("eip/lan")) == (
        "eip/lan spec.address: range start 192.0.2.9 is after end 192.0.2.1"
    )


def test_pydantic_errors_never_escape() -> None:
    with pytest.raises(errors.InvalidObject):
        eip.Eip.parse({"spec": {"address": ["not", "a", "string"]}})
    with pytest.raises(errors.InvalidObject):
        eip.Eip.parse("not a dict")
