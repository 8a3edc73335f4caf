"""The speaker's Prometheus metrics (DESIGN §7), on a registry passed in."""

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["SpeakerMetrics"]


class SpeakerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.session_up = Gauge(
            "openelb_bgp_session_up", "1 while the BGP session to a peer is established.",
            ["peer"], registry=registry)
        self.announced_prefixes = Gauge(
            "openelb_bgp_announced_prefixes", "Prefixes this node announces over BGP.",
            registry=registry)
        self.plans = Counter(
            "openelb_speaker_plans_total", "Plans computed and applied, by result.",
            ["result"], registry=registry)
        self.skipped = Gauge(
            "openelb_speaker_skipped_services", "Services this node does not announce, by why.",
            ["reason"], registry=registry)
