"""Fixtures for the controller's integration tests: the admin's view and controller processes.

Builds on tests/integration/conftest.py (the session's control plane, `admin`, a fresh
`namespace`, Eips removed after each test). Adds:

* `cluster`: a harness.Cluster acting as the admin in the test's namespace;
* `controllers`: starts `openelb controller` processes under the openelb-controller
  ServiceAccount (a TokenRequest kubeconfig, never the admin), each test with its own
  Lease so a killed leader never delays the next test; all are stopped afterwards and
  their logs printed when the test failed;
* Services in openelb-test-* namespaces are removed before and after each test, our
  finalizer included. Without a kube-controller-manager a deleted namespace keeps its
  Services, and a later test's controller would otherwise hand them addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s

from openelb.kube import client, resources
from openelb.kube import errors as kube_errors
from openelb_testenv import components, controlplane
from tests.integration.controller import harness

CONTROLLER_NAMESPACE = "openelb-system"
CONTROLLER_SA = "openelb-controller"
TEST_NAMESPACE_PREFIX = "openelb-test-"


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember a failed phase so `controllers` can print the controllers' logs."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


async def remove_test_services(kube: client.Kube) -> int:
    """Delete every Service in an openelb-test-* namespace, finalizers first."""
    listed = await kube.list(resources.SERVICES)
    doomed = [s["metadata"] for s in listed.items
              if str(s["metadata"].get("namespace", "")).startswith(TEST_NAMESPACE_PREFIX)]
    gate = asyncio.Semaphore(32)

    async def remove(meta: dict[str, object]) -> None:
        name, namespace = str(meta["name"]), str(meta["namespace"])
        async with gate:
            with contextlib.suppress(kube_errors.NotFound):
                if meta.get("finalizers"):
                    await kube.patch(resources.SERVICES, name,
                                     {"metadata": {"finalizers": None}}, namespace=namespace)
                await kube.delete(resources.SERVICES, name, namespace)

    await asyncio.gather(*(remove(m) for m in doomed))
    return len(doomed)


@pytest.fixture
async def _no_test_services(admin_kube: client.Kube) -> AsyncIterator[None]:
    await remove_test_services(admin_kube)
    yield
    await remove_test_services(admin_kube)


@pytest.fixture
async def cluster(admin_kube: client.Kube, namespace: str,
                  _no_test_services: None) -> AsyncIterator[harness.Cluster]:
    """The admin, working in the test's namespace."""
    view = harness.Cluster(admin_kube, namespace)
    yield view
    for name in view.extra_namespaces:
        with contextlib.suppress(kube_errors.KubeError):
            await view.kube.delete(resources.NAMESPACES, name)


@pytest.fixture
async def controller_kubeconfig(control_plane: controlplane.ControlPlane, admin: k8s.ApiClient,
                                tmp_path: Path) -> Path:
    """A kubeconfig for ServiceAccount openelb-system/openelb-controller (not the admin)."""
    return await components.token_kubeconfig(
        control_plane, admin, CONTROLLER_NAMESPACE, CONTROLLER_SA,
        tmp_path / "controller.kubeconfig")


class Controllers:
    """Starts controller processes for one test; all share the test's own Lease."""

    def __init__(self, kubeconfig: Path, log_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.lease_name = f"openelb-controller-{uuid.uuid4().hex[:8]}"
        self.started: list[harness.Controller] = []

    async def start(self, identity: str = "a", *extra: str,
                    wait: str | None = "leading") -> harness.Controller:
        """Start one; by default wait until it leads (`wait="ready"`, or None: don't)."""
        ctl = harness.Controller(identity, self.kubeconfig, self.lease_name, self.log_dir,
                                 extra)
        self.started.append(ctl)
        await ctl.start()
        if wait == "leading":
            await ctl.wait_leading()
        elif wait == "ready":
            await ctl.wait_ready()
        return ctl

    async def restart(self, ctl: harness.Controller) -> harness.Controller:
        """Stop `ctl` (SIGTERM) and start a new process with the same arguments."""
        assert await ctl.stop() == 0, f"controller exited badly:\n{ctl.log_text()[-3000:]}"
        again = harness.Controller(ctl.identity, self.kubeconfig, self.lease_name,
                                   self.log_dir, ctl.extra, port=ctl.port)
        self.started.append(again)
        await again.start()
        await again.wait_leading()
        return again


@pytest.fixture
async def controllers(controller_kubeconfig: Path, tmp_path: Path,
                      request: pytest.FixtureRequest,
                      _no_test_services: None) -> AsyncIterator[Controllers]:
    made = Controllers(controller_kubeconfig, tmp_path)
    yield made
    await asyncio.gather(*(c.stop() for c in made.started))
    if request.node.stash.get(_FAILED, False):
        for ctl in made.started:
            print(f"\n===== {ctl.component.name} (pid {ctl.pid}) log tail =====")
            print(ctl.log_text()[-6000:])
