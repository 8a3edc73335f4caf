"""The speaker's settings, from its command line (cli.py) to every mode."""

from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from openelb.announce.liveness import udp
from openelb.announce.vip import config as vip_config

__all__ = ["SpeakerSettings"]


@dataclass(frozen=True, slots=True)
class SpeakerSettings:
    node: str
    workdir: Path
    lb_class: str | None = None
    debounce: float = 0.05  # least time between two plan rounds: bursts coalesce
    stale_after: float = 30.0  # a watch failing this long makes /readyz fail
    health_host: str = "127.0.0.1"
    health_port: int = 7474
    namespace: str = "openelb-system"  # where the heartbeat Secret lives
    heartbeat_secret: str = "openelb-speaker-heartbeat"  # Secret name; key `secret`
    heartbeat: udp.HeartbeatSettings = field(default_factory=udp.HeartbeatSettings)
    keepalived: str = "keepalived"  # the binary VIP mode runs
    vrrp_cluster_id: str = ""  # in every VRRP id; "" = the kube-system Namespace's UID
    vrrp: vip_config.VrrpTiming = field(default_factory=vip_config.VrrpTiming)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
