"""Which addresses of a declared range are handed out, and pool arithmetic at any size."""

from __future__ import annotations

import ipaddress

import pytest

from openelb.api import addresses
from openelb.ipam import occupancy, ranges


@pytest.mark.parametrize(
    ("address", "first", "last", "size"),
    [
        ("192.0.2.0/24", "192.0.2.1", "192.0.2.254", 254),
        ("192.0.2.0/30", "192.0.2.1", "192.0.2.2", 2),
        ("192.0.2.0/31", "192.0.2.0", "192.0.2.1", 2),
        ("192.0.2.7/32", "192.0.2.7", "192.0.2.7", 1),
        ("192.0.2.7", "192.0.2.7", "192.0.2.7", 1),
        ("192.0.2.0-192.0.2.255", "192.0.2.0", "192.0.2.255", 256),
        ("10.0.0.0/8", "10.0.0.1", "10.255.255.254", 2**24 - 2),
        ("2001:db8::/64", "2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff", 2**64 - 1),
        ("2001:db8::/127", "2001:db8::", "2001:db8::1", 2),
    ],
    ids=["v4 /24", "v4 /30", "v4 /31", "v4 /32", "single", "range", "v4 /8", "v6 /64",
         "v6 /127"],
)
def test_usable_span_skips_only_reserved_cidr_addresses(
    address: str, first: str, last: str, size: int
) -> None:
    span = ranges.usable_span(addresses.parse_address(address))
    assert ranges.to_ip(span.version, span.first) == ipaddress.ip_address(first)
    assert ranges.to_ip(span.version, span.last) == ipaddress.ip_address(last)
    assert span.size == size


def test_cidr_with_host_bits_means_its_network_as_in_openelb() -> None:
    declared = addresses.parse_address("192.0.2.77/24")
    assert (str(declared.first), str(declared.last)) == ("192.0.2.0", "192.0.2.255")


def test_occupancy_finds_the_lowest_gap_and_merges_runs() -> None:
    used = occupancy.Occupancy()
    for value in (1, 2, 3, 5):
        used.add(value)
    assert used.lowest_free(1, 10) == 4
    used.add(4)
    assert used.run_count == 1
    assert used.lowest_free(1, 10) == 6
    used.discard(3)
    assert used.run_count == 2
    assert used.lowest_free(1, 10) == 3
    assert used.lowest_free(4, 5) is None
    assert len(used) == 4
