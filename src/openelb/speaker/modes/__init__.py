"""The registered announcement modes, in the order the speaker applies them.

Layer 2 goes first: its failover is the time-critical one. A new mode is one module
(or package) here implementing seam.Mode, plus one entry in REGISTRY.
"""

from collections.abc import Callable

from openelb.speaker import seam
from openelb.speaker.modes import bgp, layer2, vip

__all__ = ["REGISTRY"]

REGISTRY: tuple[Callable[[seam.ModeContext], seam.Mode], ...] = (
    layer2.Layer2Mode,
    vip.VipMode,
    bgp.BgpMode,
)
