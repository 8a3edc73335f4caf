"""deploy/crds on a real kube-apiserver: OpenELB's API is served, checked and kept (DESIGN §6)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from openelb.api import bgp, eip, errors
from openelb_testenv import manifests

pytestmark = pytest.mark.controlplane

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples" / "openelb").glob("*.yaml"))
GROUP = "network.kubesphere.io"
PLURALS = {"Eip": "eips", "BgpConf": "bgpconfs", "BgpPeer": "bgppeers"}

EIP: dict[str, Any] = {
    "apiVersion": f"{GROUP}/v1alpha2",
    "kind": "Eip",
    "metadata": {"name": "doc-pool"},
    "spec": {"address": "192.0.2.0/28"},
}
BGPCONF: dict[str, Any] = {
    "apiVersion": f"{GROUP}/v1alpha2",
    "kind": "BgpConf",
    "metadata": {"name": "default"},
    "spec": {"as": 64512, "listenPort": 17900, "routerId": "192.0.2.1"},
}
BGPPEER: dict[str, Any] = {
    "apiVersion": f"{GROUP}/v1alpha2",
    "kind": "BgpPeer",
    "metadata": {"name": "tor"},
    "spec": {"conf": {"peerAs": 64513, "neighborAddress": "192.0.2.254"}},
}


def _with(base: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """`base` with these spec fields set (None removes one)."""
    body = copy.deepcopy(base)
    for field, value in spec.items():
        if value is None:
            body["spec"].pop(field, None)
        else:
            body["spec"][field] = value
    return body


async def _create(api: k8s.ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    group, version = body["apiVersion"].split("/")
    created: dict[str, Any] = await k8s.CustomObjectsApi(api).create_cluster_custom_object(
        group, version, PLURALS[body["kind"]], body
    )
    return created


async def _get(api: k8s.ApiClient, version: str, plural: str, name: str) -> dict[str, Any]:
    got: dict[str, Any] = await k8s.CustomObjectsApi(api).get_cluster_custom_object(
        GROUP, version, plural, name
    )
    return got


def _message(exc: k8s.ApiException) -> str:
    message: str = json.loads(exc.body)["message"]
    return message


async def test_crds_are_established_with_openelb_versions(admin: k8s.ApiClient) -> None:
    """Every kind serves v1alpha1 and v1alpha2 and stores v1alpha2."""
    extensions = k8s.ApiextensionsV1Api(admin)
    expected = {
        "eips": ({"v1alpha1", "v1alpha2"}, "v1alpha2"),
        "bgpconfs": ({"v1alpha1", "v1alpha2"}, "v1alpha2"),
        "bgppeers": ({"v1alpha1", "v1alpha2"}, "v1alpha2"),
    }
    for plural, (served, stored) in expected.items():
        crd = await extensions.read_custom_resource_definition(f"{plural}.{GROUP}")
        conditions = {c.type: c.status for c in crd.status.conditions}
        assert conditions["Established"] == "True", plural
        assert crd.spec.scope == "Cluster"
        assert {v.name for v in crd.spec.versions if v.served} == served
        assert [v.name for v in crd.spec.versions if v.storage] == [stored]
        assert all(v.subresources and v.subresources.status is not None for v in crd.spec.versions)


async def test_reapplying_the_crds_changes_nothing(admin: k8s.ApiClient) -> None:
    before = [obj["metadata"]["resourceVersion"] for obj in await _crds(admin)]
    await manifests.install(admin, REPO / "deploy" / "crds")
    after = [obj["metadata"]["resourceVersion"] for obj in await _crds(admin)]
    assert before == after


async def _crds(api: k8s.ApiClient) -> list[dict[str, Any]]:
    return [
        await k8s.CustomObjectsApi(api).get_cluster_custom_object(
            "apiextensions.k8s.io", "v1", "customresourcedefinitions", f"{plural}.{GROUP}"
        )
        for plural in PLURALS.values()
    ]


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
async def test_openelb_documented_examples_are_accepted_unchanged(
    admin: k8s.ApiClient, example: Path
) -> None:
    """Each OpenELB example is created as written and reads back with nothing pruned."""
    (body,) = manifests.load(example)
    created = await _create(admin, copy.deepcopy(body))
    assert created["spec"] == body["spec"]
    if "status" in body:
        # The status subresource ignores status on create; it must still fit the schema.
        group, version = body["apiVersion"].split("/")
        created["status"] = body["status"]
        updated = await k8s.CustomObjectsApi(admin).replace_cluster_custom_object_status(
            group, version, PLURALS[body["kind"]], body["metadata"]["name"], created
        )
        assert updated["status"] == body["status"]


def _bad(body: dict[str, Any], field: str, case: str) -> Any:
    return pytest.param(body, field, id=case)


MALFORMED = [
    _bad(_with(EIP, protocol="ospf"), "spec.protocol", "eip-protocol-not-in-enum"),
    _bad(_with(EIP, address=None), "spec.address", "eip-address-missing"),
    _bad(_with(EIP, address=42), "spec.address", "eip-address-not-a-string"),
    _bad(_with(EIP, address="not-an-ip"), "spec.address", "eip-address-not-an-ip"),
    _bad(
        _with(EIP, address="192.0.2.1-2001:db8::1"),
        "spec.address",
        "eip-range-mixes-families",
    ),
    _bad(_with(EIP, disable="yes"), "spec.disable", "eip-disable-not-a-bool"),
    _bad(_with(EIP, priority="high"), "spec.priority", "eip-priority-not-an-int"),
    _bad(_with(EIP, namespaces="default"), "spec.namespaces", "eip-namespaces-not-a-list"),
    _bad(
        _with(EIP, protocol="layer2"),
        "spec.interface",
        "eip-layer2-without-interface",
    ),
    _bad(_with(EIP, interface="eth0/1"), "spec.interface", "eip-interface-bad-name"),
    _bad(
        _with(EIP, interface="can_reach:somewhere"),
        "spec.interface",
        "eip-can-reach-not-an-ip",
    ),
    _bad(_with(BGPCONF, **{"as": "abc"}), "spec.as", "bgpconf-as-not-an-int"),
    _bad(_with(BGPCONF, **{"as": 0}), "spec.as", "bgpconf-as-zero"),
    _bad(_with(BGPCONF, listenPort=70000), "spec.listenPort", "bgpconf-port-too-big"),
    _bad(
        _with(BGPCONF, routerId="2001:db8::1"),
        "spec.routerId",
        "bgpconf-router-id-not-ipv4",
    ),
    _bad(
        _with(BGPPEER, conf={"peerAs": 64513}),
        "spec.conf.neighborAddress",
        "bgppeer-neighbor-missing",
    ),
    _bad(
        _with(BGPPEER, conf={"peerAs": "x", "neighborAddress": "192.0.2.254"}),
        "spec.conf.peerAs",
        "bgppeer-peer-as-not-an-int",
    ),
    _bad(
        _with(BGPPEER, conf={"peerAs": 64513, "neighborAddress": "router"}),
        "spec.conf.neighborAddress",
        "bgppeer-neighbor-not-an-ip",
    ),
    _bad(
        _with(BGPPEER, afiSafis=[{"config": {"family": {"afi": "AFI_L2VPN"}}}]),
        "spec.afiSafis[0].config.family.afi",
        "bgppeer-afi-not-in-enum",
    ),
    _bad(
        _with(BGPPEER, nodeSelector={"matchExpressions": [{"key": "k", "operator": "Maybe"}]}),
        "spec.nodeSelector.matchExpressions[0].operator",
        "bgppeer-selector-operator-not-in-enum",
    ),
    _bad(
        _with(BGPPEER, timers={"config": {"holdTime": "ninety"}}),
        "spec.timers.config.holdTime",
        "bgppeer-hold-time-not-a-number",
    ),
]


@pytest.mark.parametrize(("body", "field"), MALFORMED)
async def test_malformed_objects_are_rejected_naming_the_field(
    admin: k8s.ApiClient, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(k8s.ApiException) as rejected:
        await _create(admin, body)
    assert rejected.value.status == 422
    assert f"{field}:" in _message(rejected.value)


async def test_timers_accept_numbers_and_numeric_strings(admin: k8s.ApiClient) -> None:
    """OpenELB wrote timers as strings ("90"); plain numbers are accepted too."""
    body = _with(BGPPEER, timers={"config": {"holdTime": "90", "keepaliveInterval": 30}})
    created = await _create(admin, body)
    assert created["spec"]["timers"] == {"config": {"holdTime": "90", "keepaliveInterval": 30}}


@pytest.mark.parametrize(
    "address",
    [
        "192.0.2.7",
        "192.0.2.0/24",
        "192.0.2.10-192.0.2.20",
        "2001:db8::/64",
        "2001:db8::1-2001:db8::9",
    ],
    ids=["ipv4", "ipv4-cidr", "ipv4-range", "ipv6-cidr", "ipv6-range"],
)
async def test_eip_address_forms_are_accepted(admin: k8s.ApiClient, address: str) -> None:
    created = await _create(admin, _with(EIP, address=address))
    assert created["spec"]["address"] == address


async def test_eip_address_cannot_be_changed(admin: k8s.ApiClient) -> None:
    await _create(admin, EIP)
    custom = k8s.CustomObjectsApi(admin)
    with pytest.raises(k8s.ApiException) as refused:
        await custom.patch_cluster_custom_object(
            GROUP,
            "v1alpha2",
            "eips",
            "doc-pool",
            {"spec": {"address": "198.51.100.0/28"}},
            _content_type="application/merge-patch+json",
        )
    assert refused.value.status == 422
    assert "spec.address: " in _message(refused.value)
    assert "immutable" in _message(refused.value)
    assert (await _get(admin, "v1alpha2", "eips", "doc-pool"))["spec"]["address"] == "192.0.2.0/28"


async def test_eip_other_fields_can_be_changed(admin: k8s.ApiClient) -> None:
    await _create(admin, EIP)
    patched = await k8s.CustomObjectsApi(admin).patch_cluster_custom_object(
        GROUP,
        "v1alpha2",
        "eips",
        "doc-pool",
        {"spec": {"disable": True, "priority": 5}},
        _content_type="application/merge-patch+json",
    )
    assert patched["spec"] == {"address": "192.0.2.0/28", "disable": True, "priority": 5}


async def test_v1alpha1_eip_reads_as_v1alpha2(admin: k8s.ApiClient) -> None:
    old_style = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Eip",
        "metadata": {"name": "legacy"},
        "spec": {"address": "192.0.2.16/28", "protocol": "layer2", "interface": "eth0"},
    }
    await _create(admin, old_style)
    read = await _get(admin, "v1alpha2", "eips", "legacy")
    assert read["apiVersion"] == f"{GROUP}/v1alpha2"
    assert read["spec"] == old_style["spec"]


async def test_v1alpha2_eip_reads_as_v1alpha1_with_every_field(admin: k8s.ApiClient) -> None:
    """A v1alpha1 client sees (and would write back) the v1alpha2-only fields too."""
    body = _with(EIP, protocol="vip", interface="can_reach:192.0.2.1", namespaces=["web"])
    await _create(admin, body)
    read = await _get(admin, "v1alpha1", "eips", "doc-pool")
    assert read["apiVersion"] == f"{GROUP}/v1alpha1"
    assert read["spec"] == body["spec"]


async def test_status_is_written_only_through_the_status_subresource(
    admin: k8s.ApiClient,
) -> None:
    custom = k8s.CustomObjectsApi(admin)
    created = await _create(admin, {**EIP, "status": {"usage": 3}})
    assert "status" not in created or created["status"] in ({}, None)

    status = {"usage": 1, "poolSize": 14, "used": {"192.0.2.1": "default/web"}, "ready": True}
    await custom.patch_cluster_custom_object_status(
        GROUP,
        "v1alpha2",
        "eips",
        "doc-pool",
        {"status": status},
        _content_type="application/merge-patch+json",
    )
    # A write to the main resource cannot change status, and one to status cannot change spec.
    await custom.patch_cluster_custom_object(
        GROUP,
        "v1alpha2",
        "eips",
        "doc-pool",
        {"status": {"usage": 99}, "spec": {"disable": True}},
        _content_type="application/merge-patch+json",
    )
    await custom.patch_cluster_custom_object_status(
        GROUP,
        "v1alpha2",
        "eips",
        "doc-pool",
        {"spec": {"disable": False}},
        _content_type="application/merge-patch+json",
    )
    read = await _get(admin, "v1alpha2", "eips", "doc-pool")
    assert read["status"] == status
    assert read["spec"]["disable"] is True


async def test_eip_printer_columns_show_cidr_usage_total_ready_and_mode(
        admin: k8s.ApiClient) -> None:
    """`kubectl get eip` shows whether a pool is usable and its mode, not only its size
    (issue #12: a pool marked not ready was invisible there)."""
    created = await _create(admin, EIP)
    created["status"] = {"usage": 2, "poolSize": 14, "ready": False}
    await k8s.CustomObjectsApi(admin).replace_cluster_custom_object_status(
        GROUP, "v1alpha2", "eips", "doc-pool", created
    )
    table: dict[str, Any] = await admin.call_api(
        f"/apis/{GROUP}/v1alpha2/eips/doc-pool",
        "GET",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        response_types_map={200: "object"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )
    names = [column["name"] for column in table["columnDefinitions"]]
    cells = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert {"cidr": "192.0.2.0/28", "usage": 2, "total": 14, "ready": False,
            "protocol": None}.items() <= cells.items()  # unset: BGP, the default


async def test_bgpconf_and_bgppeer_v1alpha1_are_served_deprecated_through_the_webhook(
    admin: k8s.ApiClient,
) -> None:
    """v1alpha1 is back for BgpConf and BgpPeer: discovery lists it, marked deprecated, and
    the apiserver converts it through /convert; Eip converts without the webhook."""
    group: dict[str, Any] = await admin.call_api(
        f"/apis/{GROUP}/v1alpha1", "GET", response_types_map={200: "object"},
        auth_settings=["BearerToken"], _return_http_data_only=True,
    )
    assert {"eips", "bgpconfs", "bgppeers"} <= {r["name"] for r in group["resources"]}

    extensions = k8s.ApiextensionsV1Api(admin)
    for plural, kind in (("bgpconfs", "BgpConf"), ("bgppeers", "BgpPeer")):
        crd = await extensions.read_custom_resource_definition(f"{plural}.{GROUP}")
        (old,) = [v for v in crd.spec.versions if v.name == "v1alpha1"]
        assert old.served
        assert not old.storage
        assert old.deprecated
        assert f"use {GROUP}/v1alpha2 {kind}" in old.deprecation_warning
        assert crd.spec.conversion.strategy == "Webhook"
        assert crd.spec.conversion.webhook.conversion_review_versions == ["v1"]
        service = crd.spec.conversion.webhook.client_config.service
        assert (service.namespace, service.name, service.path, service.port) == (
            "openelb-system", "openelb-webhook", "/convert", 443)
    eips = await extensions.read_custom_resource_definition(f"eips.{GROUP}")
    assert eips.spec.conversion.strategy == "None"


async def test_a_v1alpha1_request_carries_the_deprecation_warning(admin: k8s.ApiClient) -> None:
    """Listing no objects needs no conversion, so this works without the webhook."""
    _, status, headers = await admin.call_api(
        f"/apis/{GROUP}/v1alpha1/bgppeers", "GET", response_types_map={200: "object"},
        auth_settings=["BearerToken"], _return_http_data_only=False,
    )
    assert status == 200
    assert f"{GROUP}/v1alpha1 BgpPeer is deprecated" in headers.get("Warning", "")


# ---- CEL rules: one per rule about a single object the OpenAPI keywords cannot say -------

CEL_REFUSALS = [
    pytest.param(
        _with(BGPPEER, timers={"config": {"holdTime": 2}}), "spec.timers.config.holdTime",
        "spec.timers.config.holdTime must be 0 (use the default) or at least 3 seconds",
        id="bgppeer-hold-time-below-3",
    ),
    pytest.param(
        _with(BGPPEER, timers={"config": {"holdTime": "1"}}), "spec.timers.config.holdTime",
        "spec.timers.config.holdTime must be 0 (use the default) or at least 3 seconds",
        id="bgppeer-hold-time-string-below-3",
    ),
    pytest.param(
        _with(BGPPEER, timers={"config": {"holdTime": "9", "keepaliveInterval": 9}}),
        "spec.timers.config.keepaliveInterval",
        "spec.timers.config.keepaliveInterval must be less than spec.timers.config.holdTime",
        id="bgppeer-keepalive-not-below-hold",
    ),
    pytest.param(
        _with(BGPPEER, transport={"remoteAddress": "tor.example"}),
        "spec.transport.remoteAddress", "spec.transport.remoteAddress must be an IP address",
        id="bgppeer-remote-address-not-an-ip",
    ),
    pytest.param(
        _with(BGPPEER, ebgpMultihop={"enabled": True, "multihopTtl": 0}),
        "spec.ebgpMultihop.multihopTtl",
        "spec.ebgpMultihop.multihopTtl must be between 1 and 255 when "
        "spec.ebgpMultihop.enabled is true",
        id="bgppeer-multihop-ttl-0",
    ),
    pytest.param(
        _with(BGPPEER, conf={"peerAs": 64513, "neighborAddress": "192.0.2.254",
                             "authPassword": "é" * 41}),
        "spec.conf.authPassword",
        "spec.conf.authPassword must be at most 80 bytes (the Linux TCP MD5 key limit)",
        id="bgppeer-md5-key-over-80-bytes",
    ),
    pytest.param(
        _with(EIP, address="192.0.2.20-192.0.2.10"), "spec.address",
        "spec.address range start is after its end", id="eip-ipv4-range-reversed",
    ),
    pytest.param(
        _with(EIP, address="192.0.2.10-192.0.2.9"), "spec.address",
        "spec.address range start is after its end",
        id="eip-ipv4-range-reversed-in-number-order",  # as text "10" sorts before "9"
    ),
]


@pytest.mark.parametrize(("body", "field", "message"), CEL_REFUSALS)
async def test_cel_rules_refuse_naming_the_field(
    admin: k8s.ApiClient, body: dict[str, Any], field: str, message: str
) -> None:
    """The apiserver names the field, our message repeats it, and openelb.api agrees."""
    with pytest.raises(k8s.ApiException) as rejected:
        await _create(admin, body)
    assert rejected.value.status == 422
    text = _message(rejected.value)
    assert f"{field}: " in text
    assert message in text
    parse = {"Eip": eip.Eip.parse, "BgpPeer": bgp.BgpPeer.parse}[body["kind"]]
    with pytest.raises(errors.InvalidObject) as refused:
        parse(body)
    assert refused.value.field == field


async def test_listen_port_minus_one_and_below_are_told_apart(admin: k8s.ApiClient) -> None:
    """-1 (listen nowhere) and 0 (the default) are valid v1alpha2 ports; -2 is not."""
    for port in (-1, 0):
        created = await _create(admin, _with(BGPCONF, listenPort=port))
        assert created["spec"]["listenPort"] == port
        await k8s.CustomObjectsApi(admin).delete_cluster_custom_object(
            GROUP, "v1alpha2", "bgpconfs", "default")
    with pytest.raises(k8s.ApiException) as rejected:
        await _create(admin, _with(BGPCONF, listenPort=-2))
    assert "spec.listenPort: " in _message(rejected.value)


OPENELB_PEER = _with(
    BGPPEER,
    conf={"peerAs": 64513, "neighborAddress": "192.0.2.254", "authPassword": "x" * 80},
    timers={"config": {"holdTime": "90", "keepaliveInterval": "30", "connectRetry": "5"}},
    ebgpMultihop={"enabled": True},
    transport={"passiveMode": False, "remotePort": 179, "remoteAddress": ""},
)


@pytest.mark.parametrize(
    "body",
    [
        OPENELB_PEER,
        _with(BGPPEER, timers={"config": {"holdTime": 0, "keepaliveInterval": 30}}),
        _with(BGPPEER, timers={"config": {"holdTime": 3, "keepaliveInterval": 1}}),
        _with(BGPPEER, timers={"config": {"keepaliveInterval": 30}}),
        _with(BGPPEER, ebgpMultihop={"enabled": False, "multihopTtl": 0}),
        _with(BGPPEER, transport={"remoteAddress": "2001:db8::1"}),
        _with(EIP, address="192.0.2.5-192.0.2.5"),
        _with(EIP, address="192.0.2.9-192.0.2.10"),
        _with(EIP, address="192.0.2.250-192.0.3.1"),
        # CEL cannot order IPv6 addresses: a reversed IPv6 range is the webhook's to refuse.
        _with(EIP, address="2001:db8::9-2001:db8::1"),
    ],
    ids=["openelb-peer", "hold-0-is-default", "hold-3", "keepalive-without-hold",
         "ttl-0-while-disabled", "remote-address-ipv6", "range-of-one", "range-in-number-order",
         "range-over-octet",
         "ipv6-range-reversed"],
)
async def test_cel_rules_accept_valid_objects(admin: k8s.ApiClient, body: dict[str, Any]) -> None:
    created = await _create(admin, copy.deepcopy(body))
    assert created["spec"] == body["spec"]


async def _table(api: k8s.ApiClient, path: str) -> dict[str, Any]:
    """The first row of `kubectl get`'s table for one object, by column name."""
    table: dict[str, Any] = await api.call_api(
        path, "GET",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        response_types_map={200: "object"}, auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )
    names = [column["name"] for column in table["columnDefinitions"]]
    return dict(zip(names, table["rows"][0]["cells"], strict=True))


READY = {"type": "Ready", "status": "True", "reason": "Established", "message": "",
         "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 1}


@pytest.mark.parametrize(
    ("body", "columns"),
    [
        (BGPCONF, {"as": 64512, "routerId": "192.0.2.1", "listenPort": 17900}),
        (BGPPEER, {"neighbor": "192.0.2.254", "peerAs": 64513}),
    ],
    ids=["bgpconf", "bgppeer"],
)
async def test_bgp_objects_keep_a_ready_condition_shown_as_a_column(
    admin: k8s.ApiClient, body: dict[str, Any], columns: dict[str, Any]
) -> None:
    created = await _create(admin, copy.deepcopy(body))
    plural = PLURALS[body["kind"]]
    name = body["metadata"]["name"]
    before = await _table(admin, f"/apis/{GROUP}/v1alpha2/{plural}/{name}")
    assert {**columns, "ready": None}.items() <= before.items()

    created["status"] = {"conditions": [READY]}
    updated = await k8s.CustomObjectsApi(admin).replace_cluster_custom_object_status(
        GROUP, "v1alpha2", plural, name, created)
    assert updated["status"]["conditions"] == [READY]
    after = await _table(admin, f"/apis/{GROUP}/v1alpha2/{plural}/{name}")
    assert {**columns, "ready": "True"}.items() <= after.items()

    updated["status"] = {"conditions": [{**READY, "status": "Maybe"}]}
    with pytest.raises(k8s.ApiException) as rejected:
        await k8s.CustomObjectsApi(admin).replace_cluster_custom_object_status(
            GROUP, "v1alpha2", plural, name, updated)
    assert "status.conditions[0].status: " in _message(rejected.value)
