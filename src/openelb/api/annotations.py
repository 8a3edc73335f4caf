"""Every annotation, label, finalizer and API name openelb reads or writes, defined once.

Pure constants (DESIGN §6, STYLE §2.12). Legacy spellings sit next to the current ones so
a migrating user's objects keep working.
"""

from typing import Final

__all__ = [
    "API_GROUP",
    "CNI_LABEL",
    "DEFAULT_BGPCONF_NAME",
    "DEFAULT_EIP_ANNOTATION",
    "EIP_LABEL",
    "EXCLUDE_LB_LABEL",
    "FINALIZER",
    "LB_ANNOTATION",
    "LB_ANNOTATION_VALUE",
    "POOL_ANNOTATION",
    "PORTER_VALUE",
    "PROTOCOL_ANNOTATION_LEGACY",
    "RACK_LABEL",
    "REQUESTED_IP_ANNOTATION",
    "SHARING_ANNOTATIONS",
    "V1ALPHA1_FIELDS",
    "V1ALPHA2_FIELDS",
    "VERSIONS",
]

API_GROUP: Final = "network.kubesphere.io"
VERSIONS: Final = ("v1alpha1", "v1alpha2")

# Service opt-in: `lb.kubesphere.io/v1alpha1: openelb`.
LB_ANNOTATION: Final = "lb.kubesphere.io/v1alpha1"
LB_ANNOTATION_VALUE: Final = "openelb"
PORTER_VALUE: Final = "porter"  # Porter's (pre-OpenELB) opt-in value: answered, not honoured
# Pool (Eip name) requested by a Service; also the label the controller writes back.
POOL_ANNOTATION: Final = "eip.openelb.kubesphere.io/v1alpha2"
EIP_LABEL: Final = "eip.openelb.kubesphere.io/v1alpha2"
# Specific IP(s) requested by a Service (comma-separated for dual stack).
REQUESTED_IP_ANNOTATION: Final = "eip.openelb.kubesphere.io/v1alpha1"
# Legacy: the protocol used to be chosen per Service; the Eip decides now.
PROTOCOL_ANNOTATION_LEGACY: Final = "protocol.openelb.kubesphere.io/v1alpha1"
# Sharing key. Ours first, then MetalLB's current and legacy spellings for migrating users.
SHARING_ANNOTATIONS: Final = (
    "openelb.kubesphere.io/allow-shared-ip",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
)
FINALIZER: Final = "finalizer.lb.kubesphere.io/v1alpha1"

DEFAULT_EIP_ANNOTATION: Final = "eip.openelb.kubesphere.io/is-default-eip"
# BgpConf/BgpPeer objects with this label belong to a CNI and are ignored.
CNI_LABEL: Final = "openelb.kubesphere.io/cni"
RACK_LABEL: Final = "openelb.kubesphere.io/rack"
EXCLUDE_LB_LABEL: Final = "node.kubernetes.io/exclude-from-external-load-balancers"
DEFAULT_BGPCONF_NAME: Final = "default"
# Conversion (api/conversion.py): what one version cannot hold rides along on the object
# converted to it, named after the version whose fields it carries.
V1ALPHA1_FIELDS: Final = "conversion.openelb.kubesphere.io/v1alpha1-fields"
V1ALPHA2_FIELDS: Final = "conversion.openelb.kubesphere.io/v1alpha2-fields"
