"""The image users run, built here and run for real (issue #16, items 1 and 3).

hack/build-image.sh builds it with podman from a Debian base made by mmdebstrap and
wheels built outside (no registry is reachable here). The lab then runs the controller
and every speaker from that image exactly as deploy/components describes their Pods
(openelb_testenv.containers.PodTemplate: command, args, env, securityContext, emptyDirs,
in-cluster ServiceAccount token), and the BGP, layer-2 failover and VIP stories run
against them (docs/image.md).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import containers
from tests.e2e.conftest import ClusterFactory
from tests.e2e.layer2 import lan

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

NODES = {"node-a": "192.0.2.11", "node-b": "192.0.2.12", "node-c": "192.0.2.13"}
EVERY_NODE = set(NODES.values())


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    tag = containers.build(f"localhost/openelb/openelb:test-{uuid.uuid4().hex[:6]}")
    yield tag
    subprocess.run([*containers.podman(), "rmi", "--force", tag],
                   capture_output=True, check=False)


def _run(image: str, *command: str) -> subprocess.CompletedProcess[str]:
    """`command` in a throwaway container of the image, without any network."""
    return subprocess.run(
        [*containers.podman(), "run", "--rm", "--network", "none", "--read-only",
         *containers.ulimits(), "--entrypoint", command[0], image, *command[1:]],
        capture_output=True, text=True, check=False, timeout=120)


def test_the_image_holds_the_daemons_and_nothing_of_the_tests(image: str) -> None:
    version = _run(image, "openelb", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "openelb, version 0.1.0"

    # Both daemons and the children the speaker runs import and are where it looks.
    imports = _run(image, "python3", "-c",
                   "import openelb.controller.manager, openelb.speaker.manager, "
                   "exabgp.application.main")
    assert imports.returncode == 0, imports.stderr
    tools = _run(image, "sh", "-c", "for t in nc.openbsd keepalived ip; do command -v $t; done")
    assert tools.stdout.split() == ["/usr/bin/nc.openbsd", "/usr/sbin/keepalived",
                                    "/usr/sbin/ip"], tools.stderr

    # The test harness, its client libraries and the build tools stayed outside.
    for module in ("openelb_testenv", "kubernetes_asyncio", "aiohttp", "pytest", "pip"):
        found = _run(image, "python3", "-c", f"import {module}")
        assert "ModuleNotFoundError" in found.stderr, (module, found.stderr)

    size = subprocess.run([*containers.podman(), "image", "inspect", image,
                           "--format", "{{.Size}}"], capture_output=True, text=True,
                          check=True).stdout.strip()
    print(f"image_size_mb = {int(size) / 1e6:.0f}")


async def test_daemons_from_the_image_assign_announce_and_withdraw(
        cluster: ClusterFactory, image: str) -> None:
    """The BGP story against the containerised daemons: three ECMP next hops, the remote
    client reaches several nodes, a SIGTERM through podman withdraws the node's route."""
    ns = lan.namespace()
    settings = testenv_cluster.ClusterSettings(image=image)
    async with cluster(router="bird", ipv6=False, settings=settings) as c:
        # Each daemon runs in its own container, as its manifest's user.
        run = c.lab.run_id
        users = {name: await _container_user(name) for name in c.containers}
        assert users == {f"oelb-{run}-controller-1": "65534",
                         **{f"oelb-{run}-speaker-{n}": "0" for n in NODES}}

        await c.bgp()
        await c.eip("bgp-pool", "203.0.113.0/24")
        await c.service(ns, "web", pool="bgp-pool")
        (vip,) = await c.wait_for_ips(ns, "web")
        await c.lab.router.wait_for_routes(f"{vip}/32", EVERY_NODE, 60, kernel=True)
        await c.serve_vips(vip)
        assert len(await c.answering_nodes(vip)) >= 2

        # SIGTERM to `podman run` reaches the speaker, which withdraws before it exits.
        c.speakers["node-a"].signal(signal.SIGTERM)
        assert await c.speakers["node-a"].wait(60) == 0
        await c.lab.router.wait_for_routes(f"{vip}/32", EVERY_NODE - {NODES["node-a"]}, 30,
                                           kernel=True)


async def test_layer2_failover_story_against_the_containerised_speakers(
        cluster: ClusterFactory, image: str) -> None:
    """The owner by the documented rule answers the LAN client; its container SIGKILLed,
    the next node by the rule takes over and the client follows; restarted, the owner
    takes its address back."""
    ns = lan.namespace()
    settings = testenv_cluster.ClusterSettings(image=image)
    async with cluster(router=None, settings=settings) as c:
        vip, owner, heir = await lan.settled_owner(
            c, ns, interface=("can_reach:192.0.2.1", "can_reach:2001:db8:1::1"),
            nodes=list(NODES))

        await containers.kill(f"oelb-{c.lab.run_id}-speaker-{owner}")
        assert await c.speakers[owner].wait(30) != 0
        await lan.wait_for_owner(c, vip, heir)
        await lan.wait_for_client(c, vip, heir)

        await c.start_speaker(owner)
        await lan.wait_for_owner(c, vip, owner, timeout=60)
        await lan.wait_for_client(c, vip, owner)


async def _container_user(name: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *containers.podman(), "inspect", name, "--format", "{{json .Config.User}}",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    return str(json.loads(out))


async def test_vip_mode_from_the_image_runs_keepalived_in_the_speakers_container(
        cluster: ClusterFactory, image: str) -> None:
    """keepalived, the speaker's child inside the image, under a read-only root and
    only the manifest's capabilities: the node the rule names becomes VRRP master and the LAN
    client reaches the Service there."""
    ns = lan.namespace()
    settings = testenv_cluster.ClusterSettings(image=image)
    async with cluster(router=None, settings=settings) as c:
        vip = await lan.web(c, ns, pool="vips", protocol="vip", interface=("eth0", "eth0"))
        master = lan.expected_owner(vip, NODES)
        await lan.wait_for_reporting(c, vip, master, c.vip_masters, "vrrp master", 60)
        await lan.wait_for_client(c, vip, master)
