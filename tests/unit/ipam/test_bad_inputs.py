"""One test per bad input (issue 2): each is refused with a message naming what is wrong."""

from __future__ import annotations

import pytest

from openelb.api import eip, errors
from openelb.ipam import allocator, pools
from openelb.ipam import errors as ipam_errors
from tests.unit.factories import pool, svc


def _eip(address: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "network.kubesphere.io/v1alpha2",
        "kind": "Eip",
        "metadata": {"name": "p"},
        "spec": {"address": address, **spec},
    }


def test_invalid_address_names_the_field_and_value() -> None:
    with pytest.raises(errors.InvalidObject) as caught:
        eip.Eip.parse(_eip("192.0.2.300"))
    assert str(caught.value) == (
        'spec.address: "192.0.2.300" is not an IP address, a CIDR or a start-end range'
    )


def test_reversed_range_says_start_is_after_end() -> None:
    with pytest.raises(errors.InvalidObject) as caught:
        eip.Eip.parse(_eip("192.0.2.20-192.0.2.10"))
    assert str(caught.value) == "spec.address: range start 192.0.2.20 is after end 192.0.2.10"


def test_range_mixing_families_is_refused() -> None:
    with pytest.raises(errors.InvalidObject) as caught:
        eip.Eip.parse(_eip("192.0.2.1-2001:db8::1"))
    assert str(caught.value) == "spec.address: range mixes IPv4 192.0.2.1 and IPv6 2001:db8::1"


def test_overlapping_pools_flag_the_newer_one() -> None:
    older = pool("older", "192.0.2.0/24", created="2026-01-01T00:00:00Z")
    newer = pool("newer", "192.0.2.128-192.0.2.200", created="2026-02-01T00:00:00Z")
    problems = pools.find_problems([newer, older])
    assert set(problems) == {"newer"}
    assert problems["newer"].message == (
        "spec.address: 192.0.2.128-192.0.2.200 overlaps eip/older"
    )


def test_second_default_pool_is_refused() -> None:
    first = pool("first", "192.0.2.0/24", default=True, created="2026-01-01T00:00:00Z")
    second = pool("second", "198.51.100.0/24", default=True, created="2026-01-02T00:00:00Z")
    problems = pools.find_problems([first, second])
    assert set(problems) == {"second"}
    assert problems["second"].message == (
        "metadata.annotations[eip.openelb.kubesphere.io/is-default-eip]: "
        "eip/first is already the default Eip; only one may be"
    )


def test_requested_ip_outside_every_pool() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24", default=True)])
    with pytest.raises(ipam_errors.NotInAnyPool) as caught:
        alloc.assign(svc("web", ip="198.51.100.7"))
    assert str(caught.value) == "198.51.100.7 is not inside any Eip"


def test_requested_ip_already_taken() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24", default=True)])
    alloc.assign(svc("first"))  # gets 192.0.2.1 without asking for it
    with pytest.raises(ipam_errors.AddressTaken) as caught:
        alloc.assign(svc("second", ip="192.0.2.1", ports=[443]))
    assert caught.value.holder == "default/first"
    assert str(caught.value) == (
        "192.0.2.1 is already used by default/first; to share it, give both Services the "
        "same allow-shared-ip key or request the IP explicitly on both"
    )


def test_unknown_pool() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24")])
    with pytest.raises(ipam_errors.UnknownPool) as caught:
        alloc.assign(svc("web", pool="nope"))
    assert str(caught.value) == "eip/nope does not exist"


def test_a_named_pool_that_exists_but_is_invalid_says_why() -> None:
    alloc = allocator.Allocator()
    with pytest.raises(errors.InvalidObject) as parsed:
        eip.Eip.parse(_eip("127.0.0.0/8"))
    alloc.set_pools([pool("lan", "192.0.2.0/24")], {"loop": parsed.value.message})
    with pytest.raises(ipam_errors.PoolUnusable) as caught:
        alloc.assign(svc("web", pool="loop"))
    assert str(caught.value) == (
        "eip/loop is invalid: spec.address: 127.0.0.0/8 reaches into 127.0.0.0/8, loopback"
        " addresses (RFC 1122): no client can reach a Service there")


def test_disabled_pool_takes_no_new_assignment() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24", disabled=True)])
    with pytest.raises(ipam_errors.PoolDisabled) as caught:
        alloc.assign(svc("web", pool="lan"))
    assert str(caught.value) == "eip/lan is disabled and takes no new assignments"


def test_exhausted_pool() -> None:
    alloc = allocator.Allocator([pool("tiny", "192.0.2.0/31")])
    alloc.assign(svc("a", pool="tiny"))
    alloc.assign(svc("b", pool="tiny"))
    with pytest.raises(ipam_errors.NoFreeAddress) as caught:
        alloc.assign(svc("c", pool="tiny"))
    assert str(caught.value) == "eip/tiny has no free IPv4 address"


def test_sharing_key_mismatch() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24")])
    alloc.assign(svc("dns-udp", pool="lan", key="dns", ports=[(53, "UDP")]))
    with pytest.raises(ipam_errors.SharingRefused) as caught:
        alloc.assign(svc("web", pool="lan", key="web", ip="192.0.2.1", ports=[80]))
    assert str(caught.value) == (
        '192.0.2.1 cannot be shared with default/dns-udp: sharing key "web" differs from "dns"'
    )


def test_port_clash_between_sharers() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24")])
    alloc.assign(svc("a", pool="lan", key="k", ports=[80, 443]))
    with pytest.raises(ipam_errors.SharingRefused) as caught:
        alloc.assign(svc("b", pool="lan", key="k", ip="192.0.2.1", ports=[443]))
    assert str(caught.value) == (
        "192.0.2.1 cannot be shared with default/a: port 443/TCP is used by both"
    )


def test_family_the_pool_cannot_serve() -> None:
    alloc = allocator.Allocator([pool("v4", "192.0.2.0/24")])
    with pytest.raises(ipam_errors.FamilyNotServed) as caught:
        alloc.assign(svc("web", pool="v4", families=(6,)))
    assert str(caught.value) == "eip/v4 has no IPv6 addresses"


def test_pool_bound_to_another_namespace() -> None:
    alloc = allocator.Allocator([pool("shop", "192.0.2.0/24", namespaces=["shop"])])
    with pytest.raises(ipam_errors.PoolNotAllowed) as caught:
        alloc.assign(svc("web", "blog", pool="shop"))
    assert str(caught.value) == "eip/shop is bound to other namespaces, not blog"


def test_requested_network_address_is_reserved() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24", default=True)])
    with pytest.raises(ipam_errors.ReservedAddress) as caught:
        alloc.assign(svc("web", ip="192.0.2.255"))
    assert str(caught.value) == (
        "192.0.2.255 is the broadcast address of eip/lan and is not handed out"
    )


def test_no_pool_for_the_namespace_explains_the_ways_out() -> None:
    alloc = allocator.Allocator([pool("shop", "192.0.2.0/24", namespaces=["shop"])])
    with pytest.raises(ipam_errors.NoPool) as caught:
        alloc.assign(svc("web", "blog"))
    assert "no IPv4 Eip serves namespace blog" in str(caught.value)


def test_a_failed_request_keeps_the_previous_address() -> None:
    """Changing the requested IP to a taken one is refused and loses nothing."""
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24", default=True)])
    alloc.assign(svc("a"))
    before = alloc.assign(svc("b"))
    with pytest.raises(ipam_errors.AddressTaken):
        alloc.assign(svc("b", ip="192.0.2.1"))
    assert alloc.assignment("default/b") == before
    assert alloc.holders(before.ips[0]) == ("default/b",)
