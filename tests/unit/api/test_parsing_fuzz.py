"""Fuzzing the api parsers: any JSON-like input is accepted or refused with InvalidObject
whose text starts with the field (STYLE §2.5, §2.6), and accepted objects write back
every field the user set, unknown ones included (STYLE §2.3).

Inputs are arbitrary JSON values, biased towards the CRDs' own field names, and random
mutations (replace, delete, add) of complete valid objects.
"""

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from openelb.api import annotations, bgp, eip, errors, model, selectors, service

Raw = Any
Path = tuple[str | int, ...]

FUZZ = settings(max_examples=300, deadline=None)

# ---- valid objects -----------------------------------------------------------------------

EIP: dict[str, Any] = {
    "apiVersion": "network.kubesphere.io/v1alpha2",
    "kind": "Eip",
    "metadata": {
        "name": "lan",
        "resourceVersion": "7",
        "creationTimestamp": "2024-01-01T00:00:00Z",
        "labels": {"site": "a"},
        "annotations": {annotations.DEFAULT_EIP_ANNOTATION: "true"},
        "finalizers": ["finalizer.lb.kubesphere.io/v1alpha1"],
    },
    "spec": {
        "address": "192.0.2.0/24",
        "protocol": "layer2",
        "interface": "can_reach:192.0.2.1",
        "disable": False,
        "usingKnownIPs": True,
        "priority": 3,
        "namespaces": ["shop"],
        "namespaceSelector": {"team": "blue"},
    },
    "status": {
        "occupied": False,
        "usage": 1,
        "poolSize": 254,
        "used": {"192.0.2.1": "shop/web"},
        "firstIP": "192.0.2.1",
        "lastIP": "192.0.2.254",
        "ready": True,
        "v4": True,
    },
}

GRACEFUL = {
    "enabled": True,
    "restartTime": 120,
    "helperOnly": False,
    "deferralTime": 360,
    "notificationEnabled": True,
    "longlivedEnabled": False,
    "staleRoutesTime": 60,
    "peerRestartTime": 0,
    "peerRestarting": False,
    "localRestarting": False,
    "mode": "helper",
}

BGP_PEER: dict[str, Any] = {
    "apiVersion": "network.kubesphere.io/v1alpha2",
    "kind": "BgpPeer",
    "metadata": {"name": "tor", "labels": {"rack": "r1"}},
    "spec": {
        "conf": {
            "peerAs": 65001,
            "neighborAddress": "192.0.2.254",
            "authPassword": "secret",
            "localAs": 65000,
            "description": "top of rack",
            "adminDown": False,
            "peerGroup": "",
            "peerType": 0,
            "removePrivateAs": "all",
            "routeFlapDamping": False,
            "sendCommunity": 0,
            "neighborInterface": "",
            "vrf": "",
            "allowOwnAs": 0,
            "replacePeerAs": False,
        },
        "ebgpMultihop": {"enabled": True, "multihopTtl": 3},
        "timers": {
            "config": {
                "connectRetry": 5,
                "holdTime": "90",
                "keepaliveInterval": 30,
                "minimumAdvertisementInterval": 0,
            }
        },
        "transport": {
            "mtuDiscovery": True,
            "passiveMode": False,
            "remoteAddress": "192.0.2.254",
            "remotePort": 179,
            "tcpMss": 1400,
        },
        "gracefulRestart": GRACEFUL,
        "afiSafis": [
            {
                "config": {"family": {"afi": "AFI_IP", "safi": "SAFI_UNICAST"}, "enabled": True},
                "mpGracefulRestart": {"config": {"enabled": True}},
                "addPaths": {"config": {"receive": True, "sendMax": 8}},
            }
        ],
        "nodeSelector": {
            "matchLabels": {"bgp": "yes"},
            "matchExpressions": [{"key": "rack", "operator": "In", "values": ["r1", "r2"]}],
        },
    },
    "status": {"nodesPeerStatus": {"node-a": {"peerState": {"sessionState": "ESTABLISHED"}}}},
}

BGP_CONF: dict[str, Any] = {
    "apiVersion": "network.kubesphere.io/v1alpha2",
    "kind": "BgpConf",
    "metadata": {"name": "default"},
    "spec": {
        "as": 65000,
        "asPerRack": {"r1": 65010},
        "routerId": "10.0.0.1",
        "listenPort": 17900,
        "listenAddresses": ["192.0.2.10", "2001:db8::10"],
        "families": [1, 2],
        "useMultiplePaths": True,
        "gracefulRestart": GRACEFUL,
        "policy": "accept",
    },
    "status": {"nodesConfStatus": {"node-a": {"routerId": "192.0.2.10", "as": 65000}}},
}

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "namespace": "shop",
        "name": "web",
        "uid": "0b1c",
        "creationTimestamp": "2024-01-01T00:00:00Z",
        "annotations": {
            annotations.LB_ANNOTATION: annotations.LB_ANNOTATION_VALUE,
            annotations.POOL_ANNOTATION: "lan,lan6",
            annotations.REQUESTED_IP_ANNOTATION: "192.0.2.10,2001:db8::10",
            annotations.SHARING_ANNOTATIONS[0]: "blue",
        },
    },
    "spec": {
        "type": "LoadBalancer",
        "loadBalancerClass": "openelb",
        "loadBalancerIP": "192.0.2.10",
        "ipFamilies": ["IPv4", "IPv6"],
        "ipFamilyPolicy": "PreferDualStack",
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
        "externalTrafficPolicy": "Local",
        "selector": {"app": "web"},
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"hostname": "x"}]}},
}

# Paths of the nodes that are models (extra="allow"), where a user's unknown key lives.
MODEL_NODES: dict[str, tuple[Path, ...]] = {
    "Eip": ((), ("metadata",), ("spec",), ("status",)),
    "BgpPeer": (
        (),
        ("metadata",),
        ("spec",),
        ("spec", "conf"),
        ("spec", "ebgpMultihop"),
        ("spec", "timers"),
        ("spec", "timers", "config"),
        ("spec", "transport"),
        ("spec", "gracefulRestart"),
        ("spec", "afiSafis", 0),
        ("spec", "afiSafis", 0, "config"),
        ("spec", "afiSafis", 0, "config", "family"),
        ("spec", "afiSafis", 0, "mpGracefulRestart"),
        ("spec", "afiSafis", 0, "mpGracefulRestart", "config"),
        ("spec", "afiSafis", 0, "addPaths"),
        ("spec", "afiSafis", 0, "addPaths", "config"),
        ("spec", "nodeSelector"),
        ("spec", "nodeSelector", "matchExpressions", 0),
        ("status",),
    ),
    "BgpConf": (
        (),
        ("metadata",),
        ("spec",),
        ("spec", "gracefulRestart"),
        ("status",),
        ("status", "nodesConfStatus", "node-a"),
    ),
}

PARSERS: dict[str, Callable[[Raw], Any]] = {
    "Eip": eip.Eip.parse,
    "BgpPeer": bgp.BgpPeer.parse,
    "BgpConf": bgp.BgpConf.parse,
}
VALID = {"Eip": EIP, "BgpPeer": BGP_PEER, "BgpConf": BGP_CONF}


def _field_names(raw: Raw) -> set[str]:
    names: set[str] = set()
    if isinstance(raw, dict):
        for key, value in raw.items():
            names.add(key)
            names |= _field_names(value)
    elif isinstance(raw, list):
        for value in raw:
            names |= _field_names(value)
    return names


KNOWN_KEYS = sorted(_field_names([EIP, BGP_PEER, BGP_CONF, SERVICE]))
MODEL_NAMES = frozenset(
    name
    for module in (model, selectors, eip, bgp)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)
    for field_name, info in cls.model_fields.items()
    for name in (field_name, info.alias or field_name)
)

# ---- JSON strategies ---------------------------------------------------------------------

# Values the parsers special-case, so random input reaches the interesting branches.
TELLING_VALUES: list[Any] = [
    "",
    " ",
    "192.0.2.1",
    "192.0.2.0/24",
    "192.0.2.9-192.0.2.1",
    "2001:db8::1",
    "192.0.2.1-2001:db8::1",
    "can_reach:",
    "can_reach:192.0.2.1",
    "lo",
    "bgp",
    "layer2",
    "vip",
    "IPv4",
    "IPv6",
    "PreferDualStack",
    "Local",
    "LoadBalancer",
    "openelb",
    "In",
    "Exists",
    "AFI_IP",
    "90",
    "-1",
    "nan",
    "1e400",
    "true",
    0,
    -1,
    1,
    65535,
    65536,
    4_294_967_296,
    2**63,
    True,
    False,
    None,
]
TELLING = st.sampled_from(TELLING_VALUES)
TELLING_WORDS = st.sampled_from([v for v in TELLING_VALUES if isinstance(v, str)])
KEYS = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=6))
# Integers stay within ±2**70: past the float range (10**400) they crash BgpPeer timers, see
# test_a_huge_timer_is_refused_as_invalid_object.
LEAVES = st.one_of(
    TELLING,
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=5)
    ),
    max_leaves=24,
)


def _paths(raw: Raw, prefix: Path = ()) -> Iterator[Path]:
    yield prefix
    if isinstance(raw, dict):
        for key, value in raw.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(raw, list):
        for index, value in enumerate(raw):
            yield from _paths(value, (*prefix, index))


def _at(raw: Raw, path: Path) -> Raw:
    for part in path:
        raw = raw[part]
    return raw


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Raw:
    """`base` after 1-3 random edits: a value replaced or deleted, or a key added."""
    raw: Raw = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(raw))))
        edit = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        target = _at(raw, path)
        if edit == "add" and isinstance(target, dict):
            target[draw(KEYS)] = draw(JSON)
        elif edit == "add" and isinstance(target, list):
            target.append(draw(JSON))
        elif not path:
            raw = draw(JSON)
        elif edit == "delete":
            del _at(raw, path[:-1])[path[-1]]
        else:
            _at(raw, path[:-1])[path[-1]] = draw(st.one_of(TELLING, JSON))
    return raw


# ---- checks ------------------------------------------------------------------------------

FIELD_START = re.compile(r"^[A-Za-z(\[]")


def assert_well_worded(exc: errors.InvalidObject) -> None:
    """STYLE §2.5: `field: reason`, starting with the field, lower case, no final period."""
    message = exc.message
    assert FIELD_START.match(message), message
    assert message == f"{exc.field}: {exc.reason}"
    assert str(exc) == message  # no object reference until orchestration adds one
    assert exc.reason, message
    assert not exc.reason[:1].isupper(), message
    # "..." marks a value cut short by the api layer; a single final period is prose.
    assert not message.endswith(".") or message.endswith("..."), message


def parse_or_refuse(kind: str, raw: Raw) -> Any:
    """Parse `raw`; None when refused with a well-worded InvalidObject."""
    try:
        return PARSERS[kind](raw)
    except errors.InvalidObject as exc:
        assert_well_worded(exc)
        return None


def assert_writes_back_what_it_read(kind: str, parsed: Any) -> None:
    written = parsed.to_raw()
    assert PARSERS[kind](written).to_raw() == written


KINDS = pytest.mark.parametrize("kind", sorted(PARSERS))


# ---- CRDs --------------------------------------------------------------------------------


@KINDS
@FUZZ
@given(raw=JSON)
def test_any_json_is_accepted_or_refused_with_a_named_field(kind: str, raw: Raw) -> None:
    """Arbitrary JSON never raises anything but InvalidObject, and what parses writes
    back unchanged."""
    parsed = parse_or_refuse(kind, raw)
    if parsed is not None:
        assert_writes_back_what_it_read(kind, parsed)


@KINDS
@FUZZ
@given(data=st.data())
def test_a_damaged_valid_object_is_accepted_or_refused_with_a_named_field(
    kind: str, data: st.DataObject
) -> None:
    """Valid objects with values replaced, deleted or added never raise anything but
    InvalidObject, and what parses writes back unchanged."""
    raw = data.draw(mutated(VALID[kind]), label="raw")
    parsed = parse_or_refuse(kind, raw)
    if parsed is not None:
        assert_writes_back_what_it_read(kind, parsed)


@KINDS
def test_the_valid_examples_round_trip_exactly(kind: str) -> None:
    """The complete valid objects above are accepted and written back key for key."""
    assert PARSERS[kind](copy.deepcopy(VALID[kind])).to_raw() == VALID[kind]


@st.composite
def with_unknown_fields(draw: st.DrawFn, kind: str) -> tuple[Raw, dict[Path, Raw]]:
    raw = copy.deepcopy(VALID[kind])
    nodes = MODEL_NODES[kind]
    added: dict[Path, Raw] = {}
    for _ in range(draw(st.integers(1, 4))):
        node = draw(st.sampled_from(nodes))
        # Not a field's CRD or Python name (see the populate_by_name reproducer below).
        key = draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in MODEL_NAMES))
        value = draw(JSON)
        _at(raw, node)[key] = value
        added[(*node, key)] = value
    return raw, added


@KINDS
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_unknown_fields_a_user_set_survive_a_round_trip(kind: str, data: st.DataObject) -> None:
    """Keys no model knows, anywhere in the object, are written back with their values."""
    raw, added = data.draw(with_unknown_fields(kind), label="raw")
    written = PARSERS[kind](copy.deepcopy(raw)).to_raw()
    assert written == raw
    for path, value in added.items():
        assert _at(written, path) == value
    assert_writes_back_what_it_read(kind, PARSERS[kind](written))


# ---- Services ----------------------------------------------------------------------------

STRING_MAPS = st.dictionaries(
    st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=6)),
    st.one_of(TELLING_WORDS, st.text(max_size=12)),
    max_size=4,
)


@st.composite
def apiserver_services(draw: st.DrawFn) -> dict[str, Any]:
    """Services as the apiserver can store them: every typed field has its type, values
    are anything that type allows."""
    words = st.one_of(TELLING_WORDS, st.text(max_size=20))
    ips = st.sampled_from(["192.0.2.10", "2001:db8::10", "192.0.2.11", "198.51.100.1"])
    ip_lists = st.lists(st.one_of(ips, words), max_size=3).map(lambda parts: ",".join(parts))
    notes = draw(STRING_MAPS)
    for key in [
        annotations.LB_ANNOTATION,
        annotations.POOL_ANNOTATION,
        annotations.REQUESTED_IP_ANNOTATION,
        *annotations.SHARING_ANNOTATIONS,
    ]:
        if draw(st.booleans()):
            notes[key] = draw(st.one_of(words, ip_lists, st.just(annotations.LB_ANNOTATION_VALUE)))
    optional = {
        "type": st.sampled_from(["LoadBalancer", "ClusterIP", "NodePort"]),
        "loadBalancerClass": words,
        "loadBalancerIP": st.one_of(ips, words),
        "ipFamilies": st.lists(st.one_of(st.sampled_from(["IPv4", "IPv6"]), words), max_size=3),
        "ipFamilyPolicy": st.one_of(
            st.sampled_from(["SingleStack", "PreferDualStack", "RequireDualStack"]), words
        ),
        "ports": st.lists(
            st.fixed_dictionaries(
                {"port": st.integers(0, 65535)},
                optional={"protocol": st.one_of(st.sampled_from(["TCP", "UDP", "SCTP"]), words)},
            ),
            max_size=3,
        ),
        "externalTrafficPolicy": st.one_of(st.sampled_from(["Cluster", "Local"]), words),
        "selector": STRING_MAPS,
    }
    spec = draw(st.fixed_dictionaries({}, optional=optional))
    ingress = st.lists(
        st.fixed_dictionaries({}, optional={"ip": st.one_of(ips, words), "hostname": words}),
        max_size=3,
    )
    meta = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "namespace": words,
                "name": words,
                "uid": words,
                "creationTimestamp": words,
                "deletionTimestamp": words,
                "labels": STRING_MAPS,
            },
        )
    )
    meta["annotations"] = notes
    raw = {"metadata": meta, "spec": spec}
    if draw(st.booleans()):
        raw["status"] = {"loadBalancer": {"ingress": draw(ingress)}}
    return raw


@FUZZ
@given(raw=apiserver_services(), lb_class=st.sampled_from([None, "openelb"]))
def test_a_stored_service_is_accepted_or_refused_with_a_named_field(
    raw: dict[str, Any], lb_class: str | None
) -> None:
    """Any Service the apiserver can hold parses, or is refused with InvalidObject naming
    the annotation or field."""
    try:
        service.LbService.parse(raw, lb_class=lb_class)
    except errors.InvalidObject as exc:
        assert_well_worded(exc)


@FUZZ
@example(raw=[])
@example(raw={"spec": {"ipFamilies": 3}})
@example(raw={"metadata": {"annotations": {annotations.SHARING_ANNOTATIONS[0]: 1}}})
@example(raw={"status": {"loadBalancer": {"ingress": [1]}}})
@given(raw=st.one_of(JSON, mutated(SERVICE)))
def test_any_json_service_is_accepted_or_refused_with_a_named_field(raw: Raw) -> None:
    """Arbitrary JSON, or a damaged Service, never raises anything but InvalidObject."""
    try:
        service.LbService.parse(raw, lb_class="openelb")
    except errors.InvalidObject as exc:
        assert_well_worded(exc)


# ---- regression tests for bugs the fuzzing above found -------------------------------------


def test_a_huge_timer_is_refused_as_invalid_object() -> None:
    """A timer too large for a float is refused naming the timer field."""
    raw = copy.deepcopy(BGP_PEER)
    raw["spec"]["timers"]["config"]["holdTime"] = 10**400
    with pytest.raises(errors.InvalidObject, match=r"^spec\.timers\.config\.holdTime: "):
        bgp.BgpPeer.parse(raw)


def test_a_bad_map_value_is_named_by_its_key_whatever_the_key() -> None:
    """The field path of a bad map value ends with its key, even a key named `int`."""
    raw = copy.deepcopy(EIP)
    raw["spec"]["namespaceSelector"] = {"int": 1}
    with pytest.raises(errors.InvalidObject) as caught:
        eip.Eip.parse(raw)
    assert caught.value.field.endswith("int")


def test_a_key_spelled_like_a_python_attribute_is_kept_verbatim() -> None:
    """`namespace_selector` is not an Eip field (OpenELB ignores it): it must neither bind
    the pool nor be renamed on write-back."""
    raw = copy.deepcopy(EIP)
    del raw["spec"]["namespaceSelector"]
    raw["spec"]["namespace_selector"] = {"team": "red"}
    parsed = eip.Eip.parse(raw)
    assert parsed.spec.namespace_selector == {}
    assert parsed.to_raw() == raw
