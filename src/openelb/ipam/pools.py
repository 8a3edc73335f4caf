"""IP pools as plain values, and the checks that need every pool at once.

Pure (DESIGN §3); `Pool.from_eip` is called by the controller and the webhook, and the
allocator consumes Pools. `PoolIndex` answers "which pool holds this address" for the
allocator and the planner alike (the oldest pool whose declared range holds it).
`find_problems` decides which pools are unusable when pools
overlap or two claim to be the default: the older object keeps working, the newer one
gets the error (deterministic, so every replica agrees). Nothing is enumerated.
"""


import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from openelb.api import addresses, annotations, eip, errors
from openelb.ipam import ranges

__all__ = ["Pool", "PoolIndex", "find_problems"]


@dataclass(frozen=True, slots=True)
class Pool:
    """One Eip, reduced to what allocation needs."""

    name: str
    declared: addresses.DeclaredRange
    protocol: str = "bgp"
    interface: str = ""  # layer2/vip: NIC name or can_reach:<IP>, resolved by the speaker
    disabled: bool = False
    priority: int = 0
    namespaces: frozenset[str] = frozenset()
    namespace_selector: tuple[tuple[str, str], ...] = ()
    is_default: bool = False
    created: str = ""
    # Derived once: allocation reads these on every call.
    span: ranges.Span = field(init=False, repr=False, compare=False)
    declared_span: ranges.Span = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "span", ranges.usable_span(self.declared))
        object.__setattr__(self, "declared_span", ranges.declared_span(self.declared))

    @classmethod
    def from_eip(cls, obj: eip.Eip) -> "Pool":
        return cls(
            name=obj.name,
            declared=obj.declared,
            protocol=obj.spec.protocol,
            interface=obj.spec.interface,
            disabled=obj.spec.disable,
            priority=obj.spec.priority,
            namespaces=frozenset(obj.spec.namespaces),
            namespace_selector=tuple(sorted(obj.spec.namespace_selector.items())),
            is_default=obj.is_default,
            created=obj.metadata.creation_timestamp or "",
        )

    @property
    def declared_text(self) -> str:
        """The range in canonical form, for messages."""
        d = self.declared
        if d.kind is addresses.AddressKind.CIDR:
            return f"{d.first}/{d.prefixlen}"
        if d.kind is addresses.AddressKind.RANGE:
            return f"{d.first}-{d.last}"
        return str(d.first)

    @property
    def version(self) -> int:
        return self.declared.version

    @property
    def bound(self) -> bool:
        """Bound to namespaces: then never used by Services elsewhere (DESIGN §6)."""
        return bool(self.namespaces or self.namespace_selector)

    def allows(self, namespace: str, namespace_labels: Mapping[str, str]) -> bool:
        if not self.bound:
            return True
        if namespace in self.namespaces:
            return True
        return bool(self.namespace_selector) and all(
            namespace_labels.get(k) == v for k, v in self.namespace_selector
        )

    @property
    def age_key(self) -> tuple[str, str]:
        """Older first; the name breaks ties so every replica orders pools alike."""
        return (self.created or "~", self.name)


class PoolIndex:
    """Which pool holds an address: the one place this rule lives (DESIGN §3).

    The allocator asks it where an address belongs, and every planner asks it which
    mode an assigned address is announced in, so the two never disagree. Pools are
    taken oldest first and a pool overlapping one already taken is not valid (the
    `find_problems` rule); an address resolves to the valid pool holding it, else to the
    oldest invalid one (so its error can be named). Valid pools are disjoint, so the
    lookup is a bisection.
    """

    __slots__ = ("_invalid", "_pools", "_starts")

    def __init__(self, pools: Iterable[Pool]) -> None:
        accepted: dict[int, SortedList[tuple[int, int, str]]] = {4: SortedList(),
                                                                  6: SortedList()}
        by_name: dict[str, Pool] = {}
        invalid: list[Pool] = []
        for pool in sorted(pools, key=lambda p: p.age_key):
            span = pool.declared_span
            if _overlapping(accepted[span.version], span) is not None:
                invalid.append(pool)
                continue
            accepted[span.version].add((span.first, span.last, pool.name))
            by_name[pool.name] = pool
        self._pools = {v: [by_name[name] for _, _, name in spans]
                       for v, spans in accepted.items()}
        self._starts = {v: [first for first, _, _ in spans] for v, spans in accepted.items()}
        self._invalid = tuple(invalid)

    def valid_holding(self, ip: addresses.IPAddress) -> Pool | None:
        """The valid pool whose declared range holds `ip`, or None."""
        value = int(ip)
        index = bisect.bisect_right(self._starts[ip.version], value) - 1
        if index < 0:
            return None
        pool = self._pools[ip.version][index]
        return pool if value <= pool.declared_span.last else None

    def holding(self, ip: addresses.IPAddress) -> Pool | None:
        """The pool `ip` belongs to: the valid one holding it, else the oldest invalid
        one, else None."""
        pool = self.valid_holding(ip)
        if pool is not None:
            return pool
        return next((p for p in self._invalid if p.declared_span.contains(ip)), None)

    def is_valid(self, name: str) -> bool:
        """False for a pool that overlaps an older one (`find_problems` names why)."""
        return all(p.name != name for p in self._invalid)


def find_problems(pools: Iterable[Pool]) -> dict[str, errors.InvalidObject]:
    """Pools that must not be used, with the error the user sees on them.

    Processes pools oldest first; each is checked against the accepted ones only, so
    the first pool of an overlapping pair keeps working. O(n log n) in the pool count.
    """
    problems: dict[str, errors.InvalidObject] = {}
    accepted: dict[int, SortedList[tuple[int, int, str]]] = {4: SortedList(), 6: SortedList()}
    default_owner = ""
    for pool in sorted(pools, key=lambda p: p.age_key):
        span = pool.declared_span
        clash = _overlapping(accepted[span.version], span)
        if clash is not None:
            problems[pool.name] = errors.InvalidObject(
                "spec.address",
                f"{pool.declared_text} overlaps eip/{clash}",
                value=pool.declared_text,
            )
            continue
        # A second default keeps working as an ordinary pool, so its range still
        # counts for the overlap check of younger pools.
        accepted[span.version].add((span.first, span.last, pool.name))
        if pool.is_default and default_owner:
            problems[pool.name] = errors.InvalidObject(
                f"metadata.annotations[{annotations.DEFAULT_EIP_ANNOTATION}]",
                f"eip/{default_owner} is already the default Eip; only one may be",
                value="true",
            )
        elif pool.is_default:
            default_owner = pool.name
    return problems


def _overlapping(spans: SortedList[tuple[int, int, str]], span: ranges.Span) -> str | None:
    # Accepted spans are disjoint: only the predecessor and successor can overlap.
    index = spans.bisect_left((span.first, -1, ""))
    for neighbour in (index - 1, index):
        if 0 <= neighbour < len(spans):
            first, last, name = spans[neighbour]
            if first <= span.last and span.first <= last:
                return name
    return None
