"""IP address management: pools, sharing rules and the allocator.

Pure (DESIGN §3): no I/O, no logging, no clock. Called by the controller (leader only)
and by the webhook. Import submodules as namespaces (`from openelb.ipam import allocator`).
"""

from openelb.ipam import allocator, coverage, errors, occupancy, pools, ranges, sharing

__all__ = ["allocator", "coverage", "errors", "occupancy", "pools", "ranges", "sharing"]
