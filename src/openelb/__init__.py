"""openelb: LoadBalancer IPs for bare-metal Kubernetes, compatible with OpenELB's API.

Layers (DESIGN §3, enforced by the import-linter contracts in pyproject.toml):
cli -> controller/speaker -> planner -> ipam -> api; kube/ and announce/ are the only
modules that do I/O.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
