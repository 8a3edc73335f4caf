"""Address arithmetic on integers: which addresses of a declared range are handed out.

Pure (DESIGN §3); used by ipam/pools.py. Works on `int(ip)` so a /8 or a /64 costs the
same as a /30: nothing here enumerates a range.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from openelb.api import addresses

__all__ = ["Span", "to_ip", "usable_span"]


@dataclass(frozen=True, slots=True)
class Span:
    """Inclusive integer interval [first, last] of one IP family; empty when first > last."""

    version: int
    first: int
    last: int

    @property
    def size(self) -> int:
        return max(0, self.last - self.first + 1)

    def contains(self, ip: addresses.IPAddress) -> bool:
        return ip.version == self.version and self.first <= int(ip) <= self.last

    def overlaps(self, other: Span) -> bool:
        return (
            self.version == other.version
            and self.first <= other.last
            and other.first <= self.last
        )


def to_ip(version: int, value: int) -> addresses.IPAddress:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def declared_span(declared: addresses.DeclaredRange) -> Span:
    return Span(declared.version, int(declared.first), int(declared.last))


def usable_span(declared: addresses.DeclaredRange) -> Span:
    """The addresses openelb hands out from a declared range.

    IPv4 CIDRs up to /30 skip the network and broadcast address (OpenELB #425 hands out
    `.0`); /31 and /32 have neither (RFC 3021). IPv6 CIDRs up to /126 skip the
    Subnet-Router anycast address, the all-zero host (RFC 4291 §2.6.1). Ranges and
    single addresses are used exactly as written.
    """
    span = declared_span(declared)
    if declared.kind is not addresses.AddressKind.CIDR or declared.prefixlen is None:
        return span
    if declared.version == 4 and declared.prefixlen <= 30:
        return Span(4, span.first + 1, span.last - 1)
    if declared.version == 6 and declared.prefixlen <= 126:
        return Span(6, span.first + 1, span.last)
    return span


def reserved_name(declared: addresses.DeclaredRange, ip: addresses.IPAddress) -> str:
    """Why an address of the declared range is not handed out ('' when it is usable)."""
    if usable_span(declared).contains(ip) or not declared_span(declared).contains(ip):
        return ""
    if ip == declared.first:
        return "network address" if declared.version == 4 else "subnet-router anycast address"
    return "broadcast address"
