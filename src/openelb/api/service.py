"""What openelb needs to know about one Kubernetes Service, as plain values.

Pure (DESIGN §3, §6). `LbService.parse(raw, lb_class=...)` reads a Service dict from the
apiserver: whether openelb owns it (annotation `lb.kubesphere.io/v1alpha1: openelb` or the
configured `spec.loadBalancerClass`), the requested pool(s) and IP(s), the IP families,
ports, externalTrafficPolicy, pod selector, sharing key and the IPs its status already
holds. Raises InvalidObject naming the annotation or field that is wrong; never logs.
"""


import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openelb.api import addresses, annotations, errors

__all__ = ["FamilyPolicy", "LbService", "Port", "TrafficPolicy", "service_key"]

_FAMILY_NUMBER: dict[str, int] = {"IPv4": 4, "IPv6": 6}


class TrafficPolicy(enum.StrEnum):
    CLUSTER = "Cluster"
    LOCAL = "Local"


class FamilyPolicy(enum.StrEnum):
    SINGLE = "SingleStack"
    PREFER_DUAL = "PreferDualStack"
    REQUIRE_DUAL = "RequireDualStack"


@dataclass(frozen=True, slots=True, order=True)
class Port:
    """One service port as the network sees it: number and L4 protocol."""

    port: int
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.port}/{self.protocol}"


def service_key(namespace: str, name: str) -> str:
    """The `namespace/name` key used in queues, logs and Eip status."""
    return f"{namespace}/{name}"


def _annotation_field(key: str) -> str:
    return f"metadata.annotations[{key}]"


@dataclass(frozen=True, slots=True)
class LbService:
    """A Service reduced to the facts pool choice, sharing and announcing depend on."""

    namespace: str
    name: str
    uid: str = ""
    created: str = ""  # RFC 3339 creationTimestamp; orders "oldest wins" (DESIGN §4)
    is_load_balancer: bool = True
    opted_in: bool = True
    deleting: bool = False
    pool_names: tuple[str, ...] = ()
    requested_ips: tuple[addresses.IPAddress, ...] = ()
    families: tuple[int, ...] = (4,)
    family_policy: FamilyPolicy = FamilyPolicy.SINGLE
    ports: frozenset[Port] = frozenset()
    traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    selector: tuple[tuple[str, str], ...] = ()
    sharing_key: str = ""
    assigned_ips: tuple[addresses.IPAddress, ...] = field(default=())
    # `namespace/name`, computed once: it keys every map in ipam and the controller.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", service_key(self.namespace, self.name))

    @property
    def wants_address(self) -> bool:
        """Type LoadBalancer, opted in to openelb, and not being deleted."""
        return self.is_load_balancer and self.opted_in and not self.deleting

    def requested_for(self, version: int) -> addresses.IPAddress | None:
        return next((ip for ip in self.requested_ips if ip.version == version), None)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], *, lb_class: str | None = None) -> "LbService":
        """Read a Service dict; `lb_class` is the loadBalancerClass openelb answers to."""
        if not isinstance(raw, Mapping):
            raise errors.InvalidObject("(object)", "must be an object")
        meta = _mapping(raw.get("metadata"))
        spec = _mapping(raw.get("spec"))
        notes: Mapping[str, str] = {
            str(k): v for k, v in _mapping(meta.get("annotations")).items()
            if isinstance(v, str)
        }
        requested = _requested_ips(notes, spec)
        policy = _family_policy(spec)
        return cls(
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            created=str(meta.get("creationTimestamp") or ""),
            is_load_balancer=spec.get("type") == "LoadBalancer",
            opted_in=_opted_in(notes, spec, lb_class),
            deleting=bool(meta.get("deletionTimestamp")),
            pool_names=_pool_names(notes),
            requested_ips=requested,
            families=_families(spec, policy, requested),
            family_policy=policy,
            ports=_ports(spec),
            traffic_policy=_traffic_policy(spec),
            selector=tuple(sorted((str(k), str(v))
                                  for k, v in _mapping(spec.get("selector")).items())),
            sharing_key=next(
                (notes[k].strip() for k in annotations.SHARING_ANNOTATIONS if notes.get(k)), ""
            ),
            assigned_ips=_status_ips(raw),
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    """The apiserver guarantees these shapes; anything else reads as empty."""
    return value if isinstance(value, Mapping) else {}


def _opted_in(notes: Mapping[str, str], spec: Mapping[str, Any], lb_class: str | None) -> bool:
    svc_class = spec.get("loadBalancerClass")
    if svc_class:
        # A class names exactly one implementation; another class is never ours.
        return lb_class is not None and svc_class == lb_class
    return bool(notes.get(annotations.LB_ANNOTATION) == annotations.LB_ANNOTATION_VALUE)


def _pool_names(notes: Mapping[str, str]) -> tuple[str, ...]:
    text = notes.get(annotations.POOL_ANNOTATION, "")
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def _requested_ips(
    notes: Mapping[str, str], spec: Mapping[str, Any]
) -> tuple[addresses.IPAddress, ...]:
    field_name = _annotation_field(annotations.REQUESTED_IP_ANNOTATION)
    text = notes.get(annotations.REQUESTED_IP_ANNOTATION, "")
    ips = [addresses.parse_ip(part, field_name) for part in text.split(",") if part.strip()]
    legacy = str(spec.get("loadBalancerIP") or "").strip()
    if legacy:
        legacy_ip = addresses.parse_ip(legacy, "spec.loadBalancerIP")
        if ips and legacy_ip not in ips:
            raise errors.InvalidObject(
                "spec.loadBalancerIP",
                f"{legacy_ip} differs from {field_name} {text}; set only one",
                value=legacy,
            )
        if not ips:
            ips, field_name = [legacy_ip], "spec.loadBalancerIP"
    versions = [ip.version for ip in ips]
    if len(set(versions)) != len(versions):
        raise errors.InvalidObject(
            field_name, f'"{text or legacy}" asks for two IPv{versions[0]} addresses; '
            "give at most one per family", value=text or legacy,
        )
    return tuple(ips)


def _family_policy(spec: Mapping[str, Any]) -> FamilyPolicy:
    try:
        return FamilyPolicy(spec.get("ipFamilyPolicy") or FamilyPolicy.SINGLE)
    except (ValueError, TypeError):
        return FamilyPolicy.SINGLE  # the apiserver validates this field; be lenient


def _families(
    spec: Mapping[str, Any], policy: FamilyPolicy, requested: tuple[addresses.IPAddress, ...]
) -> tuple[int, ...]:
    names = spec.get("ipFamilies")
    names = names if isinstance(names, list) else []
    listed: list[int] = list(dict.fromkeys(
        _FAMILY_NUMBER[f] for f in names if isinstance(f, str) and f in _FAMILY_NUMBER))
    if policy is FamilyPolicy.SINGLE:
        listed = listed[:1]
    if requested:
        # An explicitly requested IP decides its family, whatever ipFamilies says.
        wanted: list[int] = [int(ip.version) for ip in requested]
        if policy is not FamilyPolicy.SINGLE:
            wanted += [v for v in listed if v not in wanted]
        return tuple(wanted)
    return tuple(listed) or (4,)


def _ports(spec: Mapping[str, Any]) -> frozenset[Port]:
    listed = spec.get("ports")
    return frozenset(
        Port(int(p["port"]), str(p.get("protocol") or "TCP"))
        for p in (listed if isinstance(listed, list) else ())
        if isinstance(p, Mapping) and isinstance(p.get("port"), int)
    )


def _traffic_policy(spec: Mapping[str, Any]) -> TrafficPolicy:
    return (
        TrafficPolicy.LOCAL
        if spec.get("externalTrafficPolicy") == TrafficPolicy.LOCAL
        else TrafficPolicy.CLUSTER
    )


def _status_ips(raw: Mapping[str, Any]) -> tuple[addresses.IPAddress, ...]:
    ingress = _mapping(_mapping(raw.get("status")).get("loadBalancer")).get("ingress")
    found: list[addresses.IPAddress] = []
    for entry in ingress if isinstance(ingress, list) else ():
        if not isinstance(entry, Mapping):
            continue
        try:
            found.append(addresses.parse_ip(str(entry.get("ip", "")), "status"))
        except errors.InvalidObject:
            continue  # hostname-only or foreign entries are not ours to judge
    return tuple(found)
