"""A whole openelb cluster for e2e tests, benchmarks and the demo: the real control
plane, the controller as a process, and one speaker per lab node namespace.

Test environment (DESIGN §5). There are no kubelets: `Cluster` registers a Node object
per lab node (Ready, InternalIPs = the node's LAN addresses) and writes EndpointSlices
itself (`set_endpoints`). Every daemon runs under its own ServiceAccount token; speakers
reach the apiserver through the lab's relay. Objects are created with server-side apply
as the admin. `aclose()` stops the daemons (SIGTERM) and deletes the Nodes it made.
"""

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import ipaddress
import re
import secrets
import sys
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s

from openelb_testenv import clients, components, containers, controlplane, manifests, netlab

__all__ = ["SPEAKER_HEALTH_ADDR", "Cluster", "ClusterSettings"]

REPO = Path(__file__).resolve().parents[3]
GROUP = "network.kubesphere.io/v1alpha2"
SYSTEM = "openelb-system"
# Where every speaker serves /metrics inside its own node namespace.
SPEAKER_HEALTH_ADDR = "127.0.0.1:18081"
# The speakers' own record of what they answer for (logfmt lines of the announcer).
_CLAIM_LOG = re.compile(
    r'^ts=(?P<ts>\S+) .*?msg="(?P<msg>speaker started|layer2 claim|layer2 release)"'
    r"(?: ip=(?P<ip>\S+))?")
_CLAIM_ORDER = {"start": 0, "claim": 1, "release": 2}


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterSettings:
    heartbeat_timeout: float = 1.0  # speakers: silent this long -> dead
    heartbeat_interval: float = 0.25
    controller_args: tuple[str, ...] = ()
    speaker_args: tuple[str, ...] = ()
    log_level: str = "info"
    # An image tag (containers.build()): the daemons run from it with podman, with their
    # manifests' security settings, instead of as processes of this checkout.
    image: str | None = None


class Cluster:
    def __init__(self, cp: controlplane.ControlPlane, lab: netlab.Lab,
                 settings: ClusterSettings | None = None) -> None:
        self.cp = cp
        self.lab = lab
        self.settings = settings or ClusterSettings()
        self.workdir = lab.workdir / "cluster"
        self.admin: k8s.ApiClient | None = None
        self.controller: components.Component | None = None
        self.speakers: dict[str, netlab.LabProcess] = {}
        self._speaker_kubeconfig: dict[str, Path] = {}
        self._nodes: list[str] = []
        self._namespaces: set[str] = set()
        self.containers: list[str] = []  # names of the daemons' containers, if any
        # Where each speaker serves /metrics inside its node namespace: the lab's own
        # address, or with an image the manifest's port (bound to every address there).
        self.speaker_health_addr = SPEAKER_HEALTH_ADDR
        if self.settings.image is not None:
            speaker = containers.PodTemplate.load(REPO / "deploy" / "components" /
                                                  "20-speaker.yaml")
            port = (speaker.arg("--health-addr") or "").rpartition(":")[2]
            self.speaker_health_addr = f"127.0.0.1:{port}"

    @property
    def api(self) -> k8s.ApiClient:
        assert self.admin is not None, "Cluster not started"
        return self.admin

    async def __aenter__(self) -> "Cluster":
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.admin = clients.admin_client(self.cp)
        await manifests.install(self.api, REPO / "deploy" / "crds", REPO / "deploy" / "rbac")
        await self._heartbeat_secret()
        for host in self.lab.nodes:
            await self.register_node(host)
        controller = await self.start_controller()
        for host in self.lab.nodes:
            await self.start_speaker(host.name)
        await controller.wait_for_log("replayed existing assignments", timeout=60)

    async def _heartbeat_secret(self) -> None:
        core = k8s.CoreV1Api(self.api)
        try:
            await core.read_namespaced_secret("openelb-speaker-heartbeat", SYSTEM)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            await self.apply({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "openelb-speaker-heartbeat", "namespace": SYSTEM},
                "data": {"secret": base64.b64encode(secrets.token_bytes(32)).decode()}})

    async def register_node(self, host: netlab.Host, *, ready: bool = True,
                            labels: Mapping[str, str] | None = None) -> None:
        meta = {"name": host.name,
                "labels": {"kubernetes.io/hostname": host.name, **(labels or {})}}
        await self.apply({"apiVersion": "v1", "kind": "Node", "metadata": meta})
        if host.name not in self._nodes:
            self._nodes.append(host.name)
        await self.set_node_ready(host.name, ready, host=host)

    async def set_node_ready(self, name: str, ready: bool, *,
                             host: netlab.Host | None = None) -> None:
        host = host or self.lab.node(name)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        condition = {"type": "Ready", "status": "True" if ready else "False",
                     "reason": "OpenelbTestenv", "message": "set by the test environment",
                     "lastHeartbeatTime": now, "lastTransitionTime": now}
        addresses = [{"type": "InternalIP", "address": str(ip)} for ip in host.addresses]
        await k8s.CoreV1Api(self.api).patch_node_status(
            name, {"status": {"conditions": [condition], "addresses": addresses}})

    async def _token_kubeconfig(self, sa: str, path: Path) -> Path:
        return await components.token_kubeconfig(self.cp, self.api, SYSTEM, sa, path)

    async def start_controller(self, *extra: str, identity: str = "controller-1"
                               ) -> components.Component:
        if self.settings.image is not None:
            # Its Pod network is node-a's namespace here (no CNI; docs/image.md).
            argv = await self._pod("10-controller.yaml", identity, self.lab.nodes[0],
                                   "openelb-controller", {"metadata.name": identity},
                                   [*self.settings.controller_args, *extra])
            process = components.Component(identity, (), self.workdir / f"{identity}.log",
                                           program=argv)
        else:
            kubeconfig = await self._token_kubeconfig("openelb-controller",
                                                      self.workdir / "controller.kubeconfig")
            port = components.free_port()
            process = components.Component(identity, [
                "controller", "--kubeconfig", str(kubeconfig), "--identity", identity,
                "--health-addr", f"127.0.0.1:{port}", "--log-level", self.settings.log_level,
                # The lab runs one controller and no webhook configuration (its tests of
                # admission are tests/integration/controller/test_webhook.py).
                "--webhook-addr", "off", *self.settings.controller_args, *extra,
            ], self.workdir / f"{identity}.log")
        await process.start()
        self.controller = process
        return process

    async def start_speaker(self, node: str, *extra: str) -> netlab.LabProcess:
        host = self.lab.node(node)
        s = self.settings
        if s.image is not None:
            argv = await self._pod("20-speaker.yaml", f"speaker-{node}", host, "openelb-speaker",
                                   {"spec.nodeName": node}, [*s.speaker_args, *extra])
            process = await host.spawn(argv, host.workdir / "speaker.log",
                                       name=f"speaker-{node}", joins_itself=True)
            self.speakers[node] = process
            return process
        if node not in self._speaker_kubeconfig:
            plain = await self._token_kubeconfig("openelb-speaker",
                                                 self.workdir / f"speaker-{node}.kubeconfig")
            self._speaker_kubeconfig[node] = await self.lab.node_kubeconfig(host, plain)
        process = await host.spawn([
            sys.executable, "-m", "openelb", "speaker",
            "--kubeconfig", str(self._speaker_kubeconfig[node]), "--node", node,
            "--workdir", str(host.workdir / "speaker"), "--health-addr", SPEAKER_HEALTH_ADDR,
            "--heartbeat-timeout", str(s.heartbeat_timeout),
            "--heartbeat-interval", str(s.heartbeat_interval),
            "--log-level", s.log_level, *s.speaker_args, *extra,
        ], host.workdir / "speaker.log", name=f"speaker-{node}")
        self.speakers[node] = process
        return process

    async def _pod(self, manifest: str, daemon: str, host: netlab.Host, service_account: str,
                   fields: Mapping[str, str], extra: Sequence[str]) -> list[str]:
        """`podman run` for the workload of deploy/components/`manifest`, as a kubelet
        would run its Pod (containers.PodTemplate) in `host`'s namespace, with its own
        ServiceAccount token and the apiserver relayed there; `extra` args follow the
        manifest's (none in tests/e2e/image)."""
        assert self.settings.image is not None
        template = containers.PodTemplate.load(REPO / "deploy" / "components" / manifest)
        target = urllib.parse.urlsplit(self.cp.server).port
        assert target is not None
        port = await self.lab.apiserver_relay(host, target)
        token = await clients.request_token(self.api, SYSTEM, service_account,
                                            expiration_seconds=86400)
        account = containers.write_service_account(
            self.workdir / f"serviceaccount-{daemon}", token, self.cp.ca_file, SYSTEM)
        name = f"oelb-{self.lab.run_id}-{daemon}"
        if name not in self.containers:
            self.containers.append(name)
        return [*template.run_argv(
            image=self.settings.image, name=name, network_namespace=host.netns,
            fields={"metadata.namespace": SYSTEM, "metadata.name": daemon, **fields},
            apiserver_port=port, service_account=account), *extra]

    async def restart_speaker(self, node: str) -> netlab.LabProcess:
        old = self.speakers.get(node)
        if old is not None:
            await old.stop()
        return await self.start_speaker(node)

    # ---- objects -----------------------------------------------------------------------

    async def apply(self, *objects: dict[str, Any]) -> list[dict[str, Any]]:
        return await manifests.apply(self.api, objects)

    async def eip(self, name: str, address: str, *, protocol: str = "bgp",
                  interface: str = "", annotations: Mapping[str, str] | None = None,
                  **spec: Any) -> None:
        body: dict[str, Any] = {"address": address, "protocol": protocol, **spec}
        if interface:
            body["interface"] = interface
        await self.apply({"apiVersion": GROUP, "kind": "Eip",
                          "metadata": {"name": name, "annotations": dict(annotations or {})},
                          "spec": body})

    async def bgp(self, *, asn: int = 64512, router_asn: int = 64513, hold_time: int = 9,
                  peers: Iterable[str] | None = None, password: str = "",
                  name_prefix: str = "router", **peer_spec: Any) -> None:
        """BgpConf `default` and one BgpPeer per router address (default: the lab router)."""
        await self.apply({"apiVersion": GROUP, "kind": "BgpConf",
                          "metadata": {"name": "default"}, "spec": {"as": asn}})
        router = self.lab.router_host
        addresses = list(peers) if peers is not None else [str(router.ipv4)]
        for index, address in enumerate(addresses):
            conf: dict[str, Any] = {"peerAs": router_asn, "neighborAddress": address}
            if password:
                conf["authPassword"] = password
            family = "AFI_IP6" if ":" in address else "AFI_IP"
            await self.apply({"apiVersion": GROUP, "kind": "BgpPeer",
                              "metadata": {"name": f"{name_prefix}-{index}"},
                              "spec": {"conf": conf,
                                       "timers": {"config": {"holdTime": hold_time}},
                                       "afiSafis": [{"config": {"family": {
                                           "afi": family, "safi": "SAFI_UNICAST"},
                                           "enabled": True}}],
                                       **peer_spec}})

    async def service(self, namespace: str, name: str, *, pool: str | None = None,
                      ip: str | None = None, local: bool = False,
                      ports: Sequence[int] = (80,), families: Sequence[str] = ("IPv4",),
                      annotations: Mapping[str, str] | None = None) -> None:
        notes = {"lb.kubesphere.io/v1alpha1": "openelb", **(annotations or {})}
        if pool:
            notes["eip.openelb.kubesphere.io/v1alpha2"] = pool
        if ip:
            notes["eip.openelb.kubesphere.io/v1alpha1"] = ip
        await self.ensure_namespace(namespace)
        await self.apply({"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": name, "namespace": namespace,
                                       "annotations": notes},
                          "spec": {"type": "LoadBalancer",
                                   "externalTrafficPolicy": "Local" if local else "Cluster",
                                   "selector": {"app": name},
                                   "ipFamilies": list(families),
                                   "ipFamilyPolicy": "SingleStack" if len(families) == 1
                                   else "RequireDualStack",
                                   "ports": [{"name": f"p{p}", "port": p, "protocol": "TCP"}
                                             for p in ports]}})

    async def ensure_namespace(self, namespace: str) -> None:
        await self.apply({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": namespace}})
        self._namespaces.add(namespace)

    async def delete_service(self, namespace: str, name: str) -> None:
        await k8s.CoreV1Api(self.api).delete_namespaced_service(name, namespace)

    async def wait_for_ips(self, namespace: str, name: str, timeout: float = 60.0
                           ) -> list[str]:
        core = k8s.CoreV1Api(self.api)
        deadline = time.monotonic() + timeout
        while True:
            svc = await core.read_namespaced_service(name, namespace)
            ingress = (svc.status.load_balancer.ingress or []) if svc.status else []
            ips = [i.ip for i in ingress if i.ip]
            if ips:
                return ips
            if time.monotonic() > deadline:
                raise TimeoutError(f"{namespace}/{name} got no address in {timeout}s")
            await asyncio.sleep(0.1)

    async def set_endpoints(self, namespace: str, service: str, nodes: Iterable[str]) -> None:
        """One ready endpoint per node in `nodes` (stands in for Pods and the kubelet)."""
        endpoints = [{"addresses": [f"10.244.{i}.10"], "nodeName": node,
                      "conditions": {"ready": True}}
                     for i, node in enumerate(sorted(nodes))]
        await self.apply({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                          "metadata": {"name": f"{service}-openelb-test",
                                       "namespace": namespace,
                                       "labels": {"kubernetes.io/service-name": service}},
                          "addressType": "IPv4", "endpoints": endpoints,
                          "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}]})

    async def serve_vips(self, *vips: str, http: bool = True) -> None:
        """Stand in for kube-proxy and the Pods: each VIP on every node's lo, HTTP there
        (answering the node's name). `http=False` for VIPs added after the servers."""
        for host in self.lab.nodes:
            for vip in vips:
                await host.add_vip(vip)
            if http:
                await host.serve_http()

    async def answering_nodes(self, ip: str, *, client: netlab.Host | None = None,
                              tries: int = 30, timeout: float = 2.0,
                              pause: float = 0.2) -> set[str]:
        """Names of the nodes that answered `tries` HTTP requests to `ip` from `client`
        (default: the remote client behind the router); a failed request waits `pause`."""
        seen: set[str] = set()
        for _ in range(tries):
            try:
                body = await self.lab.http_get(client or self.lab.remote_client, ip,
                                               timeout=timeout)
                seen.add(body.strip())
            except netlab.CommandFailed:
                await asyncio.sleep(pause)
        return seen

    def speaker_logs(self) -> str:
        """The end of every speaker's log (the relays' logs would drown them)."""
        return "\n".join(f"--- {name}\n{process.log_text()[-2500:]}"
                         for name, process in sorted(self.speakers.items()))

    async def speaker_probe(self, node: str, path: str) -> tuple[str, str]:
        """(HTTP status, body) of `node`'s speaker at `path` (/healthz, /readyz); status
        "000" when it does not answer."""
        done = await self.lab.node(node).exec(
            "curl", "--silent", "--max-time", "2", "--write-out", "\n%{http_code}",
            f"http://{self.speaker_health_addr}{path}", check=False, timeout=10.0)
        body, _, code = done.stdout.rpartition("\n")
        return code, body.strip()

    async def speaker_metric(self, node: str, name: str, labels: str = "") -> float:
        """One sample of `node`'s speaker metrics, e.g. ("openelb_layer2_gratuitous_total",
        'family="ipv4"'); 0 when the series is absent."""
        result = await self.lab.node(node).exec(
            "curl", "--silent", "--max-time", "2", f"http://{self.speaker_health_addr}/metrics",
            check=False, timeout=10.0)
        series = f"{name}{{{labels}}}" if labels else name
        for line in result.stdout.splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    async def layer2_owners(self, ip: str) -> set[str]:
        """The nodes whose running speaker reports `openelb_layer2_owned` for `ip`."""
        return await self._nodes_reporting("openelb_layer2_owned", ip)

    async def vip_masters(self, ip: str) -> set[str]:
        """The nodes whose running speaker reports `openelb_vip_master` for `ip` (what
        its keepalived said last)."""
        return await self._nodes_reporting("openelb_vip_master", ip)

    async def _nodes_reporting(self, metric: str, ip: str) -> set[str]:
        wanted = f'{metric}{{ip="{ipaddress.ip_address(ip)}"'
        found = set()
        for host in self.lab.nodes:
            speaker = self.speakers.get(host.name)
            if speaker is None or not speaker.running:
                continue
            result = await host.exec("curl", "--silent", "--max-time", "2",
                                     f"http://{self.speaker_health_addr}/metrics",
                                     check=False, timeout=10.0)
            if any(line.startswith(wanted) and line.rstrip().endswith(" 1.0")
                   for line in result.stdout.splitlines()):
                found.add(host.name)
        return found

    def speaker_log_matches(self, pattern: re.Pattern[str]
                            ) -> Iterator[tuple[str, float, re.Match[str]]]:
        """(node, epoch, match) for each speaker log line `pattern` matches, node by node
        in file order; `pattern` must capture the line's `ts=` value as group "ts"."""
        for host in self.lab.nodes:
            path = host.workdir / "speaker.log"
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                match = pattern.match(line)
                if match is not None:
                    at = datetime.datetime.fromisoformat(match["ts"].replace("Z", "+00:00"))
                    yield host.name, at.timestamp(), match

    def layer2_claim_history(self, ip: str) -> list[tuple[float, str, str]]:
        """(epoch, node, "start" | "claim" | "release") for `ip` from every speaker's
        log, in time order (claims before releases within one millisecond)."""
        address = str(ipaddress.ip_address(ip))
        events = []
        for node, at, match in self.speaker_log_matches(_CLAIM_LOG):
            kind = "start" if match["msg"] == "speaker started" else match["msg"][7:]
            if kind == "start" or match["ip"] == address:
                events.append((at, node, kind))
        return sorted(events, key=lambda e: (e[0], _CLAIM_ORDER[e[2]]))

    def layer2_unanswered(self, ip: str, since: float) -> list[tuple[float, float]]:
        """Spans (epoch from, to) after `since` in which no speaker claimed `ip`, from
        their logs. A "speaker started" line ends what that node's previous process
        claimed (a SIGKILL logs nothing)."""
        holders: set[str] = set()
        gaps: list[tuple[float, float]] = []
        empty_from: float | None = None
        for at, node, kind in self.layer2_claim_history(ip):
            if kind == "claim":
                holders.add(node)
            else:
                holders.discard(node)
            if at < since:
                continue
            if not holders and empty_from is None:
                empty_from = at
            elif holders and empty_from is not None:
                gaps.append((empty_from, at))
                empty_from = None
        if empty_from is not None:
            gaps.append((empty_from, time.time()))
        return gaps

    async def events(self, namespace: str, reason: str | None = None) -> list[str]:
        listed = await k8s.CoreV1Api(self.api).list_namespaced_event(namespace)
        return [f"{e.reason}: {e.message}" for e in listed.items
                if reason is None or e.reason == reason]

    # ---- teardown ----------------------------------------------------------------------

    # (*) kubernetes_asyncio takes `_content_type` through **kwargs at run time, but its
    # generated signatures do not declare it; it is the only way to send a merge patch.
    async def wipe_openelb_objects(self) -> None:
        """Delete every Eip, BgpConf, BgpPeer and NodeAnnouncement (finalizers stripped):
        cluster-scoped objects would otherwise leak into the next test on a shared
        control plane (a killed speaker leaves its NodeAnnouncement)."""
        custom = k8s.CustomObjectsApi(self.api)
        for group, version, plural in (
                ("network.kubesphere.io", "v1alpha2", "eips"),
                ("network.kubesphere.io", "v1alpha2", "bgpconfs"),
                ("network.kubesphere.io", "v1alpha2", "bgppeers"),
                ("openelb.kubesphere.io", "v1alpha1", "nodeannouncements")):
            listing = await custom.list_cluster_custom_object(group, version, plural)
            for item in listing["items"]:
                name = item["metadata"]["name"]
                if item["metadata"].get("finalizers"):
                    await custom.patch_cluster_custom_object(
                        group, version, plural, name, {"metadata": {"finalizers": None}},
                        _content_type="application/merge-patch+json")  # type: ignore[call-arg]  # *
                with contextlib.suppress(k8s.ApiException):
                    await custom.delete_cluster_custom_object(group, version, plural, name)
            deadline = time.monotonic() + 30
            while (await custom.list_cluster_custom_object(group, version, plural))["items"]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{plural} still present after cleanup")
                await asyncio.sleep(0.1)

    async def _delete_services(self, timeout: float = 30.0) -> None:
        """Delete the Services of this cluster's namespaces while the controller still
        runs (it removes its finalizer), so no address leaks into the next cluster on a
        shared control plane; whatever is left after `timeout` is forced."""
        core = k8s.CoreV1Api(self.api)
        for namespace in self._namespaces:
            listed = await core.list_namespaced_service(namespace)
            for svc in listed.items:
                with contextlib.suppress(k8s.ApiException):
                    await core.delete_namespaced_service(svc.metadata.name, namespace)
        deadline = time.monotonic() + timeout
        for namespace in self._namespaces:
            while True:
                left = (await core.list_namespaced_service(namespace)).items
                if not left:
                    break
                if time.monotonic() > deadline:
                    for svc in left:
                        with contextlib.suppress(k8s.ApiException):
                            await core.patch_namespaced_service(
                                svc.metadata.name, namespace, {"metadata": {"finalizers": None}},
                                _content_type="application/merge-patch+json")  # type: ignore[call-arg]  # *
                    break
                await asyncio.sleep(0.2)

    async def aclose(self) -> None:
        """Services first (while the controller runs), then daemons, then cluster-scoped
        objects and Nodes."""
        if self.admin is not None and self.controller is not None and self.controller.running:
            with contextlib.suppress(Exception):
                await self._delete_services()
        for process in self.speakers.values():
            await process.stop()
        if self.controller is not None:
            await self.controller.stop()
        await containers.remove(*self.containers)
        if self.admin is not None:
            await self.wipe_openelb_objects()
            core = k8s.CoreV1Api(self.admin)
            for node in self._nodes:
                with contextlib.suppress(k8s.ApiException):
                    await core.delete_node(node)
            await self.admin.close()
            self.admin = None

    def log_tails(self) -> str:
        parts = [self.lab.log_tails()]
        if self.controller is not None:
            parts.append(f"--- controller\n{self.controller.log_text()[-4000:]}")
        return "\n".join(parts)
