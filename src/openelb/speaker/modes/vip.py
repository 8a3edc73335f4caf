"""VIP mode: keepalived (VRRP) holds each address on one node (a speaker Mode).

speaker/modes (DESIGN §2, §3, §4). Each round: planner/vip gives the VRRP instances
this node is a candidate for, their ids and this node's priorities; the Eip's
interface is resolved here (a node where it is missing runs no instance for that pool
and says so); announce/vip renders them for keepalived and runs it, only while there
is at least one instance. What this node announces is what keepalived reports: the
addresses whose instance is MASTER, so the AnnounceIP/WithdrawIP Events name the node
that really holds an address.

The cluster identity in every virtual_router_id is `--vrrp-cluster-id`, else the UID
of the kube-system Namespace (the same on every node of a cluster, different between
clusters).
"""

import logging
from collections.abc import Mapping

from openelb.announce import layer2 as l2
from openelb.announce.vip import config, errors, keepalived
from openelb.api import addresses
from openelb.kube import errors as kube_errors
from openelb.kube import events, resources
from openelb.planner import eligibility, snapshot
from openelb.planner import vip as vip_plan
from openelb.speaker import interfaces, metrics, seam

__all__ = ["KEEPALIVED_FAILED", "VIP_UNSERVED", "VipMode"]

log = logging.getLogger(__name__)

KEEPALIVED_FAILED: str = "KeepalivedFailed"
VIP_UNSERVED: str = "VipNotServed"
CLUSTER_NAMESPACE = "kube-system"


class VipMode:
    name = vip_plan.PROTOCOL
    how = "as VRRP master (keepalived)"
    retryable: tuple[type[Exception], ...] = (l2.Layer2Error, errors.VipError)

    def __init__(self, ctx: seam.ModeContext) -> None:
        self._ctx = ctx
        self.node = ctx.settings.node
        self.keepalived = keepalived.Keepalived(ctx.settings.workdir / "vip",
                                                binary=ctx.settings.keepalived,
                                                on_state=self._state_changed,
                                                on_exit=self._exited)
        self._cluster = ctx.settings.vrrp_cluster_id
        self._by_name: dict[str, vip_plan.VrrpInstance] = {}
        self._interfaces = interfaces.InterfaceResolver(self.node, self.name)
        self._warned: dict[str, str] = {}  # service key -> the Warning last posted
        self._masters: set[tuple[str, ...]] = set()  # series the master gauge shows

    async def start(self) -> None:
        return None

    def ready(self) -> tuple[bool, str]:
        if self._by_name and not self.keepalived.running:
            return False, "keepalived not running"
        return True, "ok"

    def _state_changed(self, name: str, state: str) -> None:
        self._ctx.stats.vip_transitions.labels(state.lower()).inc()
        self._ctx.wake()

    def _exited(self, code: int | None) -> None:
        """keepalived died under us: a metric and a Warning on this node's Node."""
        self._ctx.stats.keepalived_restarts.inc()
        raw = self._ctx.informers["nodes"].get(self.node)
        if raw is not None:
            self._ctx.recorder.emit(
                events.ObjectRef.of(raw, "Node", "v1"), "Warning", KEEPALIVED_FAILED,
                f"keepalived exited (code {code}) on node {self.node}; restarted with "
                f"backoff (restart {self.keepalived.restarts}); its VIPs are held by the "
                "backups meanwhile", node=self.node, code=code)

    async def _cluster_id(self) -> str:
        if not self._cluster:
            raw = await self._ctx.kube.get(resources.NAMESPACES, CLUSTER_NAMESPACE)
            self._cluster = str((raw.get("metadata") or {}).get("uid", ""))
            log.info("vrrp cluster identity", extra={"op": "vip", "cluster": self._cluster,
                                                     "source": f"namespace/{CLUSTER_NAMESPACE}"})
        return self._cluster

    async def apply(self, snap: snapshot.Snapshot) -> seam.Round:
        wanted = any(p.protocol == vip_plan.PROTOCOL for p in snap.pools.values())
        if not wanted:
            await self.keepalived.set(None)
            self._by_name = {}
            return seam.Round()
        try:
            cluster = await self._cluster_id()
        except kube_errors.KubeError as exc:
            raise errors.VipError(f"no cluster identity for VRRP ids: {exc}") from exc
        plan = vip_plan.plan_vip(snap, cluster)
        skipped = dict(plan.skipped)
        instances: dict[str, config.Instance] = {}
        by_name: dict[str, vip_plan.VrrpInstance] = {}
        # One resolution per pool (a route lookup for can_reach:), not per address.
        resolved = {name: self._interfaces.resolve(snap.pools[name])
                    for name in {inst.pool for inst in plan.instances}}
        for inst in sorted(plan.instances):
            iface = resolved[inst.pool]
            if iface is None:
                continue
            instances[inst.name] = config.Instance(inst.name, inst.vrid, iface, inst.priority,
                                                   inst.source, inst.peers, inst.ip)
            by_name[inst.name] = inst
        services: dict[addresses.IPAddress, list[str]] = {}  # shared IPs: several
        for key, ips in plan.candidate.items():
            for ip in ips:
                services.setdefault(ip, []).append(key)
        warnings: dict[str, str] = {
            key: (f"all {len(vip_plan.VRIDS)} VRRP ids of its family are taken by this "
                  "cluster's other VIPs (one id per address); use layer 2 or BGP for more")
            for key, why in plan.skipped.items() if why is eligibility.Skip.NO_VRID}
        for inst in plan.instances:
            if inst.name not in by_name:
                for key in services[inst.ip]:
                    skipped.setdefault(key, eligibility.Skip.NO_INTERFACE)
                    warnings[key] = (f"interface {inst.interface!r} (eip/{inst.pool} "
                                     "spec.interface) not found on this node; the other "
                                     "candidates hold the VIP")
        text = (config.render(f"openelb-{self.node}", instances.values(),
                              str(self.keepalived.fifo_path), self._ctx.settings.vrrp)
                if instances else None)
        try:
            await self.keepalived.set(text, ((i.address, i.interface)
                                             for i in instances.values()))
            self.keepalived.forget(set(instances))
        except errors.KeepalivedMissing as exc:
            for key in plan.candidate:
                skipped[key] = eligibility.Skip.NO_KEEPALIVED
                warnings[key] = f"{exc}; the other candidates hold the VIP"
            by_name = {}
        except errors.ConfigRejected as exc:
            log.error("keepalived configuration refused; the running one stays",
                      extra={"op": "vip", "error": str(exc)})
            raise
        self._warn(warnings)
        self._by_name = by_name
        announced: dict[str, set[addresses.IPAddress]] = {}
        for name, state in self.keepalived.states.items():
            held = by_name.get(name)
            if held is not None and state == "MASTER":
                for key in services[held.ip]:
                    announced.setdefault(key, set()).add(held.ip)
        for key in plan.candidate:
            if key not in announced:
                skipped.setdefault(key, eligibility.Skip.NOT_OWNER)
        self._count_masters({ip for ips in announced.values() for ip in ips})
        result = {k: frozenset(v) for k, v in announced.items()}
        return seam.Round(result, {k: v for k, v in skipped.items() if k not in result},
                          (text, frozenset(result.items())))

    def _warn(self, warnings: Mapping[str, str]) -> None:
        """A Warning on a Service when this node, a candidate for its VIP, cannot run
        its instance, and again only when the reason changes."""
        for key, message in warnings.items():
            if self._warned.get(key) == message:
                continue
            self._warned[key] = message
            raw = self._ctx.informers["services"].get(key)
            if raw is not None:
                self._ctx.recorder.emit(events.ObjectRef.of(raw, "Service", "v1"), "Warning",
                                        VIP_UNSERVED, f"node {self.node} cannot hold the VIP: "
                                        f"{message}", service=key, node=self.node)
        for key in set(self._warned) - set(warnings):
            del self._warned[key]

    def _count_masters(self, masters: set[addresses.IPAddress]) -> None:
        self._masters = metrics.sync_series(self._ctx.stats.vip_master, self._masters,
                                            dict.fromkeys(((str(ip),) for ip in masters), 1))

    async def aclose(self) -> None:
        await self.keepalived.aclose()
