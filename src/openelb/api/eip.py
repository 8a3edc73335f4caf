"""The `Eip` custom resource (IP pool), v1alpha1 and v1alpha2, parsed and validated.

Pure (DESIGN §3, §6). `Eip.parse(raw)` validates a dict from the apiserver and raises
InvalidObject naming the field; `eip.to_raw()` gives it back without losing fields we do
not model. Cross-pool checks (overlap, two defaults) need every pool and live in
ipam/pools.py.
"""


import ipaddress
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator

from openelb.api import addresses, annotations, errors, model

__all__ = ["Eip", "EipSpec", "EipStatus", "Protocol"]

Protocol = Literal["bgp", "layer2", "vip"]
CAN_REACH_PREFIX = "can_reach:"


class EipSpec(model.KubeModel):
    """Eip spec, v1alpha2 (a superset of v1alpha1's fields)."""

    address: str
    protocol: Protocol = "bgp"
    interface: str = ""
    disable: bool = False
    using_known_ips: bool = Field(False, alias="usingKnownIPs")  # accepted, ignored
    priority: int = 0
    namespaces: tuple[str, ...] = ()
    namespace_selector: dict[str, str] = Field(default_factory=dict, alias="namespaceSelector")

    @field_validator("protocol", mode="before")
    @classmethod
    def _empty_protocol_is_bgp(cls, value: Any) -> Any:
        # OpenELB treats an empty protocol as bgp.
        return "bgp" if value in ("", None) else value


class EipStatus(model.KubeModel):
    """Eip status as OpenELB writes it."""

    occupied: bool = False
    usage: int = 0
    pool_size: int = Field(0, alias="poolSize")
    used: dict[str, str] = Field(default_factory=dict)
    first_ip: str = Field("", alias="firstIP")
    last_ip: str = Field("", alias="lastIP")
    ready: bool = False
    v4: bool = False


class Eip(model.Resource):
    """An IP pool. Build with `Eip.parse`; the constructor trusts its input."""

    spec: EipSpec
    status: EipStatus = Field(default_factory=EipStatus)
    _declared: addresses.DeclaredRange | None = PrivateAttr(None)

    @classmethod
    def parse(cls, raw: Any) -> "Eip":
        """Validate an apiserver dict (either served version) into an Eip."""
        if not isinstance(raw, dict):
            raise errors.InvalidObject("(object)", "must be an object")
        if "spec" not in raw:
            raise errors.InvalidObject("spec", "required")
        eip = model.parse_model(cls, raw)
        eip._declared = addresses.parse_address(eip.spec.address)
        eip._check_interface()
        return eip

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def declared(self) -> addresses.DeclaredRange:
        """The address range as written; parse() guarantees it is valid."""
        if self._declared is None:
            self._declared = addresses.parse_address(self.spec.address)
        return self._declared

    @property
    def is_default(self) -> bool:
        return self.metadata.annotations.get(annotations.DEFAULT_EIP_ANNOTATION) == "true"

    @property
    def can_reach(self) -> addresses.IPAddress | None:
        """The IP of `interface: can_reach:<IP>`, if the interface is given that way."""
        if self.spec.interface.startswith(CAN_REACH_PREFIX):
            return ipaddress.ip_address(self.spec.interface.removeprefix(CAN_REACH_PREFIX))
        return None

    def _check_interface(self) -> None:
        iface = self.spec.interface
        if self.spec.protocol in ("layer2", "vip") and not iface:
            raise errors.InvalidObject(
                "spec.interface", f"required when spec.protocol is {self.spec.protocol}"
            )
        if iface.startswith(CAN_REACH_PREFIX):
            addresses.parse_ip(iface.removeprefix(CAN_REACH_PREFIX), "spec.interface")
        elif iface == "lo":
            raise errors.InvalidObject(
                "spec.interface", 'must not be "lo": no LAN client can reach it', value=iface
            )
