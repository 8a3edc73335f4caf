"""deploy/rbac on a real kube-apiserver: each component may do its job and nothing more.

Every action is a real request made with the component's own ServiceAccount token
(TokenRequest), against objects that exist, so "allowed" means the request succeeded
and "forbidden" means the apiserver answered 403.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

pytestmark = pytest.mark.controlplane

GROUP = "network.kubesphere.io"
SYSTEM = "openelb-system"
CONTROLLER_LEASE = "openelb-controller"  # the controller's leader Lease (controller/manager.py)
WEBHOOK_CERT = "openelb-webhook-cert"  # controller/certs.py
HEARTBEAT_SECRET = "openelb-speaker-heartbeat"  # speaker/modes/layer2.py
WEBHOOK_CONFIGURATION = "openelb-admission"  # deploy/components/15-webhook.yaml
MERGE = "application/merge-patch+json"


@dataclasses.dataclass(frozen=True)
class World:
    """Objects the actions work on; created by the admin for each test."""

    namespace: str
    service: str
    secret: str  # in `namespace`
    system_secret: str  # in openelb-system
    eip: str
    bgpconf: str
    bgppeer: str
    suffix: str


Action = Callable[[k8s.ApiClient, World], Awaitable[Any]]


@pytest.fixture
async def world(admin: k8s.ApiClient, namespace: str) -> AsyncIterator[World]:
    suffix = uuid.uuid4().hex[:8]
    core = k8s.CoreV1Api(admin)
    custom = k8s.CustomObjectsApi(admin)
    w = World(
        namespace=namespace,
        service="web",
        secret="app-secret",
        system_secret=f"openelb-test-{suffix}",
        eip=f"pool-{suffix}",
        bgpconf="default",
        bgppeer=f"tor-{suffix}",
        suffix=suffix,
    )
    await core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": w.service},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": "web"}},
        },
    )
    await core.create_namespaced_secret(
        namespace, {"metadata": {"name": w.secret}, "stringData": {"k": "v"}}
    )
    await core.create_namespaced_secret(
        SYSTEM, {"metadata": {"name": w.system_secret}, "stringData": {"k": "v"}}
    )
    for plural, body in (
        ("eips", {"metadata": {"name": w.eip}, "spec": {"address": "192.0.2.0/28"}}),
        ("bgpconfs", {"metadata": {"name": w.bgpconf}, "spec": {"as": 64512}}),
        (
            "bgppeers",
            {
                "metadata": {"name": w.bgppeer},
                "spec": {"conf": {"peerAs": 64513, "neighborAddress": "192.0.2.254"}},
            },
        ),
    ):
        kind = {"eips": "Eip", "bgpconfs": "BgpConf", "bgppeers": "BgpPeer"}[plural]
        await custom.create_cluster_custom_object(
            GROUP, "v1alpha2", plural, {"apiVersion": f"{GROUP}/v1alpha2", "kind": kind, **body}
        )
    admission = k8s.AdmissionregistrationV1Api(admin)
    try:
        await admission.read_validating_webhook_configuration(WEBHOOK_CONFIGURATION)
    except k8s.ApiException:  # an empty one: the controller's rights are on its name
        await admission.create_validating_webhook_configuration(
            {"metadata": {"name": WEBHOOK_CONFIGURATION}, "webhooks": []})
    yield w
    await core.delete_namespaced_secret(w.system_secret, SYSTEM)
    for lease in (await k8s.CoordinationV1Api(admin).list_namespaced_lease(SYSTEM)).items:
        if lease.metadata.name.endswith(suffix):
            await k8s.CoordinationV1Api(admin).delete_namespaced_lease(lease.metadata.name, SYSTEM)


# -- actions -------------------------------------------------------------------------------


async def _watch(api: k8s.ApiClient, path: str) -> None:
    """Open a watch (RBAC verb `watch`) and close it at once; raise on a refusal."""
    response = await api.call_api(
        path,
        "GET",
        query_params=[("watch", "true"), ("timeoutSeconds", "1")],
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
    )
    try:
        if response.status != 200:
            raise k8s.ApiException(status=response.status, reason=response.reason)
    finally:
        response.release()


def _core(api: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(api)


def _custom(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


async def list_services(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).list_service_for_all_namespaces()


async def watch_services(api: k8s.ApiClient, w: World) -> Any:
    return await _watch(api, "/api/v1/services")


async def get_service(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).read_namespaced_service(w.service, w.namespace)


async def label_service(api: k8s.ApiClient, w: World) -> Any:
    body = {"metadata": {"labels": {"eip.openelb.kubesphere.io/v1alpha2": w.eip}}}
    return await _core(api).patch_namespaced_service(w.service, w.namespace, body)


async def replace_service(api: k8s.ApiClient, w: World) -> Any:
    current = await k8s.CoreV1Api(api).read_namespaced_service(w.service, w.namespace)
    return await _core(api).replace_namespaced_service(w.service, w.namespace, current)


async def add_and_remove_service_finalizer(api: k8s.ApiClient, w: World) -> Any:
    finalizer = {"metadata": {"finalizers": ["finalizer.lb.kubesphere.io/v1alpha1"]}}
    await _core(api).patch_namespaced_service(w.service, w.namespace, finalizer)
    return await _core(api).patch_namespaced_service(
        w.service, w.namespace, {"metadata": {"finalizers": None}}, _content_type=MERGE
    )


async def set_service_ingress(api: k8s.ApiClient, w: World) -> Any:
    body = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    return await _core(api).patch_namespaced_service_status(w.service, w.namespace, body)


async def create_service(api: k8s.ApiClient, w: World) -> Any:
    body = {"metadata": {"name": "other"}, "spec": {"ports": [{"port": 81}]}}
    return await _core(api).create_namespaced_service(w.namespace, body)


async def delete_service(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).delete_namespaced_service(w.service, w.namespace)


async def list_endpointslices(api: k8s.ApiClient, w: World) -> Any:
    return await k8s.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces()


async def watch_endpointslices(api: k8s.ApiClient, w: World) -> Any:
    return await _watch(api, "/apis/discovery.k8s.io/v1/endpointslices")


async def list_nodes(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).list_node()


async def watch_nodes(api: k8s.ApiClient, w: World) -> Any:
    return await _watch(api, "/api/v1/nodes")


async def list_namespaces(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).list_namespace()


async def read_kube_system_namespace(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).read_namespace("kube-system")


async def read_another_namespace(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).read_namespace(w.namespace)


async def watch_namespaces(api: k8s.ApiClient, w: World) -> Any:
    return await _watch(api, "/api/v1/namespaces")


def _list_openelb(plural: str) -> Action:
    async def action(api: k8s.ApiClient, w: World) -> Any:
        return await _custom(api).list_cluster_custom_object(GROUP, "v1alpha2", plural)

    action.__name__ = f"list_{plural}"
    return action


def _watch_openelb(plural: str) -> Action:
    async def action(api: k8s.ApiClient, w: World) -> Any:
        return await _watch(api, f"/apis/{GROUP}/v1alpha2/{plural}")

    action.__name__ = f"watch_{plural}"
    return action


async def list_node_announcements(api: k8s.ApiClient, w: World) -> Any:
    return await _custom(api).list_cluster_custom_object(
        "openelb.kubesphere.io", "v1alpha1", "nodeannouncements")


async def watch_node_announcements(api: k8s.ApiClient, w: World) -> Any:
    return await _watch(api, "/apis/openelb.kubesphere.io/v1alpha1/nodeannouncements")


async def add_eip_finalizer(api: k8s.ApiClient, w: World) -> Any:
    body = {"metadata": {"finalizers": ["finalizer.ipam.kubesphere.io/v1alpha1"]}}
    return await _custom(api).patch_cluster_custom_object(
        GROUP, "v1alpha2", "eips", w.eip, body, _content_type=MERGE
    )


async def set_eip_status(api: k8s.ApiClient, w: World) -> Any:
    body = {"status": {"usage": 1, "poolSize": 14, "ready": True}}
    return await _custom(api).patch_cluster_custom_object_status(
        GROUP, "v1alpha2", "eips", w.eip, body, _content_type=MERGE
    )


async def create_eip(api: k8s.ApiClient, w: World) -> Any:
    body = {
        "apiVersion": f"{GROUP}/v1alpha2",
        "kind": "Eip",
        "metadata": {"name": f"new-{w.suffix}"},
        "spec": {"address": "198.51.100.0/28"},
    }
    return await _custom(api).create_cluster_custom_object(GROUP, "v1alpha2", "eips", body)


async def delete_eip(api: k8s.ApiClient, w: World) -> Any:
    return await _custom(api).delete_cluster_custom_object(GROUP, "v1alpha2", "eips", w.eip)


async def set_bgpconf_status(api: k8s.ApiClient, w: World) -> Any:
    body = {"status": {"nodesConfStatus": {"node-a": {"routerId": "192.0.2.2", "as": 64512}}}}
    return await _custom(api).patch_cluster_custom_object_status(
        GROUP, "v1alpha2", "bgpconfs", w.bgpconf, body, _content_type=MERGE
    )


async def set_bgppeer_status(api: k8s.ApiClient, w: World) -> Any:
    body = {
        "status": {"nodesPeerStatus": {"node-a": {"peerState": {"sessionState": "ESTABLISHED"}}}}
    }
    return await _custom(api).patch_cluster_custom_object_status(
        GROUP, "v1alpha2", "bgppeers", w.bgppeer, body, _content_type=MERGE
    )


async def change_bgpconf(api: k8s.ApiClient, w: World) -> Any:
    return await _custom(api).patch_cluster_custom_object(
        GROUP, "v1alpha2", "bgpconfs", w.bgpconf, {"spec": {"as": 65000}}, _content_type=MERGE
    )


async def change_bgppeer(api: k8s.ApiClient, w: World) -> Any:
    body = {"spec": {"conf": {"peerAs": 65001}}}
    return await _custom(api).patch_cluster_custom_object(
        GROUP, "v1alpha2", "bgppeers", w.bgppeer, body, _content_type=MERGE
    )


async def create_core_event(api: k8s.ApiClient, w: World) -> Any:
    body = {
        "metadata": {"generateName": "openelb-test-"},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Service",
            "namespace": w.namespace,
            "name": w.service,
        },
        "reason": "AssignIP",
        "message": "address assigned",
        "type": "Normal",
        "source": {"component": "openelb-test"},
    }
    return await _core(api).create_namespaced_event(w.namespace, body)


async def create_events_k8s_io_event(api: k8s.ApiClient, w: World) -> Any:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {
        "metadata": {"generateName": "openelb-test-"},
        "eventTime": now,
        "reportingController": "openelb.kubesphere.io/test",
        "reportingInstance": "test",
        "action": "Announce",
        "reason": "AssignIP",
        "note": "address assigned",
        "type": "Normal",
        "regarding": {
            "apiVersion": "v1",
            "kind": "Service",
            "namespace": w.namespace,
            "name": w.service,
        },
    }
    return await k8s.EventsV1Api(api).create_namespaced_event(w.namespace, body)


def _lease(w: World) -> dict[str, Any]:
    return {
        "metadata": {"name": f"openelb-test-{w.suffix}"},
        "spec": {"holderIdentity": "test", "leaseDurationSeconds": 15},
    }


async def hold_lease_in_openelb_system(api: k8s.ApiClient, w: World) -> Any:
    coordination = k8s.CoordinationV1Api(api)
    lease = await coordination.create_namespaced_lease(SYSTEM, _lease(w))
    lease.spec.holder_identity = "renewed"
    await coordination.replace_namespaced_lease(lease.metadata.name, SYSTEM, lease)
    await coordination.list_namespaced_lease(SYSTEM)
    return await coordination.read_namespaced_lease(lease.metadata.name, SYSTEM)


async def forge_the_controller_lease(api: k8s.ApiClient, w: World) -> Any:
    """The attack run's move: make the controller's leader Lease another holder's,
    for 2e9 seconds, which stopped IP assignment cluster-wide (issue #19)."""
    coordination = k8s.CoordinationV1Api(api)
    forged = {"holderIdentity": "intruder", "leaseDurationSeconds": 2_000_000_000}
    try:
        lease = await coordination.read_namespaced_lease(CONTROLLER_LEASE, SYSTEM)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
        return await coordination.create_namespaced_lease(
            SYSTEM, {"metadata": {"name": CONTROLLER_LEASE}, "spec": forged})
    lease.spec.holder_identity = forged["holderIdentity"]
    lease.spec.lease_duration_seconds = forged["leaseDurationSeconds"]
    return await coordination.replace_namespaced_lease(CONTROLLER_LEASE, SYSTEM, lease)


async def create_lease_elsewhere(api: k8s.ApiClient, w: World) -> Any:
    return await k8s.CoordinationV1Api(api).create_namespaced_lease(w.namespace, _lease(w))


async def read_heartbeat_secret(api: k8s.ApiClient, w: World) -> Any:
    """What the speaker does every 30 s: get the heartbeat key's Secret by name."""
    core = _core(api)
    try:
        return await core.read_namespaced_secret(HEARTBEAT_SECRET, SYSTEM)
    except k8s.ApiException as exc:
        if exc.status != 404:  # not created yet by a controller: the read was allowed
            raise
        return None


async def create_secret_in_openelb_system(api: k8s.ApiClient, w: World) -> Any:
    # The control plane is thrown away after the session: no cleanup needed.
    name = f"{w.system_secret}-{uuid.uuid4().hex[:6]}"
    return await _core(api).create_namespaced_secret(
        SYSTEM, {"metadata": {"name": name}, "stringData": {"k": "v"}})


async def renew_webhook_cert_secret(api: k8s.ApiClient, w: World) -> Any:
    """What controller/certs.py does: read its Secret, create it if missing, rewrite it."""
    core = _core(api)
    try:
        secret = await core.read_namespaced_secret(WEBHOOK_CERT, SYSTEM)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
        secret = await core.create_namespaced_secret(
            SYSTEM, {"metadata": {"name": WEBHOOK_CERT}, "stringData": {"tls.crt": ""}})
    secret.string_data = {"tls.crt": w.suffix}
    return await core.replace_namespaced_secret(WEBHOOK_CERT, SYSTEM, secret)


async def read_other_secret_in_openelb_system(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).read_namespaced_secret(w.system_secret, SYSTEM)


async def list_secrets_in_openelb_system(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).list_namespaced_secret(SYSTEM)


async def inject_ca_into_own_webhook_configuration(api: k8s.ApiClient, w: World) -> Any:
    admission = k8s.AdmissionregistrationV1Api(api)
    config = await admission.read_validating_webhook_configuration(WEBHOOK_CONFIGURATION)
    return await admission.replace_validating_webhook_configuration(
        WEBHOOK_CONFIGURATION, config)


async def read_other_webhook_configuration(api: k8s.ApiClient, w: World) -> Any:
    return await k8s.AdmissionregistrationV1Api(api).read_validating_webhook_configuration(
        "someone-elses")


async def inject_ca_into_bgp_crds(api: k8s.ApiClient, w: World) -> Any:
    crds = k8s.ApiextensionsV1Api(api)
    for name in ("bgpconfs.network.kubesphere.io", "bgppeers.network.kubesphere.io"):
        await crds.read_custom_resource_definition(name)
        await crds.patch_custom_resource_definition(name, {"metadata": {}})


async def patch_eip_crd(api: k8s.ApiClient, w: World) -> Any:
    return await k8s.ApiextensionsV1Api(api).patch_custom_resource_definition(
        "eips.network.kubesphere.io", {"metadata": {}})


async def write_node_announcement(api: k8s.ApiClient, w: World) -> Any:
    """What a speaker does with its node's record: create, patch, delete."""
    custom = _custom(api)
    body = {"apiVersion": "openelb.kubesphere.io/v1alpha1", "kind": "NodeAnnouncement",
            "metadata": {"name": f"node-{w.suffix}"}, "status": {"layer2Count": 0}}
    await custom.create_cluster_custom_object("openelb.kubesphere.io", "v1alpha1",
                                              "nodeannouncements", body)
    await custom.patch_cluster_custom_object(
        "openelb.kubesphere.io", "v1alpha1", "nodeannouncements", f"node-{w.suffix}",
        {"status": {"layer2Count": 1}}, _content_type=MERGE)
    return await custom.delete_cluster_custom_object(
        "openelb.kubesphere.io", "v1alpha1", "nodeannouncements", f"node-{w.suffix}")


async def create_secret_elsewhere(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).create_namespaced_secret(
        w.namespace, {"metadata": {"name": "openelb-new"}, "stringData": {"k": "v"}})


async def read_secret_elsewhere(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).read_namespaced_secret(w.secret, w.namespace)


async def list_secrets_elsewhere(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).list_namespaced_secret(w.namespace)


async def list_all_secrets(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).list_secret_for_all_namespaces()


async def list_pods(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).list_namespaced_pod(w.namespace)


async def list_all_pods(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).list_pod_for_all_namespaces()


async def create_pod(api: k8s.ApiClient, w: World) -> Any:
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    return await _core(api).create_namespaced_pod(w.namespace, body)


async def delete_pods(api: k8s.ApiClient, w: World) -> Any:
    return await _core(api).delete_collection_namespaced_pod(w.namespace)


async def create_pod_in_openelb_system(api: k8s.ApiClient, w: World) -> Any:
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    return await _core(api).create_namespaced_pod(SYSTEM, body)


def _cases(*actions: Action) -> Any:
    return pytest.mark.parametrize("action", actions, ids=[a.__name__ for a in actions])


# -- the promises ----------------------------------------------------------------------------


@_cases(
    list_services,
    watch_services,
    get_service,
    label_service,
    add_and_remove_service_finalizer,
    set_service_ingress,
    _list_openelb("eips"),
    _watch_openelb("eips"),
    add_eip_finalizer,
    set_eip_status,
    _list_openelb("bgpconfs"),
    _watch_openelb("bgpconfs"),
    _list_openelb("bgppeers"),
    _watch_openelb("bgppeers"),
    list_namespaces,
    watch_namespaces,
    list_nodes,
    watch_nodes,
    create_core_event,
    create_events_k8s_io_event,
    hold_lease_in_openelb_system,
    renew_webhook_cert_secret,
    create_secret_in_openelb_system,
    inject_ca_into_own_webhook_configuration,
    inject_ca_into_bgp_crds,
    set_bgppeer_status,  # its Ready condition
    list_node_announcements,  # openelb_addresses_unannounced
    watch_node_announcements,
)
async def test_controller_may_do_what_ipam_needs(
    as_controller: k8s.ApiClient, world: World, action: Action
) -> None:
    await action(as_controller, world)


@_cases(
    read_secret_elsewhere,
    create_secret_elsewhere,
    list_secrets_elsewhere,
    list_all_secrets,
    read_other_secret_in_openelb_system,
    list_secrets_in_openelb_system,
    read_other_webhook_configuration,
    patch_eip_crd,
    list_pods,
    list_all_pods,
    create_pod,
    create_pod_in_openelb_system,
    delete_pods,
    create_service,
    delete_service,
    create_eip,
    delete_eip,
    change_bgpconf,
    change_bgppeer,
    list_endpointslices,
    create_lease_elsewhere,
    write_node_announcement,
)
async def test_controller_may_not_do_what_it_does_not_need(
    as_controller: k8s.ApiClient, world: World, action: Action
) -> None:
    with pytest.raises(k8s.ApiException) as refused:
        await action(as_controller, world)
    assert refused.value.status == 403


@_cases(
    list_services,
    watch_services,
    get_service,
    list_endpointslices,
    watch_endpointslices,
    list_nodes,
    watch_nodes,
    _list_openelb("eips"),
    _watch_openelb("eips"),
    _list_openelb("bgpconfs"),
    _watch_openelb("bgpconfs"),
    _list_openelb("bgppeers"),
    _watch_openelb("bgppeers"),
    set_bgpconf_status,
    set_bgppeer_status,
    create_core_event,
    create_events_k8s_io_event,
    read_heartbeat_secret,
    read_kube_system_namespace,
    write_node_announcement,
)
async def test_speaker_may_do_what_announcing_needs(
    as_speaker: k8s.ApiClient, world: World, action: Action
) -> None:
    await action(as_speaker, world)


@_cases(
    label_service,
    replace_service,
    add_and_remove_service_finalizer,
    set_service_ingress,
    create_service,
    delete_service,
    add_eip_finalizer,
    set_eip_status,
    create_eip,
    delete_eip,
    change_bgpconf,
    change_bgppeer,
    read_secret_elsewhere,
    create_secret_in_openelb_system,
    list_secrets_elsewhere,
    list_all_secrets,
    read_other_secret_in_openelb_system,
    list_secrets_in_openelb_system,
    list_pods,
    list_all_pods,
    create_pod,
    create_pod_in_openelb_system,
    delete_pods,
    list_namespaces,
    read_another_namespace,
    create_lease_elsewhere,
    hold_lease_in_openelb_system,
    forge_the_controller_lease,
)
async def test_speaker_may_not_change_services_pods_or_read_foreign_secrets(
    as_speaker: k8s.ApiClient, world: World, action: Action
) -> None:
    with pytest.raises(k8s.ApiException) as refused:
        await action(as_speaker, world)
    assert refused.value.status == 403


async def test_allowed_writes_really_landed(
    admin: k8s.ApiClient, as_controller: k8s.ApiClient, as_speaker: k8s.ApiClient, world: World
) -> None:
    """The allowed writes are not no-ops: the admin sees what each component wrote."""
    await set_service_ingress(as_controller, world)
    await set_bgppeer_status(as_speaker, world)
    service = await k8s.CoreV1Api(admin).read_namespaced_service(world.service, world.namespace)
    peer = await k8s.CustomObjectsApi(admin).get_cluster_custom_object(
        GROUP, "v1alpha2", "bgppeers", world.bgppeer
    )
    assert service.status.load_balancer.ingress[0].ip == "192.0.2.1"
    assert peer["status"]["nodesPeerStatus"]["node-a"]["peerState"]["sessionState"] == (
        "ESTABLISHED"
    )
