"""Visible state: Eip, BgpConf and BgpPeer carry a Ready condition saying whether they
are used and why not, and `kubectl get` shows it (issue #12, item 5).

No webhook runs here, as when every controller replica is down during an install:
what the webhook would have refused is admitted, and these conditions are then what
tells the user.
"""

from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from openelb.kube import client, resources
from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane

GROUP = "network.kubesphere.io/v1alpha2"


async def _ready(kube: client.Kube, kind: resources.Resource, name: str, status: str,
                 reason: str, contains: str = "") -> dict[str, Any]:
    async def check() -> dict[str, Any]:
        raw = await kube.get(kind, name)
        found = next((c for c in (raw.get("status") or {}).get("conditions") or ()
                      if c.get("type") == "Ready"), None)
        assert found is not None, f"{kind.kind}/{name}: no Ready condition"
        assert (found["status"], found["reason"]) == (status, reason), found
        assert contains in found["message"], found
        assert found["observedGeneration"] == raw["metadata"]["generation"]
        return found

    return await harness.eventually(check, what=f"{kind.kind}/{name} Ready={status}")


async def _table(api: k8s.ApiClient, plural: str) -> dict[str, dict[str, Any]]:
    """What `kubectl get <plural>` prints: the server-side table, by object name."""
    table = await api.call_api(
        f"/apis/network.kubesphere.io/v1alpha2/{plural}", "GET",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        response_types_map={200: "object"}, auth_settings=["BearerToken"],
        _return_http_data_only=True)
    names = [c["name"] for c in table["columnDefinitions"]]
    return {row["cells"][0]: dict(zip(names, row["cells"], strict=True))
            for row in table["rows"]}


async def test_eips_say_whether_they_hand_out_addresses(
        cluster: harness.Cluster, controllers: Controllers, admin: k8s.ApiClient) -> None:
    await controllers.start()
    await cluster.create_eip("lan", "192.0.2.0/28")
    await _ready(cluster.kube, resources.EIPS, "lan", "True", "Accepted")
    await cluster.create_eip("late", "192.0.2.8/29")
    await _ready(cluster.kube, resources.EIPS, "late", "False", "Conflict",
                 "192.0.2.8/29 overlaps eip/lan")
    await cluster.patch_eip("lan", {"spec": {"disable": True}})
    await _ready(cluster.kube, resources.EIPS, "lan", "True", "Disabled")
    rows = await _table(admin, "eips")
    assert rows["late"]["ready"] is False
    assert rows["lan"]["ready"] is True


async def test_bgp_objects_say_whether_the_speakers_use_them(
        cluster: harness.Cluster, controllers: Controllers, admin: k8s.ApiClient) -> None:
    kube = cluster.kube
    await controllers.start()
    await kube.create(resources.BGPCONFS, {"apiVersion": GROUP, "kind": "BgpConf",
                                           "metadata": {"name": "default"},
                                           "spec": {"as": 64512}})
    await kube.create(resources.BGPCONFS, {"apiVersion": GROUP, "kind": "BgpConf",
                                           "metadata": {"name": "mine"},
                                           "spec": {"as": 64512}})
    await _ready(kube, resources.BGPCONFS, "default", "True", "Accepted")
    await _ready(kube, resources.BGPCONFS, "mine", "False", "Ignored",
                 'only the BgpConf named "default" is used')
    peer = {"apiVersion": GROUP, "kind": "BgpPeer",
            "spec": {"conf": {"peerAs": 64513, "neighborAddress": "192.0.2.254"}}}
    await kube.create(resources.BGPPEERS, {**peer, "metadata": {"name": "tor"}})
    await _ready(kube, resources.BGPPEERS, "tor", "True", "Accepted")
    await kube.create(resources.BGPPEERS, {**peer, "metadata": {"name": "tor-copy"}})
    await _ready(kube, resources.BGPPEERS, "tor-copy", "False", "Invalid",
                 "bgppeer/tor already peers with 192.0.2.254 from the same nodes")
    # The older peer keeps working, and says so.
    await _ready(kube, resources.BGPPEERS, "tor", "True", "Accepted")
    confs, peers = await _table(admin, "bgpconfs"), await _table(admin, "bgppeers")
    assert confs["mine"]["ready"] == "False"
    assert peers["tor"]["ready"] == "True"
    assert peers["tor-copy"]["ready"] == "False"
