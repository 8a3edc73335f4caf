"""The admission and conversion webhooks, called by the real kube-apiserver (DESIGN §5).

The controller runs as a process under its own ServiceAccount with the webhook on
127.0.0.1; the ValidatingWebhookConfiguration is deploy/components/15-webhook.yaml with
each `service:` reference turned into a `url:` (no Service network here) and no
caBundle: the controller makes its certificates and injects the CA itself, as it does
in a cluster. The CRDs' conversion goes to the same process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from kubernetes_asyncio import client as k8s

from openelb.api import annotations
from openelb.controller import pki
from openelb.kube import client, resources
from openelb.kube import errors as kube_errors
from openelb_testenv import components, manifests
from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane

REPO = Path(__file__).resolve().parents[3]
GROUP = "network.kubesphere.io"
CONFIGURATION = "openelb-admission"
CERT_SECRET = "openelb-webhook-cert"
SYSTEM = "openelb-system"
CONVERTED_CRDS = ("bgpconfs.network.kubesphere.io", "bgppeers.network.kubesphere.io")


def _webhook_configuration(port: int) -> dict[str, Any]:
    (config,) = [o for o in manifests.load(REPO / "deploy" / "components")
                 if o["kind"] == "ValidatingWebhookConfiguration"]
    for hook in config["webhooks"]:
        path = hook["clientConfig"].pop("service")["path"]
        hook["clientConfig"]["url"] = f"https://127.0.0.1:{port}{path}"
    return config


async def _ca_bundle_of(kube: client.Kube) -> set[str]:
    config = await kube.get(resources.VALIDATING_WEBHOOKS, CONFIGURATION)
    return {(h.get("clientConfig") or {}).get("caBundle", "") for h in config["webhooks"]}


class Webhooked:
    """A controller serving the webhooks, and the apiserver pointed at it."""

    def __init__(self, kube: client.Kube, controllers: Controllers) -> None:
        self.kube = kube
        self.controllers = controllers
        self.port = components.free_port()

    def args(self, port: int | None = None, *extra: str) -> list[str]:
        return ["--webhook-addr", f"127.0.0.1:{port or self.port}",
                "--webhook-names", "127.0.0.1", "--webhook-cert-check-interval", "0.5",
                *extra]

    async def start(self, identity: str = "a", *extra: str,
                    port: int | None = None, wait: str = "leading") -> harness.Controller:
        ctl = await self.controllers.start(identity, *self.args(port, *extra), wait=wait)
        await self.wait_injected()
        await self.wait_effective()
        return ctl

    async def wait_effective(self) -> None:
        """Until the apiserver really calls the webhook. It picks up a changed webhook
        configuration (the injected caBundle) asynchronously, through its own informer;
        until then a call fails TLS verification and failurePolicy Ignore admits.
        Probed with a dry-run create only the webhook refuses (a reversed IPv6 range;
        the CRD's CEL rule covers IPv4 only)."""

        async def refused() -> None:
            try:
                await self.kube.request("POST", resources.EIPS.path(),
                                        query={"dryRun": "All"},
                                        body=_eip("probe", "2001:db8::2-2001:db8::1"))
            except kube_errors.KubeError as exc:
                message = str(exc)
            else:
                message = "admitted"
            assert "range start 2001:db8::2 is after end" in message, message

        await harness.eventually(refused, what="apiserver calls the webhook")

    async def wait_injected(self) -> None:
        """Until the caBundle in the configuration is the CA in the Secret."""

        async def check() -> None:
            secret = await self.kube.get(resources.SECRETS, CERT_SECRET, SYSTEM)
            assert await _ca_bundle_of(self.kube) == {secret["data"]["ca.crt"]}

        await harness.eventually(check, what="caBundle injected")


async def _set_conversion(kube: client.Kube, admin: k8s.ApiClient,
                          conversions: dict[str, dict[str, Any]]) -> None:
    """Replace the CRDs' conversion settings; wait until their storage is back (a
    changed conversion re-initialises it: requests get 429 for a moment)."""
    changed = []
    for name, conversion in conversions.items():
        crd = await kube.get(resources.CRDS, name)
        crd["spec"]["conversion"] = conversion
        changed.append(await kube.replace(resources.CRDS, crd))
    await manifests.wait_served(admin, changed, 60)


@pytest.fixture
async def webhooked(admin_kube: client.Kube, admin: k8s.ApiClient, controllers: Controllers
                    ) -> AsyncIterator[Webhooked]:
    hooked = Webhooked(admin_kube, controllers)
    kube = admin_kube
    # A clean start: no configuration (test_rbac leaves an empty one), no certificates.
    with contextlib.suppress(kube_errors.NotFound):
        await kube.delete(resources.VALIDATING_WEBHOOKS, CONFIGURATION)
    with contextlib.suppress(kube_errors.NotFound):
        await kube.delete(resources.SECRETS, CERT_SECRET, SYSTEM)
    await kube.create(resources.VALIDATING_WEBHOOKS, _webhook_configuration(hooked.port))
    saved = {name: copy.deepcopy((await kube.get(resources.CRDS, name))["spec"]["conversion"])
             for name in CONVERTED_CRDS}
    await _set_conversion(kube, admin, {name: {
        "strategy": "Webhook", "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {"url": f"https://127.0.0.1:{hooked.port}/convert"}}}
        for name in CONVERTED_CRDS})
    try:
        yield hooked
    finally:
        await kube.delete(resources.VALIDATING_WEBHOOKS, CONFIGURATION)
        await _set_conversion(kube, admin, saved)
        # And the session's installer owns them again, as before this test (a later
        # test re-applies deploy/crds and expects no change).
        crds = [o for o in manifests.load(REPO / "deploy" / "crds")
                if o["metadata"]["name"] in CONVERTED_CRDS]
        await manifests.wait_served(admin, await manifests.apply(admin, crds), 60)


def _eip(name: str, address: str, *, default: bool = False, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {annotations.DEFAULT_EIP_ANNOTATION: "true"}
    return {"apiVersion": f"{GROUP}/v1alpha2", "kind": "Eip", "metadata": meta,
            "spec": {"address": address, **spec}}


async def _refused(kube: client.Kube, kind: resources.Resource, body: dict[str, Any]) -> str:
    """Create `body`; it must be refused: the apiserver's message."""
    try:
        await kube.create(kind, body)
    except kube_errors.KubeError as exc:
        return str(exc)
    raise AssertionError(f"{body['metadata']['name']} was admitted")


async def _seen(kube: client.Kube, kind: resources.Resource, body: dict[str, Any],
                refusal: str) -> None:
    """Until a dry-run create of `body` is refused with `refusal`: the webhook judges
    from its replica's informer cache, which shows an object created a moment ago a
    few milliseconds later (docs/webhook.md); a test that creates a pool and at once
    an overlapping one would otherwise race that cache, as two quick kubectl applies
    do."""

    async def probe() -> None:
        try:
            await kube.request("POST", kind.path(), query={"dryRun": "All"}, body=body)
        except kube_errors.KubeError as exc:
            message = str(exc)
        else:
            message = "admitted"
        assert refusal in message, message

    await harness.eventually(probe, what=f"the webhook's cache holds what {refusal!r} needs")


async def test_the_apiserver_refuses_what_only_the_webhook_can_see(
        webhooked: Webhooked) -> None:
    kube = webhooked.kube
    await webhooked.start()
    await kube.create(resources.EIPS, _eip("lan", "192.0.2.0/28", default=True))
    await _seen(kube, resources.EIPS, _eip("late", "192.0.2.8-192.0.2.20"), "overlaps eip/lan")

    overlap = await _refused(kube, resources.EIPS, _eip("late", "192.0.2.8-192.0.2.20"))
    assert "eip/late spec.address: 192.0.2.8-192.0.2.20 overlaps eip/lan" in overlap
    second = await _refused(kube, resources.EIPS, _eip("dc", "198.51.100.0/24", default=True))
    assert ("eip/dc metadata.annotations[eip.openelb.kubesphere.io/is-default-eip]: "
            "eip/lan is already the default Eip; only one may be") in second
    # (A reversed IPv4 range is already refused by the CRD's CEL rule; IPv6 is ours.)
    backwards = await _refused(kube, resources.EIPS,
                               _eip("back", "2001:db8::40-2001:db8::30"))
    assert "eip/back spec.address: range start 2001:db8::40 is after end 2001:db8::30" in (
        backwards)

    peer = {"apiVersion": f"{GROUP}/v1alpha2", "kind": "BgpPeer", "metadata": {"name": "tor"},
            "spec": {"conf": {"peerAs": 64513, "neighborAddress": "192.0.2.254"}}}
    await kube.create(resources.BGPPEERS, peer)
    await _seen(kube, resources.BGPPEERS, {**peer, "metadata": {"name": "tor-again"}},
                "already peers with")
    twin = await _refused(kube, resources.BGPPEERS,
                          {**peer, "metadata": {"name": "tor-again"}})
    assert ("bgppeer/tor-again spec.conf.neighborAddress: bgppeer/tor already peers with "
            "192.0.2.254 from the same nodes") in twin

    # Nothing refused was stored; what is valid still is.
    names = sorted(o["metadata"]["name"] for o in (await kube.list(resources.EIPS)).items)
    assert names == ["lan"]
    await kube.create(resources.EIPS, _eip("dc", "198.51.100.0/24"))


async def test_services_get_warnings_not_refusals(webhooked: Webhooked, admin: k8s.ApiClient,
                                                  namespace: str) -> None:
    await webhooked.start()
    body = {"metadata": {"name": "web", "annotations": {
        annotations.LB_ANNOTATION: annotations.LB_ANNOTATION_VALUE,
        annotations.POOL_ANNOTATION: "no-such-pool"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": "web"}}}
    _, status, headers = await k8s.CoreV1Api(admin).create_namespaced_service_with_http_info(
        namespace, body)
    assert status == 201
    warnings = headers.getall("Warning", [])
    assert any("eip/no-such-pool does not exist" in w for w in warnings), warnings


async def test_a_standby_replica_answers_too(webhooked: Webhooked) -> None:
    kube = webhooked.kube
    await webhooked.controllers.start("leader", *webhooked.args(components.free_port()))
    standby = await webhooked.start("standby", wait="ready")
    assert not await standby.is_leading()
    await kube.create(resources.EIPS, _eip("lan", "192.0.2.0/28"))
    await _seen(kube, resources.EIPS, _eip("late", "192.0.2.0/30"), "overlaps eip/lan")
    refused = await _refused(kube, resources.EIPS, _eip("late", "192.0.2.0/30"))
    assert "overlaps eip/lan" in refused


async def test_with_the_webhook_down_cel_still_refuses_and_valid_objects_pass(
        webhooked: Webhooked) -> None:
    """failurePolicy Ignore: nobody answers, nothing is blocked; the schema's own rules
    still hold for every mistake within one object."""
    kube = webhooked.kube
    ctl = await webhooked.start()
    await kube.create(resources.EIPS, _eip("lan", "192.0.2.0/28"))
    await ctl.stop()
    no_nic = await _refused(kube, resources.EIPS, _eip("l2", "203.0.113.0/28",
                                                       protocol="layer2"))
    assert "spec.interface is required when spec.protocol is layer2 or vip" in no_nic
    moved = await kube.get(resources.EIPS, "lan")
    moved["spec"]["address"] = "192.0.2.0/27"
    with pytest.raises(kube_errors.KubeError, match=r"spec\.address is immutable"):
        await kube.replace(resources.EIPS, moved)
    # An overlap only the webhook sees is admitted (the controller flags it later).
    await kube.create(resources.EIPS, _eip("late", "192.0.2.0/30"))


async def test_a_certificate_rotation_under_a_stream_of_admissions_loses_none(
        webhooked: Webhooked) -> None:
    """Serving certificates live 6 s (renewed every ~4 s) and the CA 60 s (renewed at
    ~40 s). For 50 s a stream of overlapping Eips is sent: each must be refused by the
    webhook. With failurePolicy Ignore an unanswered review would admit the Eip, so
    one admitted object is one review lost."""
    kube = webhooked.kube
    await webhooked.start("a", "--webhook-cert-lifetime", "6")
    await kube.create(resources.EIPS, _eip("lan", "192.0.2.0/24"))
    await _seen(kube, resources.EIPS, _eip("probe", "192.0.2.77"), "overlaps eip/lan")
    certs: set[str] = set()
    cas: set[bytes] = set()
    refused = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 50
    index = 0
    while loop.time() < deadline:
        index += 1
        message = await _refused(kube, resources.EIPS,
                                 _eip(f"stream-{index}", f"192.0.2.{index % 250}"))
        assert "overlaps eip/lan" in message, message
        refused += 1
        secret = await kube.get(resources.SECRETS, CERT_SECRET, SYSTEM)
        certs.add(secret["data"]["tls.crt"])
        bundle = pki.certificates(base64.b64decode(secret["data"]["ca.crt"]))
        cas.add(bundle[0].fingerprint(hashes.SHA256()))
        await asyncio.sleep(0.05)
    assert len(certs) >= 8, f"only {len(certs)} serving certificates in 50 s"
    assert len(cas) >= 2, "the CA was never rotated"
    assert refused == index
    listed = await kube.list(resources.EIPS)
    assert [o["metadata"]["name"] for o in listed.items] == ["lan"]


async def test_openelb_v1alpha1_samples_apply_and_read_back_unchanged(
        webhooked: Webhooked) -> None:
    kube = webhooked.kube
    await webhooked.start()
    for path in sorted((REPO / "examples" / "openelb" / "v1alpha1").glob("*.yaml")):
        (body,) = manifests.load(path)
        plural = {"BgpConf": "bgpconfs", "BgpPeer": "bgppeers"}[body["kind"]]
        v1 = resources.Resource(GROUP, "v1alpha1", plural, body["kind"], False)
        await kube.create(v1, copy.deepcopy(body))
        again = await kube.get(v1, body["metadata"]["name"])
        assert again["spec"] == body["spec"], path.name
        stored = await kube.get(resources.BGPCONFS if plural == "bgpconfs"
                                else resources.BGPPEERS, body["metadata"]["name"])
        if plural == "bgppeers":
            assert stored["spec"]["conf"] == body["spec"]["config"]
            assert stored["spec"]["afiSafis"][0]["addPaths"]["config"]["sendMax"] == 3
            assert stored["spec"]["transport"] == body["spec"]["transport"]
        else:
            assert stored["spec"] == {"as": 64700, "routerId": "192.0.2.2",
                                      "listenPort": 17900}


async def test_v1alpha1_bgp_objects_are_served_and_round_trip(
        webhooked: Webhooked) -> None:
    kube = webhooked.kube
    await webhooked.start()
    v1 = resources.Resource(GROUP, "v1alpha1", "bgpconfs", "BgpConf", False)
    # OpenELB's v1alpha1 BgpConf sample shape: as, routerID, port.
    await kube.create(v1, {"apiVersion": f"{GROUP}/v1alpha1", "kind": "BgpConf",
                           "metadata": {"name": "default"},
                           "spec": {"as": 50000, "routerID": "192.0.2.1", "port": 17900}})
    stored = await kube.get(resources.BGPCONFS, "default")
    assert stored["spec"] == {"as": 50000, "routerId": "192.0.2.1", "listenPort": 17900}
    again = await kube.get(v1, "default")
    assert again["spec"] == {"as": 50000, "routerID": "192.0.2.1", "port": 17900}

    peers_v1 = resources.Resource(GROUP, "v1alpha1", "bgppeers", "BgpPeer", False)
    rich = {"apiVersion": f"{GROUP}/v1alpha2", "kind": "BgpPeer", "metadata": {"name": "tor"},
            "spec": {"conf": {"peerAs": 64513, "neighborAddress": "192.0.2.254",
                              "authPassword": "s3cret"},
                     "ebgpMultihop": {"enabled": True, "multihopTtl": 3},
                     "timers": {"config": {"holdTime": "9", "keepaliveInterval": "3"}},
                     "afiSafis": [{"config": {"family": {"afi": "AFI_IP",
                                                         "safi": "SAFI_UNICAST"},
                                              "enabled": True},
                                   "addPaths": {"config": {"sendMax": 8}}}],
                     "nodeSelector": {"matchLabels": {"rack": "a"}}}}
    await kube.create(resources.BGPPEERS, rich)

    async def judged() -> dict[str, Any]:
        # The controller writes the Ready condition; read after it, or the write
        # below would race it (409) instead of testing the conversion.
        found = await kube.get(resources.BGPPEERS, "tor")
        assert (found.get("status") or {}).get("conditions"), "no Ready condition yet"
        return found

    original = await harness.eventually(judged, what="tor judged by the controller")
    old = await kube.get(peers_v1, "tor")
    assert old["spec"]["config"] == {"peerAs": 64513, "neighborAddress": "192.0.2.254"}
    assert old["spec"]["addPaths"] == {"sendMax": 8}
    # A v1alpha1 client writes the object back unchanged: nothing is lost.
    await kube.replace(peers_v1, old)
    after = await kube.get(resources.BGPPEERS, "tor")
    assert after["spec"] == original["spec"]
    assert json.dumps(after["metadata"].get("annotations") or {}) == json.dumps(
        original["metadata"].get("annotations") or {})


async def _write_external(kube: client.Kube, bundle: pki.Bundle) -> None:
    """What cert-manager does: the Secret with ca.crt, tls.crt and tls.key (no CA key)."""
    data = {"ca.crt": base64.b64encode(bundle.trusted).decode(),
            "tls.crt": base64.b64encode(bundle.cert).decode(),
            "tls.key": base64.b64encode(bundle.key).decode()}
    try:
        secret = await kube.get(resources.SECRETS, CERT_SECRET, SYSTEM)
    except kube_errors.NotFound:
        await kube.create(resources.SECRETS, {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": CERT_SECRET, "namespace": SYSTEM}, "data": data}, SYSTEM)
        return
    await kube.replace(resources.SECRETS, {**secret, "data": data}, SYSTEM)


async def _set_ca_bundle(kube: client.Kube, trusted: bytes) -> None:
    """What cert-manager's cainjector does."""
    config = await kube.get(resources.VALIDATING_WEBHOOKS, CONFIGURATION)
    for hook in config["webhooks"]:
        hook["clientConfig"]["caBundle"] = base64.b64encode(trusted).decode()
    await kube.replace(resources.VALIDATING_WEBHOOKS, config)


async def _served_certificate(port: int) -> bytes:
    pem = await asyncio.to_thread(ssl.get_server_certificate, ("127.0.0.1", port))
    return pem.encode()


async def test_external_certificates_are_served_and_reloaded_untouched(
        webhooked: Webhooked) -> None:
    """--webhook-cert-mode=external (cert-manager): the controller serves the Secret it
    is given, picks up a renewal without restarting, and never writes the Secret or a
    caBundle."""
    kube = webhooked.kube
    now = datetime.datetime.now(datetime.UTC)
    first = pki.Bundle.fresh(["127.0.0.1"], now, pki.Lifetimes())
    await _write_external(kube, first)
    await _set_ca_bundle(kube, first.trusted)
    await webhooked.controllers.start("a", *webhooked.args(None, "--webhook-cert-mode",
                                                           "external"))
    await kube.create(resources.EIPS, _eip("lan", "192.0.2.0/28"))

    async def refused_by_webhook() -> None:
        message = await _refused(kube, resources.EIPS, _eip("late", "192.0.2.0/30"))
        assert "overlaps eip/lan" in message

    await _seen(kube, resources.EIPS, _eip("late", "192.0.2.0/30"), "overlaps eip/lan")
    await refused_by_webhook()  # the first certificate is served
    second = pki.Bundle.fresh(["127.0.0.1"], now, pki.Lifetimes())
    await _set_ca_bundle(kube, first.trusted + second.trusted)
    await _write_external(kube, second)
    written = (await kube.get(resources.SECRETS, CERT_SECRET, SYSTEM))["metadata"][
        "resourceVersion"]

    async def second_served() -> None:
        served = pki.certificates(await _served_certificate(webhooked.port))[0]
        assert served == pki.certificates(second.cert)[0]

    await harness.eventually(second_served, what="renewed certificate served")
    await _set_ca_bundle(kube, second.trusted)
    await refused_by_webhook()
    await asyncio.sleep(2)  # four check intervals: nothing of ours may be rewritten
    secret = await kube.get(resources.SECRETS, CERT_SECRET, SYSTEM)
    assert secret["metadata"]["resourceVersion"] == written
    assert await _ca_bundle_of(kube) == {base64.b64encode(second.trusted).decode()}
