"""The speaker's Prometheus metrics (DESIGN §7), on a registry passed in."""

from collections.abc import Iterator, Mapping, Set

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from openelb.announce import layer2 as l2
from openelb.announce.liveness import codec, udp

__all__ = ["SpeakerMetrics", "sync_series"]

Labels = tuple[str, ...]


def sync_series(gauge: Gauge, shown: Set[Labels], now: Mapping[Labels, float]
                ) -> set[Labels]:
    """Make `gauge` show exactly the series `now` (label values -> value), removing the
    ones in `shown` that are gone; returns what it shows now, for the next call."""
    for labels in shown - now.keys():
        gauge.remove(*labels)
    for labels, value in now.items():
        gauge.labels(*labels).set(value)
    return set(now)


class SpeakerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self.session_up = Gauge(
            "openelb_bgp_session_up", "1 while the BGP session to a peer is established.",
            ["peer"], registry=registry)
        self.announced_prefixes = Gauge(
            "openelb_bgp_announced_prefixes", "Prefixes this node announces over BGP.",
            registry=registry)
        self.plans = Counter(
            "openelb_speaker_plans_total", "Plans computed and applied, by result.",
            ["result"], registry=registry)
        self.layer2_owned = Gauge(
            "openelb_layer2_owned", "1 for each address this node answers ARP/NDP for.",
            ["ip", "service"], registry=registry)
        self.layer2_ownership_changes = Counter(
            "openelb_layer2_ownership_changes_total",
            "Addresses this node took over or gave up.", ["change"], registry=registry)
        self.layer2_requests = Counter(
            "openelb_layer2_requests_total", "ARP requests / Neighbor Solicitations seen.",
            ["family"], registry=registry)
        self.layer2_replies = Counter(
            "openelb_layer2_replies_total", "ARP replies / Neighbor Advertisements sent.",
            ["family"], registry=registry)
        self.layer2_gratuitous = Counter(
            "openelb_layer2_gratuitous_total",
            "Gratuitous ARPs / unsolicited Neighbor Advertisements sent.", ["family"],
            registry=registry)
        self.layer2_drops = Counter(
            "openelb_layer2_drops_total", "Frames not answered, by reason.",
            ["family", "reason"], registry=registry)
        self.layer2_conflicts = Counter(
            "openelb_layer2_conflicts_total",
            "Frames from another MAC claiming an address this node answers for.",
            ["family"], registry=registry)
        self.heartbeats_refused = Counter(
            "openelb_heartbeat_refused_total",
            "Heartbeat datagrams refused, by reason (badMac: wrong key or forged; replayed,"
            " stale: an old datagram sent again or a clock off by more than the window).",
            ["reason"], registry=registry)
        self.clock_skew = Gauge(
            "openelb_heartbeat_clock_skew_seconds",
            "A peer's wall clock minus this node's, from its last heartbeat; beyond 30 s"
            " its heartbeats are refused as stale.", ["peer"], registry=registry)
        self.live_peers = Gauge(
            "openelb_heartbeat_live_peers",
            "Other speakers this node hears heartbeats from within the timeout.",
            registry=registry)
        self.vip_master = Gauge(
            "openelb_vip_master", "1 for each VIP address this node holds as VRRP master.",
            ["ip"], registry=registry)
        self.vip_transitions = Counter(
            "openelb_vip_transitions_total",
            "VRRP state changes keepalived reported on this node, by new state.",
            ["state"], registry=registry)
        self.keepalived_restarts = Counter(
            "openelb_keepalived_restarts_total",
            "Times keepalived exited unexpectedly and was started again.", registry=registry)
        self.skipped = Gauge(
            "openelb_speaker_skipped_services",
            "Services this node does not announce in a mode, by why.",
            ["mode", "reason"], registry=registry)

    def count_layer2(self, metric: l2.Metric, family: l2.Family, drop: l2.Drop | None) -> None:
        """The Layer2Announcer's on_counter hook."""
        if metric is l2.Metric.REQUESTS_RECEIVED:
            self.layer2_requests.labels(str(family)).inc()
        elif metric is l2.Metric.REPLIES_SENT:
            self.layer2_replies.labels(str(family)).inc()
        elif metric is l2.Metric.GRATUITOUS_SENT:
            self.layer2_gratuitous.labels(str(family)).inc()
        elif metric is l2.Metric.CONFLICTS:
            self.layer2_conflicts.labels(str(family)).inc()
        elif metric is l2.Metric.DROPS:
            self.layer2_drops.labels(str(family), str(drop or "unknown")).inc()

    def count_refused(self, reason: codec.Refused) -> None:
        """Heartbeats' on_refused hook."""
        self.heartbeats_refused.labels(str(reason)).inc()

    def record_skew(self, peer: str, skew: float) -> None:
        """Heartbeats' on_skew hook."""
        self.clock_skew.labels(peer).set(round(skew, 3))

    def watch_heartbeats(self, beats: udp.Heartbeats) -> None:
        """The live-peers gauge and the sent counters read the heartbeats when scraped."""
        self.live_peers.set_function(beats.live_peers)
        self._registry.register(_HeartbeatsSent(beats))


class _HeartbeatsSent(Collector):
    """openelb_heartbeat_sent_total{scope}: near peers share a layer-2 pool with this
    node and hear from it every interval, far ones every far interval (udp.py's Scope)."""

    def __init__(self, beats: udp.Heartbeats) -> None:
        self._beats = beats

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "openelb_heartbeat_sent", "Heartbeat datagrams sent, by the scope of the peer",
            labels=["scope"])
        for scope, count in sorted(self._beats.sent.items()):
            family.add_metric([scope], count)
        yield family
