"""Typed models of openelb's API: the OpenELB CRDs, the Service annotations, and errors.

Pure (DESIGN §3): no I/O, no logging. Import submodules as namespaces
(`from openelb.api import eip`, then `eip.Eip.parse(raw)`).
"""

from openelb.api import (
    addresses,
    annotations,
    bgp,
    conversion,
    eip,
    errors,
    model,
    nodes,
    selectors,
    service,
)

__all__ = [
    "addresses",
    "annotations",
    "bgp",
    "conversion",
    "eip",
    "errors",
    "model",
    "nodes",
    "selectors",
    "service",
]
