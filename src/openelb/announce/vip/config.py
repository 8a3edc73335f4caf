"""keepalived's configuration for VIP mode, rendered from values (no I/O).

announce/vip (DESIGN §2 VIP mode). Only VRRP: the speaker runs keepalived with
`--vrrp`, and the file holds no virtual_server, so keepalived's checker (the part that
programs and flushes IPVS) never starts and kube-proxy's IPVS tables are never touched.
One instance per address, `state BACKUP` everywhere with priorities deciding the master
(preemption on, after `preempt_delay`: a node whose keepalived restarts, or crash-loops,
takes nothing back before the delay, so a crash loop never flaps masters). Unicast
between the candidate nodes' InternalIPs: no multicast, and another cluster's VRRP on
the LAN never reaches these instances. State changes reach the speaker through
keepalived's notify FIFO, never through its log text.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from openelb.api import addresses

__all__ = ["Instance", "VrrpTiming", "render"]


@dataclass(frozen=True, slots=True)
class VrrpTiming:
    advert_interval: float = 0.2  # seconds (VRRPv3 counts centiseconds)
    preempt_delay: float = 5.0  # seconds a (re)started node waits before preempting


@dataclass(frozen=True, slots=True, order=True)
class Instance:
    """One VRRP instance, with the interface already resolved on this node."""

    name: str
    vrid: int
    interface: str
    priority: int
    source: addresses.IPAddress
    peers: tuple[addresses.IPAddress, ...]
    address: addresses.IPAddress


def _instance(inst: Instance, timing: VrrpTiming) -> list[str]:
    # A lone candidate lists itself: keepalived falls back to multicast VRRP when an
    # instance has no unicast peer, which would put our adverts on the LAN (where
    # another cluster's VRRP could hear them). To itself they stay on this host.
    peers = inst.peers or (inst.source,)
    return [
        f"vrrp_instance {inst.name} {{",
        "    state BACKUP",
        f"    interface {inst.interface}",
        f"    virtual_router_id {inst.vrid}",
        f"    priority {inst.priority}",
        f"    advert_int {timing.advert_interval:g}",
        f"    preempt_delay {timing.preempt_delay:g}",
        f"    unicast_src_ip {inst.source}",
        "    unicast_peer {",
        *(f"        {peer}" for peer in peers),
        "    }",
        "    virtual_ipaddress {",
        f"        {inst.address}/{inst.address.max_prefixlen} dev {inst.interface}",
        "    }",
        "}",
    ]


def render(router_id: str, instances: Iterable[Instance], fifo: str,
           timing: VrrpTiming = VrrpTiming()) -> str:
    """The whole keepalived.conf; the same inputs always give the same text."""
    lines = [
        "# Written by openelb speaker; rewritten on every change. Do not edit.",
        "global_defs {",
        f"    router_id {router_id}",
        "    vrrp_version 3",
        f"    notify_fifo {fifo}",
        # A master sends its gratuitous ARPs / unsolicited NAs at once, then once more
        # a second later; never on a timer (the LAN caches are kept by ARP traffic).
        "    vrrp_garp_master_delay 1",
        "    vrrp_garp_master_repeat 2",
        "    vrrp_garp_master_refresh 0",
        # No real-time scheduling games (and no NOTICE about them at every start).
        "    max_auto_priority -1",
        "}",
    ]
    for inst in sorted(instances):
        lines.extend(_instance(inst, timing))
    return "\n".join(lines) + "\n"
