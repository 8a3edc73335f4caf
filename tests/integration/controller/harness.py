"""The two sides of a controller integration test: the user at kubectl, and the process.

Test support for tests/integration/controller (DESIGN §5). `Cluster` is what a user does
as the admin: create and edit Eips, Services and Namespaces, read back status, labels,
finalizers and Events, and wait for them to change (`eventually`, never a bare sleep).
`Controller` is one `openelb controller` child process running under the
openelb-system/openelb-controller ServiceAccount, with its /readyz and /metrics. Tests get
both through the fixtures in conftest.py.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from openelb.api import annotations
from openelb.controller import services
from openelb.kube import client, resources
from openelb.kube import errors as kube_errors
from openelb_testenv import components

T = TypeVar("T")

# The Event reasons, as the controller defines them.
ASSIGN_IP = services.ASSIGN_IP
ASSIGN_IP_FAILED = services.ASSIGN_IP_FAILED
RELEASE_IP = services.RELEASE_IP


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 60.0,
                     interval: float = 0.2, what: str = "condition") -> T:
    """Call `check` until it returns without AssertionError; its last failure on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached in {timeout:g}s: {exc}") from exc
        await asyncio.sleep(interval)


def ingress_ips(raw: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The IPs in a Service's status.loadBalancer.ingress."""
    status = (raw or {}).get("status") or {}
    return tuple(e.get("ip", "") for e in (status.get("loadBalancer") or {}).get("ingress") or ())


class Cluster:
    """The admin's view: objects in one test namespace (others when named), and Eips."""

    def __init__(self, kube: client.Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.extra_namespaces: list[str] = []

    # ---- namespaces --------------------------------------------------------------------

    async def create_namespace(self, labels: Mapping[str, str] | None = None) -> str:
        name = f"openelb-test-{uuid.uuid4().hex[:10]}"
        await self.kube.create(resources.NAMESPACES, {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels or {})}})
        self.extra_namespaces.append(name)
        return name

    async def label_namespace(self, name: str, labels: Mapping[str, str | None]) -> None:
        await self.kube.patch(resources.NAMESPACES, name, {"metadata": {"labels": labels}})

    # ---- Eips --------------------------------------------------------------------------

    async def create_eip(self, name: str, address: str, *, priority: int | None = None,
                         namespaces: Iterable[str] = (),
                         namespace_selector: Mapping[str, str] | None = None,
                         default: bool = False, disable: bool = False) -> dict[str, Any]:
        spec: dict[str, Any] = {"address": address}
        if priority is not None:
            spec["priority"] = priority
        if namespaces:
            spec["namespaces"] = list(namespaces)
        if namespace_selector:
            spec["namespaceSelector"] = dict(namespace_selector)
        if disable:
            spec["disable"] = True
        meta: dict[str, Any] = {"name": name}
        if default:
            meta["annotations"] = {annotations.DEFAULT_EIP_ANNOTATION: "true"}
        return await self.kube.create(resources.EIPS, {
            "apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": meta, "spec": spec})

    async def patch_eip(self, name: str, patch: Mapping[str, Any]) -> None:
        await self.kube.patch(resources.EIPS, name, patch)

    async def delete_eip(self, name: str) -> None:
        await self.kube.delete(resources.EIPS, name)

    async def get_eip(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.kube.get(resources.EIPS, name)
        except kube_errors.NotFound:
            return None

    # ---- Services ----------------------------------------------------------------------

    def service_body(self, name: str, *, namespace: str | None = None, pool: str | None = None,
                     ip: str | None = None, load_balancer_ip: str | None = None,
                     opt_in: bool = True, extra_annotations: Mapping[str, str] | None = None,
                     port: int = 80) -> dict[str, Any]:
        notes: dict[str, str] = dict(extra_annotations or {})
        if opt_in:
            notes[annotations.LB_ANNOTATION] = annotations.LB_ANNOTATION_VALUE
        if pool is not None:
            notes[annotations.POOL_ANNOTATION] = pool
        if ip is not None:
            notes[annotations.REQUESTED_IP_ANNOTATION] = ip
        spec: dict[str, Any] = {
            "type": "LoadBalancer",
            # No NodePorts: there are only 2,768 of them and no kube-proxy to use them.
            "allocateLoadBalancerNodePorts": False,
            "ports": [{"name": "web", "port": port, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": name},
        }
        if load_balancer_ip is not None:
            spec["loadBalancerIP"] = load_balancer_ip
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": namespace or self.namespace,
                             "annotations": notes},
                "spec": spec}

    async def create_service(self, name: str, **options: Any) -> dict[str, Any]:
        body = self.service_body(name, **options)
        return await self.kube.create(resources.SERVICES, body, body["metadata"]["namespace"])

    async def create_services(self, names: Iterable[str], *, concurrency: int = 32,
                              **options: Any) -> None:
        """Create many Services at once (a semaphore keeps `concurrency` in flight)."""
        gate = asyncio.Semaphore(concurrency)

        async def one(name: str) -> None:
            async with gate:
                await self.create_service(name, **options)

        await asyncio.gather(*(one(n) for n in names))

    async def patch_service(self, name: str, patch: Mapping[str, Any], *,
                            namespace: str | None = None) -> None:
        await self.kube.patch(resources.SERVICES, name, patch,
                              namespace=namespace or self.namespace)

    async def write_status(self, name: str, ips: Iterable[str], *,
                           namespace: str | None = None) -> None:
        """Write status.loadBalancer.ingress as the admin (what a previous leader left)."""
        await self.kube.patch(
            resources.SERVICES, name,
            {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}},
            namespace=namespace or self.namespace, subresource="status")

    async def delete_service(self, name: str, *, namespace: str | None = None) -> None:
        await self.kube.delete(resources.SERVICES, name, namespace or self.namespace)

    async def get_service(self, name: str, *, namespace: str | None = None
                          ) -> dict[str, Any] | None:
        try:
            return await self.kube.get(resources.SERVICES, name, namespace or self.namespace)
        except kube_errors.NotFound:
            return None

    async def service_ips(self, namespace: str | None = None) -> dict[str, tuple[str, ...]]:
        """name -> ingress IPs of every Service in the namespace."""
        listed = await self.list_services(namespace or self.namespace)
        return {s["metadata"]["name"]: ingress_ips(s) for s in listed}

    async def list_services(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query: dict[str, str | int] = {"limit": 500}
        while True:
            page = await self.kube.request("GET", resources.SERVICES.path(namespace),
                                           query=query)
            items.extend(page.get("items") or ())
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            query["continue"] = token

    async def wait_ip(self, name: str, *, namespace: str | None = None,
                      timeout: float = 60.0) -> str:
        """Wait until the Service holds an address; returns the first one."""

        async def check() -> str:
            ips = ingress_ips(await self.get_service(name, namespace=namespace))
            assert ips, f"service {name} has no address yet"
            return ips[0]

        return await eventually(check, timeout=timeout, what=f"an address on service {name}")

    async def wait_assigned(self, name: str, *, namespace: str | None = None,
                            timeout: float = 60.0) -> tuple[str, str]:
        """Wait for an address, the pool label and our finalizer; returns (ip, pool)."""

        async def check() -> tuple[str, str]:
            raw = await self.get_service(name, namespace=namespace)
            ips = ingress_ips(raw)
            assert raw is not None, f"service {name} does not exist"
            meta = raw["metadata"]
            pool = (meta.get("labels") or {}).get(annotations.EIP_LABEL, "")
            assert ips, f"service {name} has no address yet"
            assert pool, f"service {name} has no pool label yet"
            assert annotations.FINALIZER in (meta.get("finalizers") or []), "no finalizer"
            return ips[0], pool

        return await eventually(check, timeout=timeout, what=f"service {name} assigned")

    async def wait_all_assigned(self, count: int, *, namespace: str | None = None,
                                timeout: float = 120.0) -> dict[str, tuple[str, ...]]:
        async def check() -> dict[str, tuple[str, ...]]:
            ips = await self.service_ips(namespace)
            pending = sorted(n for n, v in ips.items() if not v)
            assert len(ips) == count, f"{len(ips)} services exist, expected {count}"
            assert not pending, f"{len(pending)} pending, e.g. {pending[:5]}"
            return ips

        return await eventually(check, timeout=timeout, interval=0.5,
                                what=f"all {count} services assigned")

    async def wait_gone(self, name: str, *, namespace: str | None = None,
                        timeout: float = 60.0) -> None:
        async def check() -> None:
            assert await self.get_service(name, namespace=namespace) is None, (
                f"service {name} still exists")

        await eventually(check, timeout=timeout, what=f"service {name} gone")

    # ---- Events ------------------------------------------------------------------------

    async def events(self, name: str, *, namespace: str | None = None,
                     kind: str = "Service") -> list[dict[str, Any]]:
        ns = namespace or (self.namespace if kind == "Service" else "default")
        page = await self.kube.request(
            "GET", resources.EVENTS.path(ns),
            query={"fieldSelector": f"involvedObject.name={name},involvedObject.kind={kind}"})
        items: list[dict[str, Any]] = page.get("items") or []
        return sorted(items, key=lambda e: e.get("lastTimestamp") or "")

    async def wait_event(self, name: str, reason: str, contains: str = "", *,
                         namespace: str | None = None, event_type: str | None = None,
                         timeout: float = 60.0) -> dict[str, Any]:
        """Wait for an Event with `reason` whose message contains `contains`."""

        async def check() -> dict[str, Any]:
            listed = await self.events(name, namespace=namespace)
            found = [e for e in listed
                     if e.get("reason") == reason and contains in (e.get("message") or "")
                     and (event_type is None or e.get("type") == event_type)]
            seen = [(e.get("reason"), e.get("message")) for e in listed]
            assert found, f"no {reason} event containing {contains!r} on {name}: {seen}"
            return found[-1]

        return await eventually(check, timeout=timeout, what=f"{reason} event on {name}")


class Controller:
    """One `openelb controller` process under the controller's ServiceAccount."""

    def __init__(self, identity: str, kubeconfig: Path, lease_name: str, log_dir: Path,
                 extra: Iterable[str] = (), port: int | None = None) -> None:
        self.identity = identity
        # Webhooks only where a test asks for them (--webhook-addr): two replicas on one
        # machine cannot share a port, and most tests are about IPAM.
        self.extra = tuple(extra) if any(a.startswith("--webhook-addr") for a in extra) else (
            *extra, "--webhook-addr", "off")
        self.port = port or components.free_port()
        self.argv = [
            "controller", "--kubeconfig", str(kubeconfig), "--identity", identity,
            "--lease-name", lease_name, "--health-addr", f"127.0.0.1:{self.port}", *self.extra,
        ]
        self.component = components.Component(
            f"controller-{identity}", self.argv, log_dir / f"controller-{identity}.log")

    @property
    def running(self) -> bool:
        return self.component.running

    @property
    def pid(self) -> int:
        return self.component.pid

    async def start(self) -> "Controller":
        await self.component.start()
        return self

    async def get(self, path: str) -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
            f"http://127.0.0.1:{self.port}{path}"
        ) as response:
            return response.status, await response.text()

    async def _probe(self, path: str) -> tuple[int, str]:
        assert self.running, f"{self.component.name} exited:\n{self.component.log_text()[-3000:]}"
        try:
            return await self.get(path)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AssertionError(f"{path} does not answer: {exc!r}") from exc

    async def wait_ready(self, timeout: float = 60.0) -> str:
        """Wait until /readyz answers 200; returns its text (leading / standby)."""

        async def check() -> str:
            status, text = await self._probe("/readyz")
            assert status == 200, f"/readyz answered {status} {text.strip()}"
            return text.strip()

        return await eventually(check, timeout=timeout, what=f"{self.component.name} ready")

    async def wait_leading(self, timeout: float = 60.0) -> None:
        async def check() -> None:
            status, text = await self._probe("/readyz")
            assert status == 200, f"/readyz answered {status} {text.strip()}"
            assert text.startswith("leading"), f"{self.component.name} is {text.strip()}"

        await eventually(check, timeout=timeout, what=f"{self.component.name} leading")

    async def is_leading(self) -> bool:
        try:
            status, text = await self.get("/readyz")
        except (aiohttp.ClientError, TimeoutError):
            return False
        return status == 200 and text.startswith("leading")

    async def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """The value of one sample on /metrics (0 when absent)."""
        _, text = await self._probe("/metrics")
        return sample(text, name, labels)

    def log_text(self) -> str:
        return self.component.log_text()

    def signal(self, signum: int) -> None:
        self.component.signal(signum)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        return await self.component.wait(timeout)

    async def stop(self) -> int | None:
        return await self.component.stop()


def sample(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """Sum of the samples of `name` whose labels include `labels`, in Prometheus text."""
    want = dict(labels or {})
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        found = dict(
            part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part
        )
        found = {k: v.strip('"') for k, v in found.items()}
        if all(found.get(k) == v for k, v in want.items()):
            total += float(value)
    return total
