"""The API resources openelb reads and writes, and how their URLs are built.

kube/ (DESIGN §3). Plain descriptors; `Resource.path()` is the only URL builder.
"""


from dataclasses import dataclass
from urllib.parse import quote

from openelb.api import annotations

__all__ = [
    "BGPCONFS",
    "BGPPEERS",
    "CRDS",
    "EIPS",
    "ENDPOINTSLICES",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "NODE_ANNOUNCEMENTS",
    "SECRETS",
    "SERVICES",
    "VALIDATING_WEBHOOKS",
    "Resource",
]


@dataclass(frozen=True, slots=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


SERVICES = Resource("", "v1", "services", "Service", True)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)
NODES = Resource("", "v1", "nodes", "Node", False)
SECRETS = Resource("", "v1", "secrets", "Secret", True)
EVENTS = Resource("", "v1", "events", "Event", True)
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)
EIPS = Resource(annotations.API_GROUP, "v1alpha2", "eips", "Eip", False)
BGPCONFS = Resource(annotations.API_GROUP, "v1alpha2", "bgpconfs", "BgpConf", False)
BGPPEERS = Resource(annotations.API_GROUP, "v1alpha2", "bgppeers", "BgpPeer", False)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
               "CustomResourceDefinition", False)
VALIDATING_WEBHOOKS = Resource("admissionregistration.k8s.io", "v1",
                               "validatingwebhookconfigurations",
                               "ValidatingWebhookConfiguration", False)
NODE_ANNOUNCEMENTS = Resource("openelb.kubesphere.io", "v1alpha1", "nodeannouncements",
                              "NodeAnnouncement", False)
