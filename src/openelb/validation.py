"""The one validator: what is wrong with an Eip, BgpConf, BgpPeer or Service, in words.

Pure (DESIGN §3, level of planner/manifests). The admission webhook (controller/
webhook.py), `openelb validate` (manifests.py) and the controller's own checks all ask
this module, so the same mistake reads the same wherever it is caught. Each function
takes the object and the other objects it is judged against, and returns a `Verdict`:
an error (the object is refused) and/or warnings (the object is accepted, but the user
will want to know).

Rules about one object alone are the models' (api/); this module adds those that need
other objects: overlapping pools, a second default pool, an immutable address, a
duplicate BGP neighbour, and for Services, which pool and address they can get.
Services are only ever warned about: a Service may rightly wait for a pool that does
not exist yet.
"""



import dataclasses
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openelb.api import addresses, bgp, eip, errors, service
from openelb.api import annotations as api_annotations
from openelb.ipam import errors as ipam_errors
from openelb.ipam import pools, ranges, sharing

__all__ = [
    "Verdict",
    "check_bgpconf",
    "check_bgppeer",
    "check_bgppeer_parsed",
    "check_eip",
    "check_service",
    "eip_verdict_among",
    "refused_peers",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """`error` refuses the object; `warnings` accompany an accepted one."""

    error: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.error


def _invalid(exc: errors.InvalidObject) -> Verdict:
    return Verdict(error=exc.message)


# ---- Eip ------------------------------------------------------------------------------


def check_eip(raw: Any, old: Any, others: Iterable[pools.Pool]) -> Verdict:
    """An Eip being created (`old` None) or updated, judged against the other pools.

    The object under review counts as the newest pool: the one that would break a rule
    is refused, never the pool already in use. On update a problem the object already
    had (an overlap that predates this check) does not block other edits, so a broken
    pool can still be disabled or relabelled.
    """
    try:
        new = eip.Eip.parse(raw)
    except errors.InvalidObject as exc:
        return _invalid(exc)
    if old is not None:
        old_address = ((old.get("spec") or {}) if isinstance(old, dict) else {}).get("address")
        if old_address is not None and old_address != new.spec.address:
            return Verdict(error=errors.InvalidObject(
                "spec.address", f"is immutable (was {old_address}); create a new Eip "
                "instead").message)
    problem = eip_verdict_among(new, others)
    if problem and old is not None:
        try:
            before = eip_verdict_among(eip.Eip.parse(old), others)
        except errors.InvalidObject:
            before = ""
        if before == problem:
            return Verdict(warnings=(problem,))
    return Verdict(error=problem)


def eip_verdict_among(obj: eip.Eip, others: Iterable[pools.Pool]) -> str:
    """The pool problem `obj` would have as the newest of `others` ("" if none)."""
    # "~" sorts after every RFC 3339 time: the object under review is the newest.
    newest = dataclasses.replace(pools.Pool.from_eip(obj), created="~")
    rest = [p for p in others if p.name != newest.name]
    problem = pools.find_problems([*rest, newest]).get(newest.name)
    return problem.message if problem else ""


# ---- BgpConf and BgpPeer -------------------------------------------------------------


def check_bgpconf(raw: Any) -> Verdict:
    """A BgpConf on its own; one that no speaker reads is accepted with a warning."""
    try:
        conf = bgp.BgpConf.parse(raw)
    except errors.InvalidObject as exc:
        return _invalid(exc)
    if api_annotations.CNI_LABEL in conf.metadata.labels:
        return Verdict(warnings=(f"labelled {api_annotations.CNI_LABEL}: openelb ignores it",))
    if conf.metadata.name != api_annotations.DEFAULT_BGPCONF_NAME:
        return Verdict(warnings=(
            f'metadata.name: only the BgpConf named "{api_annotations.DEFAULT_BGPCONF_NAME}" '
            "is used; this one is ignored",))
    return Verdict()


def check_bgppeer(raw: Any, others: Iterable[bgp.BgpPeer]) -> Verdict:
    """A BgpPeer, and whether another one already peers with the same neighbour
    from the same nodes (two sessions to one router from one node cannot both be up)."""
    try:
        peer = bgp.BgpPeer.parse(raw)
    except errors.InvalidObject as exc:
        return _invalid(exc)
    return check_bgppeer_parsed(peer, others)


def check_bgppeer_parsed(peer: bgp.BgpPeer, others: Iterable[bgp.BgpPeer]) -> Verdict:
    """`check_bgppeer` for a peer already parsed."""
    if peer.ignored:
        return Verdict()
    twin = duplicate_peer(peer, others)
    if twin is not None:
        return Verdict(error=errors.InvalidObject(
            "spec.conf.neighborAddress",
            f"bgppeer/{twin} already peers with {peer.spec.conf.neighbor_address} from the "
            "same nodes; give the two different spec.nodeSelector or merge them").message)
    return Verdict()


def refused_peers(peers: Iterable[bgp.BgpPeer]) -> dict[str, str]:
    """BgpPeers not used because an older one already peers with the same neighbour
    from the same nodes: name -> the error. Oldest first, names breaking ties, so the
    speakers (which skip these) and the controller (which says so) agree."""
    ordered = sorted((p for p in peers if not p.ignored),
                     key=lambda p: (p.metadata.creation_timestamp or "~", p.metadata.name))
    refused: dict[str, str] = {}
    for index, peer in enumerate(ordered):
        verdict = check_bgppeer_parsed(
            peer, [p for p in ordered[:index] if p.metadata.name not in refused])
        if verdict.error:
            refused[peer.metadata.name] = verdict.error
    return refused


def duplicate_peer(peer: bgp.BgpPeer, others: Iterable[bgp.BgpPeer]) -> str | None:
    """The name of another BgpPeer to the same neighbour address whose node set may be
    the same: either has no nodeSelector, or both have the very same one. Selectors
    that differ are trusted to pick different nodes (a rack's ToR per rack)."""
    address = ipaddress.ip_address(peer.spec.conf.neighbor_address)
    mine = peer.spec.node_selector
    for other in sorted(others, key=lambda p: p.metadata.name):
        if other.metadata.name == peer.metadata.name or other.ignored:
            continue
        if ipaddress.ip_address(other.spec.conf.neighbor_address) != address:
            continue
        theirs = other.spec.node_selector
        if mine is None or theirs is None or mine == theirs:
            return other.metadata.name
    return None


# ---- Service -------------------------------------------------------------------------


def check_service(
    raw: Any,
    *,
    lb_class: str | None,
    pool_list: Sequence[pools.Pool],
    namespace_labels: Mapping[str, str],
    holders: Callable[[addresses.IPAddress], Iterable[service.LbService]],
) -> Verdict:
    """What the controller will say about this Service, said at admission as warnings.

    Same words as its AssignIPFailed Event (the ipam errors), for what can be known
    without assigning: the pool named, the address requested, which pools the
    namespace may use, and whether a requested address is held by a Service it may not
    share with. Never an error: the Service is created and waits.
    """
    try:
        svc = service.LbService.parse(raw, lb_class=lb_class)
    except errors.InvalidObject as exc:
        return Verdict(warnings=(exc.message,))
    if not svc.wants_address:
        return Verdict()
    broken = pools.find_problems(pool_list)
    valid = [p for p in pool_list if p.name not in broken]
    by_name = {p.name: p for p in pool_list}
    found: list[str] = []
    for name in svc.pool_names:
        if name not in by_name:
            found.append(ipam_errors.UnknownPool(name).message)
        elif not by_name[name].allows(svc.namespace, namespace_labels):
            found.append(ipam_errors.PoolNotAllowed(name, svc.namespace).message)
    index = pools.PoolIndex(valid)
    for ip in svc.requested_ips:
        found.extend(_requested_problems(svc, ip, index, namespace_labels, holders))
    return Verdict(warnings=tuple(dict.fromkeys(found)))


def _requested_problems(
    svc: service.LbService, ip: addresses.IPAddress, index: pools.PoolIndex,
    namespace_labels: Mapping[str, str],
    holders: Callable[[addresses.IPAddress], Iterable[service.LbService]],
) -> list[str]:
    pool = index.valid_holding(ip)
    if pool is None:
        return [ipam_errors.NotInAnyPool(ip).message]
    if svc.pool_names and pool.name not in svc.pool_names:
        return [ipam_errors.NotInNamedPool(ip, svc.pool_names).message]
    what = ranges.reserved_name(pool.declared, ip)
    if what:
        return [ipam_errors.ReservedAddress(ip, pool.name, what).message]
    if not pool.allows(svc.namespace, namespace_labels):
        return [ipam_errors.PoolNotAllowed(pool.name, svc.namespace).message]
    refusal = sharing.check(svc, ip, holders(ip))
    if refusal is None:
        return []
    if refusal.taken:
        return [ipam_errors.AddressTaken(ip, refusal.holder).message]
    return [ipam_errors.SharingRefused(ip, refusal.holder, refusal.why).message]

