"""The allocator: which Service holds which address, and the rules for handing out more.

Pure (DESIGN §3, §4); one instance lives in the leading controller, which replays every
Service's status into it (`rebuild`) before assigning anything new. Plain maps and one
Occupancy per family; no client, no clock, no logging. Raises AllocationError subclasses.

Promises kept here:
  * a Service's valid address never moves (`assign` keeps it; only a changed request or a
    vanished pool moves it);
  * no two Services hold one address unless ipam/sharing.py allows it;
  * replaying statuses oldest-first reproduces the same state, and a later claimant of a
    held address gets a clear error instead of silently winning;
  * the lowest free address of a pool is found in O(log n); memory grows with the number
    of assigned addresses, not with pool size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from openelb.api import addresses, errors, service
from openelb.ipam import errors as ipam_errors
from openelb.ipam import occupancy, pools, ranges, sharing

__all__ = ["Allocator", "Assignment", "PoolStatus", "RebuildReport"]

IP = addresses.IPAddress
# Eip status.poolSize is an int64 in the CRD; a /64 pool is reported as this many.
INT64_MAX = 2**63 - 1
# Eip status.used is cut beyond this much JSON: about 11,000 entries of IPv6 addresses
# and typical names, a third of etcd's 1.5 MB object limit.
USED_BYTES_LIMIT = 512 * 1024


@dataclass(frozen=True, slots=True)
class Assignment:
    """The addresses a Service holds, in its family order, with each address's pool."""

    key: str
    ips: tuple[IP, ...]
    pools: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """What the controller writes into an Eip's status."""

    name: str
    pool_size: int
    usage: int
    used: dict[str, str]
    first_ip: str
    last_ip: str
    v4: bool
    occupied: bool
    ready: bool
    problem: errors.InvalidObject | None = None
    used_truncated: bool = False  # `used` lists only the lowest addresses (size limit)


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """Outcome of replaying existing statuses: what was kept, what was refused and why."""

    kept: dict[str, Assignment] = field(default_factory=dict)
    refused: dict[str, ipam_errors.AllocationError] = field(default_factory=dict)


class Allocator:
    """Assignments of addresses to Services, checked against the pools."""

    def __init__(self, pool_list: Iterable[pools.Pool] = ()) -> None:
        self._pools: dict[str, pools.Pool] = {}
        self._problems: dict[str, errors.InvalidObject] = {}
        self._invalid: dict[str, str] = {}  # Eips that do not parse -> why
        # "Which pool holds this IP" (rebuilt only when pools change).
        self._index = pools.PoolIndex(())
        # Namespace-bound pools per family in choice order (priority, then age).
        self._bound: dict[int, list[pools.Pool]] = {}
        self._default: pools.Pool | None = None
        self._used = {4: occupancy.Occupancy(), 6: occupancy.Occupancy()}
        self._holders: dict[IP, dict[str, service.LbService]] = {}
        self._ip_pool: dict[IP, str] = {}
        self._pool_ips: dict[str, set[IP]] = defaultdict(set)
        self._by_service: dict[str, tuple[IP, ...]] = {}
        self._keyed: dict[str, set[IP]] = defaultdict(set)  # sharing key -> addresses
        self.set_pools(pool_list)

    # ---- pools -------------------------------------------------------------------------

    def set_pools(self, pool_list: Iterable[pools.Pool],
                  invalid: Mapping[str, str] | None = None) -> None:
        """Replace the pool set. Existing assignments stay; only new choices change.
        `invalid` names the Eips that exist but do not parse, with why: a Service naming
        one is told that, not that the pool does not exist."""
        self._pools = {p.name: p for p in pool_list}
        self._invalid = dict(invalid or {})
        self._problems = pools.find_problems(self._pools.values())
        self._index = pools.PoolIndex(self._pools.values())
        usable = [p for p in self._pools.values() if self._index.is_valid(p.name)]
        self._bound = {
            version: sorted(
                (p for p in usable if p.bound and p.version == version),
                key=lambda p: (p.priority, p.age_key),
            )
            for version in (4, 6)
        }
        self._default = next(
            (p for p in usable if p.is_default and p.name not in self._problems), None
        )
        self._pool_ips = defaultdict(set)
        for ip in self._holders:
            pool = self._pool_containing(ip)
            self._ip_pool[ip] = pool.name if pool else ""
            if pool:
                self._pool_ips[pool.name].add(ip)

    @property
    def pool_map(self) -> Mapping[str, pools.Pool]:
        return self._pools

    @property
    def addresses_by_pool(self) -> Mapping[str, set[IP]]:
        """Pool -> the addresses Services hold in it (read only)."""
        return self._pool_ips

    @property
    def problems(self) -> Mapping[str, errors.InvalidObject]:
        """Pools that are invalid as a set (overlap, second default), with the error."""
        return self._problems

    def _overlapping(self, name: str) -> bool:
        return not self._index.is_valid(name)

    def _pool_containing(self, ip: IP) -> pools.Pool | None:
        return self._index.valid_holding(ip)

    # ---- queries -----------------------------------------------------------------------

    def assignment(self, key: str) -> Assignment | None:
        ips = self._by_service.get(key)
        if ips is None:
            return None
        return Assignment(key, ips, tuple(self._ip_pool.get(ip, "") for ip in ips))

    def waits_on(self, svc: service.LbService,
                 namespace_labels: Mapping[str, str] | None = None
                 ) -> tuple[frozenset[str], frozenset[IP]]:
        """(pools, addresses) whose freeing could let a refused `svc` through: the pools
        it may take from (named, holding its requested address, or bound to its
        namespace and the default) and the addresses it requests. The controller
        re-queues a waiting Service only when one of these frees, not on every free."""
        labels = namespace_labels or {}
        names: set[str] = set()
        wanted: set[IP] = set()
        for version in svc.families:
            requested = svc.requested_for(version)
            if requested is not None:
                wanted.add(requested)
                pool = self._pool_containing(requested)
                names.update([pool.name] if pool is not None else [])
            elif svc.pool_names:
                names.update(svc.pool_names)
            else:
                names.update(p.name for p in self._bound.get(version, ())
                             if p.allows(svc.namespace, labels))
                if self._default is not None:
                    names.add(self._default.name)
        return frozenset(names), frozenset(wanted)

    def holders(self, ip: IP) -> tuple[str, ...]:
        return tuple(sorted(self._holders.get(ip, ())))

    def sharing_refusal(self, svc: service.LbService, ip: IP) -> sharing.Refusal | None:
        """Why `svc` may not share `ip` with its holders now, or None when it may (or
        nobody else holds it)."""
        holders = self._holders.get(ip)
        return sharing.check(svc, ip, holders.values()) if holders else None

    def __len__(self) -> int:
        """Number of Services holding at least one address."""
        return len(self._by_service)

    def pool_status(self, name: str, used_bytes: int = USED_BYTES_LIMIT) -> PoolStatus:
        """Eip status for pool `name`: O(addresses in use in it).

        `used` lists the lowest addresses and their holders up to about `used_bytes` of
        JSON; beyond that it is cut (`used_truncated`) while `usage` stays the full
        count: an Eip must fit etcd's object size limit (1.5 MB), which a complete map
        would pass at about 30,000 Services in one pool.
        """
        pool = self._pools[name]
        held = sorted(self._pool_ips.get(name, ()), key=int)
        used: dict[str, str] = {}
        budget = used_bytes
        for ip in held:
            text, holders = str(ip), ";".join(sorted(self._holders[ip]))
            budget -= len(text) + len(holders) + 6  # two quotes each, colon, comma
            if budget < 0:
                break
            used[text] = holders
        size = pool.span.size
        return PoolStatus(
            name=name,
            pool_size=min(size, INT64_MAX),
            usage=len(held),
            used=used,
            used_truncated=len(used) < len(held),
            first_ip=str(ranges.to_ip(pool.version, pool.span.first)) if size else "",
            last_ip=str(ranges.to_ip(pool.version, pool.span.last)) if size else "",
            v4=pool.version == 4,
            occupied=size > 0 and len(held) >= size,
            ready=name not in self._problems,
            problem=self._problems.get(name),
        )

    # ---- replay of existing statuses ---------------------------------------------------

    def rebuild(self, services: Iterable[service.LbService]) -> RebuildReport:
        """Replay what the Services' statuses say, oldest first (DESIGN §4: oldest wins)."""
        report = RebuildReport()
        holding = [s for s in services if s.assigned_ips]
        for svc in sorted(holding, key=lambda s: (s.created or "~", s.key)):
            assignment, error = self.claim(svc)
            if assignment is not None:
                report.kept[svc.key] = assignment
            if error is not None:
                report.refused[svc.key] = error
        return report

    def claim(
        self, svc: service.LbService
    ) -> tuple[Assignment | None, ipam_errors.AllocationError | None]:
        """Record the addresses `svc.assigned_ips` already holds, where still valid.

        Keeps each address that lies in a usable pool and that sharing rules let it hold
        next to the current holders; returns the first refusal for the others. Pool
        policy (disabled, namespace binding) is not re-judged: a valid IP never moves.
        """
        kept: list[IP] = []
        first_error: ipam_errors.AllocationError | None = None
        seen_versions: set[int] = set()
        for ip in svc.assigned_ips:
            if ip.version in seen_versions:
                continue
            seen_versions.add(ip.version)
            try:
                self._check_claim(svc, ip)
            except ipam_errors.AllocationError as exc:
                first_error = first_error or exc
                continue
            kept.append(ip)
        if not kept:
            return None, first_error
        self._commit(svc, tuple(kept))
        return self.assignment(svc.key), first_error

    def _check_claim(self, svc: service.LbService, ip: IP) -> None:
        if self._pool_containing(ip) is None:
            raise ipam_errors.NotInAnyPool(ip)
        self._check_sharing(svc, ip)

    # ---- assignment --------------------------------------------------------------------

    def assign(
        self, svc: service.LbService, namespace_labels: Mapping[str, str] | None = None
    ) -> Assignment:
        """Give `svc` one address per wanted family, keeping every address still valid.

        All or nothing: on error the previous assignment is untouched. PreferDualStack
        Services get what is available as long as one family succeeds.
        """
        labels = namespace_labels or {}
        current = self._by_service.get(svc.key, ())
        picks: dict[int, IP] = {}
        failures: list[ipam_errors.AllocationError] = []
        for version in svc.families:
            kept = next(
                (ip for ip in current if ip.version == version and self._still_fits(svc, ip)),
                None,
            )
            try:
                picks[version] = kept if kept is not None else self._choose(svc, version, labels)
            except ipam_errors.AllocationError as exc:
                failures.append(exc)
        partial_ok = svc.family_policy is service.FamilyPolicy.PREFER_DUAL and picks
        if failures and not partial_ok:
            raise failures[0]
        self._commit(svc, tuple(picks[v] for v in svc.families if v in picks))
        assignment = self.assignment(svc.key)
        assert assignment is not None
        return assignment

    def release(self, key: str) -> frozenset[IP]:
        """Forget `key`'s addresses; returns those now free (shared ones may stay held)."""
        ips = self._by_service.pop(key, ())
        freed = set()
        for ip in ips:
            if self._drop_holder(ip, key):
                freed.add(ip)
        return frozenset(freed)

    def _still_fits(self, svc: service.LbService, ip: IP) -> bool:
        pool = self._pool_containing(ip)
        if pool is None:
            return False
        requested = svc.requested_for(ip.version)
        if requested is not None and requested != ip:
            return False
        if svc.pool_names and pool.name not in svc.pool_names:
            return False
        holders = self._holders.get(ip)
        return not holders or sharing.check(svc, ip, holders.values()) is None

    def _choose(self, svc: service.LbService, version: int, labels: Mapping[str, str]) -> IP:
        requested = svc.requested_for(version)
        if requested is not None:
            return self._take_requested(svc, requested, labels)
        if svc.pool_names:
            return self._from_named(svc, version, labels)
        return self._from_namespace_or_default(svc, version, labels)

    def _take_requested(self, svc: service.LbService, ip: IP, labels: Mapping[str, str]) -> IP:
        pool = self._pool_containing(ip)
        if pool is None:
            broken = self._index.holding(ip)
            if broken is not None:
                raise ipam_errors.PoolUnusable(broken.name, self._problems[broken.name].message)
            raise ipam_errors.NotInAnyPool(ip)
        if svc.pool_names and pool.name not in svc.pool_names:
            raise ipam_errors.NotInNamedPool(ip, svc.pool_names)
        what = ranges.reserved_name(pool.declared, ip)
        if what:
            raise ipam_errors.ReservedAddress(ip, pool.name, what)
        self._check_policy(pool, svc.namespace, labels)
        self._check_sharing(svc, ip)
        return ip

    def _from_named(self, svc: service.LbService, version: int, labels: Mapping[str, str]) -> IP:
        named = [self._pools[n] for n in svc.pool_names if n in self._pools]
        if not named:
            first = svc.pool_names[0]
            if first in self._invalid:
                raise ipam_errors.PoolUnusable(first, self._invalid[first])
            raise ipam_errors.UnknownPool(first)
        of_family = [p for p in named if p.version == version]
        if not of_family:
            raise ipam_errors.FamilyNotServed(tuple(p.name for p in named), version)
        first_error: ipam_errors.AllocationError | None = None
        for pool in of_family:
            try:
                if self._overlapping(pool.name):
                    raise ipam_errors.PoolUnusable(pool.name, self._problems[pool.name].message)
                self._check_policy(pool, svc.namespace, labels)
                return self._pick(svc, pool)
            except ipam_errors.AllocationError as exc:
                first_error = first_error or exc
        assert first_error is not None
        raise first_error

    def _from_namespace_or_default(
        self, svc: service.LbService, version: int, labels: Mapping[str, str]
    ) -> IP:
        first_error: ipam_errors.AllocationError | None = None
        candidates = [
            p for p in self._bound.get(version, ()) if p.allows(svc.namespace, labels)
        ]
        default = self._default
        if (
            default is not None
            and default.version == version
            and default.allows(svc.namespace, labels)
        ):
            candidates.append(default)
        for pool in candidates:
            try:
                if pool.disabled:
                    raise ipam_errors.PoolDisabled(pool.name)
                return self._pick(svc, pool)
            except ipam_errors.AllocationError as exc:
                first_error = first_error or exc
        raise first_error or ipam_errors.NoPool(svc.namespace, version)

    @staticmethod
    def _check_policy(pool: pools.Pool, namespace: str, labels: Mapping[str, str]) -> None:
        if pool.disabled:
            raise ipam_errors.PoolDisabled(pool.name)
        if not pool.allows(namespace, labels):
            raise ipam_errors.PoolNotAllowed(pool.name, namespace)

    def _check_sharing(self, svc: service.LbService, ip: IP) -> None:
        holders = self._holders.get(ip)
        if not holders:
            return
        refusal = sharing.check(svc, ip, holders.values())
        if refusal is None:
            return
        if refusal.taken:
            raise ipam_errors.AddressTaken(ip, refusal.holder)
        raise ipam_errors.SharingRefused(ip, refusal.holder, refusal.why)

    def _pick(self, svc: service.LbService, pool: pools.Pool) -> IP:
        span = pool.span
        if svc.sharing_key:
            # MetalLB's rule: a keyed Service joins a compatible keyed address first.
            for ip in sorted(self._keyed.get(svc.sharing_key, ()), key=int):
                holders = self._holders.get(ip, {})
                if span.contains(ip) and sharing.check(svc, ip, holders.values()) is None:
                    return ip
        value = self._used[pool.version].lowest_free(span.first, span.last)
        if value is None:
            raise ipam_errors.NoFreeAddress(pool.name, pool.version)
        return ranges.to_ip(pool.version, value)

    # ---- bookkeeping -------------------------------------------------------------------

    def _commit(self, svc: service.LbService, ips: tuple[IP, ...]) -> None:
        old = self._by_service.get(svc.key, ())
        for ip in old:
            if ip not in ips:
                self._drop_holder(ip, svc.key)
        for ip in ips:
            self._add_holder(ip, svc)
        if ips:
            self._by_service[svc.key] = ips
        else:
            self._by_service.pop(svc.key, None)

    def _add_holder(self, ip: IP, svc: service.LbService) -> None:
        holders = self._holders.get(ip)
        if holders is None:
            holders = self._holders[ip] = {}
            value = int(ip)
            self._used[ip.version].add(value)
            pool = self._pool_containing(ip)
            self._ip_pool[ip] = pool.name if pool else ""
            if pool is not None:
                self._pool_ips[pool.name].add(ip)
        previous = holders.get(svc.key)
        holders[svc.key] = svc
        if previous is not None and previous.sharing_key != svc.sharing_key:
            self._unkey(ip, previous.sharing_key, holders)
        if svc.sharing_key:
            self._keyed[svc.sharing_key].add(ip)

    def _drop_holder(self, ip: IP, key: str) -> bool:
        """Remove one holder; True when the address became free."""
        holders = self._holders.get(ip)
        if holders is None or key not in holders:
            return False
        gone = holders.pop(key)
        self._unkey(ip, gone.sharing_key, holders)
        if holders:
            return False
        del self._holders[ip]
        self._used[ip.version].discard(int(ip))
        pool_name = self._ip_pool.pop(ip, "")
        if pool_name:
            self._pool_ips[pool_name].discard(ip)
        return True

    def _unkey(self, ip: IP, sharing_key: str, holders: Mapping[str, service.LbService]) -> None:
        if sharing_key and all(h.sharing_key != sharing_key for h in holders.values()):
            keyed = self._keyed.get(sharing_key)
            if keyed is not None:
                keyed.discard(ip)
                if not keyed:
                    del self._keyed[sharing_key]
