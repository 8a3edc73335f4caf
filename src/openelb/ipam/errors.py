"""The ipam layer's error tree: why a Service did not get (or keep) an address.

Pure (DESIGN §3). Each error carries its data as attributes, builds its text from them,
and has a constant lowerCamel `reason` used unchanged as log field and metric label.

    AllocationError(OpenELBError)
     ├── NoFreeAddress(pool, version)        the pool has no free address of that family
     ├── NoPool(namespace, version)          no pool may serve this Service and family
     ├── UnknownPool(name)                   the named Eip does not exist
     ├── PoolDisabled(pool)                  the pool takes no new assignments
     ├── PoolNotAllowed(pool, namespace)     the pool is bound to other namespaces
     ├── PoolUnusable(pool, why)             the pool is invalid (bad spec, overlap, 2nd default)
     ├── FamilyNotServed(pools, version)     the named pools have no IPv4/IPv6 range
     ├── NotInAnyPool(ip)                    a requested/held IP lies outside every pool
     ├── NotInNamedPool(ip, pools)           requested IP and requested pool disagree
     ├── ReservedAddress(ip, pool, what)     network/broadcast/anycast address requested
     ├── AddressTaken(ip, holder)            held by a Service that may not share it
     └── SharingRefused(ip, holder, why)     sharing rules forbid it (key, ports, policy)
"""

from __future__ import annotations

from typing import ClassVar

from openelb.api import addresses, errors

__all__ = [
    "AddressTaken",
    "AllocationError",
    "FamilyNotServed",
    "NoFreeAddress",
    "NoPool",
    "NotInAnyPool",
    "NotInNamedPool",
    "PoolDisabled",
    "PoolNotAllowed",
    "PoolUnusable",
    "ReservedAddress",
    "SharingRefused",
    "UnknownPool",
]

IP = addresses.IPAddress


class AllocationError(errors.OpenELBError):
    """Root of ipam's refusals. Not retryable by itself: it waits for the cluster to change."""

    reason: ClassVar[str] = "allocationFailed"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class NoFreeAddress(AllocationError):
    reason = "noFreeAddress"

    def __init__(self, pool: str, version: int) -> None:
        self.pool, self.version = pool, version
        super().__init__(f"eip/{pool} has no free IPv{version} address")


class NoPool(AllocationError):
    reason = "noPool"

    def __init__(self, namespace: str, version: int) -> None:
        self.namespace, self.version = namespace, version
        super().__init__(
            f"no IPv{version} Eip serves namespace {namespace}: name one with annotation "
            "eip.openelb.kubesphere.io/v1alpha2, bind one to the namespace, or mark a default"
        )


class UnknownPool(AllocationError):
    reason = "unknownPool"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"eip/{name} does not exist")


class PoolDisabled(AllocationError):
    reason = "poolDisabled"

    def __init__(self, pool: str) -> None:
        self.pool = pool
        super().__init__(f"eip/{pool} is disabled and takes no new assignments")


class PoolNotAllowed(AllocationError):
    reason = "poolNotAllowed"

    def __init__(self, pool: str, namespace: str) -> None:
        self.pool, self.namespace = pool, namespace
        super().__init__(f"eip/{pool} is bound to other namespaces, not {namespace}")


class PoolUnusable(AllocationError):
    reason = "poolUnusable"

    def __init__(self, pool: str, why: str) -> None:
        self.pool, self.why = pool, why
        super().__init__(f"eip/{pool} is invalid: {why}")


class FamilyNotServed(AllocationError):
    reason = "familyNotServed"

    def __init__(self, pools: tuple[str, ...], version: int) -> None:
        self.pools, self.version = pools, version
        names = ", ".join(f"eip/{p}" for p in pools)
        super().__init__(f"{names} has no IPv{version} addresses")


class NotInAnyPool(AllocationError):
    reason = "notInAnyPool"

    def __init__(self, ip: IP) -> None:
        self.ip = ip
        super().__init__(f"{ip} is not inside any Eip")


class NotInNamedPool(AllocationError):
    reason = "notInNamedPool"

    def __init__(self, ip: IP, pools: tuple[str, ...]) -> None:
        self.ip, self.pools = ip, pools
        names = ", ".join(f"eip/{p}" for p in pools)
        super().__init__(f"{ip} is not inside the requested {names}")


class ReservedAddress(AllocationError):
    reason = "reservedAddress"

    def __init__(self, ip: IP, pool: str, what: str) -> None:
        self.ip, self.pool, self.what = ip, pool, what
        super().__init__(f"{ip} is the {what} of eip/{pool} and is not handed out")


class AddressTaken(AllocationError):
    reason = "addressTaken"

    def __init__(self, ip: IP, holder: str) -> None:
        self.ip, self.holder = ip, holder
        super().__init__(
            f"{ip} is already used by {holder}; to share it, give both Services the same "
            "allow-shared-ip key or request the IP explicitly on both"
        )


class SharingRefused(AllocationError):
    reason = "sharingRefused"

    def __init__(self, ip: IP, holder: str, why: str) -> None:
        self.ip, self.holder, self.why = ip, holder, why
        super().__init__(f"{ip} cannot be shared with {holder}: {why}")
