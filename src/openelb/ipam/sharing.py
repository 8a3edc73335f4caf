"""When may two Services hold the same IP? MetalLB's rules, plus OpenELB's explicit request.

Pure (DESIGN §3, §4); called by ipam/allocator.py for every address that already has
holders. Returns a refusal (holder and reason) or None; never raises, never logs.

Sharing is allowed when every holder and the newcomer
  * carry the same non-empty sharing key, or all asked for this exact IP (OpenELB), and
  * use no port/protocol pair twice, and
  * are all externalTrafficPolicy Cluster, or all Local and selecting the very same
    pods (a Local Service is announced only where its own endpoints are, which must
    then be the endpoints of every sharer too; a Cluster sharer would send traffic to
    nodes the Local one does not announce, so the two never mix, as in MetalLB).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from openelb.api import addresses, service

__all__ = ["Refusal", "check"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why `holder` keeps the newcomer off the address; `taken` when no right to share."""

    holder: str
    why: str
    taken: bool = False


def check(
    newcomer: service.LbService, ip: addresses.IPAddress, holders: Iterable[service.LbService]
) -> Refusal | None:
    """None when `newcomer` may join `holders` on `ip`, else the first refusal."""
    all_holders = sorted((h for h in holders if h.key != newcomer.key), key=lambda h: h.key)
    if not all_holders:
        return None
    for holder in all_holders:
        refusal = _pair(newcomer, ip, holder)
        if refusal is not None:
            return refusal
    group = [newcomer, *all_holders]
    if any(s.traffic_policy is service.TrafficPolicy.LOCAL for s in group):
        mixed = next((h for h in all_holders
                      if h.traffic_policy is not newcomer.traffic_policy), None)
        if mixed is not None:
            return Refusal(
                mixed.key,
                f"externalTrafficPolicy {newcomer.traffic_policy.value} cannot share an IP "
                f"with {mixed.traffic_policy.value}",
            )
        odd = next((h for h in all_holders if h.selector != newcomer.selector), None)
        if odd is not None:
            return Refusal(
                odd.key,
                "with externalTrafficPolicy Local, Services sharing an IP must select "
                "the same pods",
            )
    return None


def _pair(
    newcomer: service.LbService, ip: addresses.IPAddress, holder: service.LbService
) -> Refusal | None:
    keyed = bool(newcomer.sharing_key) and newcomer.sharing_key == holder.sharing_key
    explicit = newcomer.requested_for(ip.version) == ip and holder.requested_for(ip.version) == ip
    if not (keyed or explicit):
        if newcomer.sharing_key and holder.sharing_key:
            return Refusal(
                holder.key,
                f'sharing key "{newcomer.sharing_key}" differs from "{holder.sharing_key}"',
            )
        return Refusal(holder.key, "no common sharing key", taken=True)
    clash = sorted(newcomer.ports & holder.ports)
    if clash:
        shown = ", ".join(str(p) for p in clash)
        return Refusal(holder.key, f"port {shown} is used by both")
    return None
