"""Parses an Eip's `spec.address` (one IP, a CIDR, or `start-end`) into a plain range.

Pure (DESIGN §3); called by api/eip.py while parsing and by ipam/ranges.py for the
arithmetic. Raises InvalidObject naming `spec.address`; never logs.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from openelb.api import errors

__all__ = ["AddressKind", "DeclaredRange", "IPAddress", "parse_address", "parse_ip"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FIELD = "spec.address"

# Ranges that can never hold a Service address, with why (issue #19: an Eip 127.0.0.0/8
# was accepted and 127.0.0.1 handed out). RFC 6890's registry, kept to what no LAN
# client or router could ever reach; documentation and private ranges stay allowed.
_SPECIAL: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("0.0.0.0/8"), "this-network addresses (RFC 791)"),
    (ipaddress.ip_network("127.0.0.0/8"), "loopback addresses (RFC 1122)"),
    (ipaddress.ip_network("169.254.0.0/16"), "link-local addresses (RFC 3927)"),
    (ipaddress.ip_network("224.0.0.0/4"), "multicast addresses (RFC 5771)"),
    (ipaddress.ip_network("240.0.0.0/4"), "reserved and broadcast addresses (RFC 1112)"),
    (ipaddress.ip_network("::/128"), "the unspecified address (RFC 4291)"),
    (ipaddress.ip_network("::1/128"), "the loopback address (RFC 4291)"),
    (ipaddress.ip_network("::ffff:0:0/96"), "IPv4-mapped addresses (RFC 4291)"),
    (ipaddress.ip_network("fe80::/10"), "link-local addresses (RFC 4291)"),
    (ipaddress.ip_network("ff00::/8"), "multicast addresses (RFC 4291)"),
)


class AddressKind(enum.StrEnum):
    """How the user wrote the pool; CIDRs get network/broadcast skipping (OpenELB #425)."""

    SINGLE = "single"
    CIDR = "cidr"
    RANGE = "range"


@dataclass(frozen=True, slots=True)
class DeclaredRange:
    """The addresses exactly as declared, before any reserved address is skipped."""

    first: IPAddress
    last: IPAddress
    kind: AddressKind
    prefixlen: int | None  # set for CIDR only

    @property
    def version(self) -> int:
        return self.first.version


def parse_ip(text: str, field: str) -> IPAddress:
    """One literal IPv4/IPv6 address, or InvalidObject naming `field`."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise errors.InvalidObject(field, f'"{text}" is not an IP address', value=text) from None


def parse_address(text: str) -> DeclaredRange:
    """`192.0.2.10`, `192.0.2.0/24`, `192.0.2.10-192.0.2.20` (v4 or v6) -> DeclaredRange;
    a range reaching into a special-purpose block (loopback, multicast, ...) is refused."""
    declared = _parse_address(text)
    for network, what in _SPECIAL:
        if (network.version == declared.version  # then integers compare within a family
                and int(declared.first) <= int(network.broadcast_address)
                and int(network.network_address) <= int(declared.last)):
            raise errors.InvalidObject(
                FIELD, f"{text.strip()} reaches into {network}, {what}:"
                " no client can reach a Service there", value=text)
    return declared


def _parse_address(text: str) -> DeclaredRange:
    raw = text.strip()
    if not raw:
        raise errors.InvalidObject(FIELD, "must not be empty", value=text)
    if "/" in raw:
        return _parse_cidr(raw, text)
    if "-" in raw:
        return _parse_span(raw, text)
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        raise errors.InvalidObject(
            FIELD, f'"{text}" is not an IP address, a CIDR or a start-end range', value=text
        ) from None
    return DeclaredRange(ip, ip, AddressKind.SINGLE, None)


def _parse_cidr(raw: str, text: str) -> DeclaredRange:
    # OpenELB (Go's net.ParseCIDR) accepts host bits and uses the network; so do we, so
    # existing manifests such as `192.0.2.1/24` keep meaning 192.0.2.0/24.
    try:
        net = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise errors.InvalidObject(FIELD, f'"{text}" is not a valid CIDR', value=text) from None
    return DeclaredRange(
        net.network_address, net.broadcast_address, AddressKind.CIDR, net.prefixlen
    )


def _parse_span(raw: str, text: str) -> DeclaredRange:
    start_text, _, end_text = raw.partition("-")
    try:
        start = ipaddress.ip_address(start_text.strip())
        end = ipaddress.ip_address(end_text.strip())
    except ValueError:
        raise errors.InvalidObject(
            FIELD, f'"{text}" is not a valid start-end range', value=text
        ) from None
    if start.version != end.version:
        raise errors.InvalidObject(
            FIELD, f"range mixes IPv{start.version} {start} and IPv{end.version} {end}", value=text
        )
    if int(start) > int(end):  # same version checked above: integers order them
        raise errors.InvalidObject(FIELD, f"range start {start} is after end {end}", value=text)
    return DeclaredRange(start, end, AddressKind.RANGE, None)
