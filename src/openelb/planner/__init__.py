"""The planner: from a snapshot of the cluster and a node name to what that node must
announce. Pure (DESIGN §3): no I/O, no logging, no clock. Import submodules as
namespaces (`from openelb.planner import bgp`)."""

from openelb.planner import bgp, eligibility, snapshot

__all__ = ["bgp", "eligibility", "snapshot"]
