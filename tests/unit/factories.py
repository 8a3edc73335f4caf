"""Small builders for unit tests of the pure layers: Services and pools as plain values."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from openelb.api import addresses, service
from openelb.ipam import pools


def pool(
    name: str,
    address: str,
    *,
    disabled: bool = False,
    priority: int = 0,
    namespaces: Iterable[str] = (),
    selector: dict[str, str] | None = None,
    default: bool = False,
    created: str = "2026-01-01T00:00:00Z",
) -> pools.Pool:
    return pools.Pool(
        name=name,
        declared=addresses.parse_address(address),
        disabled=disabled,
        priority=priority,
        namespaces=frozenset(namespaces),
        namespace_selector=tuple(sorted((selector or {}).items())),
        is_default=default,
        created=created,
    )


def svc(
    name: str,
    namespace: str = "default",
    *,
    pool: str | tuple[str, ...] = (),
    ip: str | tuple[str, ...] = (),
    families: tuple[int, ...] | None = None,
    policy: service.FamilyPolicy = service.FamilyPolicy.SINGLE,
    ports: Iterable[int | tuple[int, str]] = (80,),
    key: str = "",
    local: bool = False,
    selector: dict[str, str] | None = None,
    created: str = "2026-01-01T00:00:00Z",
    assigned: Iterable[str] = (),
) -> service.LbService:
    requested = tuple(ipaddress.ip_address(i) for i in ((ip,) if isinstance(ip, str) else ip))
    return service.LbService(
        namespace=namespace,
        name=name,
        created=created,
        pool_names=(pool,) if isinstance(pool, str) else pool,
        requested_ips=requested,
        families=families or (tuple(i.version for i in requested) or (4,)),
        family_policy=policy,
        ports=frozenset(
            service.Port(p) if isinstance(p, int) else service.Port(*p) for p in ports
        ),
        traffic_policy=service.TrafficPolicy.LOCAL if local else service.TrafficPolicy.CLUSTER,
        selector=tuple(sorted((selector or {"app": name}).items())),
        sharing_key=key,
        assigned_ips=tuple(ipaddress.ip_address(a) for a in assigned),
    )


def ips(*texts: str) -> tuple[addresses.IPAddress, ...]:
    return tuple(ipaddress.ip_address(t) for t in texts)
