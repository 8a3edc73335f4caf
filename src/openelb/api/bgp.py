"""The `BgpConf` and `BgpPeer` custom resources (v1alpha2), parsed and validated.

Pure (DESIGN §3, §6). Field names and nesting follow OpenELB exactly (they mirror
GoBGP's API, which OpenELB embedded), so existing manifests parse unchanged. Only the
BgpConf named `default` counts, and objects labelled `openelb.kubesphere.io/cni` are
ignored; both rules are exposed here as properties for the planner.
"""


import ipaddress
import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from openelb.api import annotations, errors, model, selectors

__all__ = [
    "AfiSafi",
    "BgpConf",
    "BgpConfSpec",
    "BgpPeer",
    "BgpPeerSpec",
    "GracefulRestart",
    "PeerConf",
]

ASN_MAX = 4_294_967_295
MIN_HOLD_TIME = 3  # seconds, RFC 4271 §4.2 (0, "no keepalives", is also allowed)
MD5_KEY_MAX = 80  # bytes, Linux TCP_MD5SIG_MAXKEYLEN


def _check_asn(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= ASN_MAX:
        raise ValueError(f"must be an AS number between 1 and {ASN_MAX}, got {value}")
    return value


def _check_ip(value: str) -> str:
    if value:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f'"{value}" is not an IP address') from None
    return value


def _check_seconds(value: Any) -> Any:
    # OpenELB stores timers as strings ("90") or numbers; keep what the user wrote.
    if value is None:
        return value
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or isinstance(value, bool):
        raise ValueError(f"must be a number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return value


class GracefulRestart(model.KubeModel):
    """RFC 4724 graceful restart settings (BgpConf and BgpPeer)."""

    enabled: bool = False
    restart_time: int = Field(0, alias="restartTime", ge=0, le=4095)
    helper_only: bool = Field(False, alias="helperOnly")
    deferral_time: int = Field(0, alias="deferralTime", ge=0)
    notification_enabled: bool = Field(False, alias="notificationEnabled")
    longlived_enabled: bool = Field(False, alias="longlivedEnabled")
    stale_routes_time: int = Field(0, alias="staleRoutesTime", ge=0)
    peer_restart_time: int = Field(0, alias="peerRestartTime", ge=0)
    peer_restarting: bool = Field(False, alias="peerRestarting")
    local_restarting: bool = Field(False, alias="localRestarting")
    mode: str = ""


class BgpConfSpec(model.KubeModel):
    """Global BGP settings of every speaker."""

    as_: int = Field(..., alias="as")
    as_per_rack: dict[str, int] = Field(default_factory=dict, alias="asPerRack")
    router_id: str = Field("", alias="routerId")
    listen_port: int = Field(0, alias="listenPort", ge=-1, le=65535)
    listen_addresses: tuple[str, ...] = Field((), alias="listenAddresses")
    families: tuple[int, ...] = ()
    use_multiple_paths: bool = Field(False, alias="useMultiplePaths")
    graceful_restart: GracefulRestart | None = Field(None, alias="gracefulRestart")
    policy: str = ""

    _asn = field_validator("as_")(_check_asn)

    @field_validator("as_per_rack")
    @classmethod
    def _rack_asns(cls, value: dict[str, int]) -> dict[str, int]:
        for rack, asn in value.items():
            if not 1 <= asn <= ASN_MAX:
                raise ValueError(f'rack "{rack}": AS {asn} is outside 1..{ASN_MAX}')
        return value

    @field_validator("router_id")
    @classmethod
    def _router_id_is_ipv4(cls, value: str) -> str:
        if value:
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                raise ValueError(f'"{value}" is not a dotted IPv4 router ID') from None
        return value

    @field_validator("listen_addresses")
    @classmethod
    def _listen_ips(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            _check_ip(item)
        return value


class NodeConfStatus(model.KubeModel):
    router_id: str = Field("", alias="routerId")
    as_: int = Field(0, alias="as")


class BgpConfStatus(model.KubeModel):
    nodes_conf_status: dict[str, NodeConfStatus] = Field(
        default_factory=dict, alias="nodesConfStatus"
    )


class BgpConf(model.Resource):
    """Cluster-wide BGP configuration; only the object named `default` is used."""

    spec: BgpConfSpec
    status: BgpConfStatus = Field(default_factory=BgpConfStatus)

    @classmethod
    def parse(cls, raw: Any) -> "BgpConf":
        if not isinstance(raw, dict) or "spec" not in raw:
            raise errors.InvalidObject("spec", "required")
        return model.parse_model(cls, raw)

    @property
    def counts(self) -> bool:
        """DESIGN §6: only `default` counts, and CNI-owned objects are ignored."""
        return (
            self.metadata.name == annotations.DEFAULT_BGPCONF_NAME
            and annotations.CNI_LABEL not in self.metadata.labels
        )


class PeerConf(model.KubeModel):
    """`spec.conf` of a BgpPeer."""

    peer_as: int = Field(..., alias="peerAs")
    neighbor_address: str = Field(..., alias="neighborAddress")
    auth_password: str = Field("", alias="authPassword")
    local_as: int | None = Field(None, alias="localAs")
    description: str = ""
    admin_down: bool = Field(False, alias="adminDown")
    peer_group: str = Field("", alias="peerGroup")
    peer_type: int = Field(0, alias="peerType")
    remove_private_as: Any = Field("", alias="removePrivateAs")  # GoBGP enum, kept as given
    route_flap_damping: bool = Field(False, alias="routeFlapDamping")
    send_community: int = Field(0, alias="sendCommunity")
    neighbor_interface: str = Field("", alias="neighborInterface")
    vrf: str = ""
    allow_own_as: int = Field(0, alias="allowOwnAs")
    replace_peer_as: bool = Field(False, alias="replacePeerAs")

    _asns = field_validator("peer_as", "local_as")(_check_asn)

    @field_validator("auth_password")
    @classmethod
    def _md5_key_fits(cls, value: str) -> str:
        # Linux refuses a TCP MD5 key longer than TCP_MD5SIG_MAXKEYLEN (80 bytes), and the
        # session would silently never come up; the CRD checks the same size.
        size = len(value.encode())
        if size > MD5_KEY_MAX:
            raise ValueError(f"must be at most {MD5_KEY_MAX} bytes (the Linux TCP MD5 key "
                             f"limit), got {size}")
        return value

    @field_validator("neighbor_address")
    @classmethod
    def _neighbor_ip(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return _check_ip(value)


class EbgpMultihop(model.KubeModel):
    enabled: bool = False
    multihop_ttl: int = Field(0, alias="multihopTtl", ge=0, le=255)

    @model_validator(mode="after")
    def _ttl_when_enabled(self) -> "EbgpMultihop":
        # Unset means 255 (planner/bgp.py); an explicit 0 would be a session no packet reaches.
        if self.enabled and "multihop_ttl" in self.model_fields_set and self.multihop_ttl < 1:
            raise model.SubfieldError(
                "multihopTtl", "must be between 1 and 255 when spec.ebgpMultihop.enabled is "
                f"true, got {self.multihop_ttl}")
        return self


class TimersConfig(model.KubeModel):
    connect_retry: Any = Field(None, alias="connectRetry")
    hold_time: Any = Field(None, alias="holdTime")
    keepalive_interval: Any = Field(None, alias="keepaliveInterval")
    minimum_advertisement_interval: Any = Field(None, alias="minimumAdvertisementInterval")

    _seconds = field_validator(
        "connect_retry", "hold_time", "keepalive_interval", "minimum_advertisement_interval"
    )(_check_seconds)

    @staticmethod
    def seconds(value: Any) -> float | None:
        """A timer as float seconds, or None when unset."""
        return None if value is None or value == "" else float(value)

    @model_validator(mode="after")
    def _hold_time_rules(self) -> "TimersConfig":
        # RFC 4271 §4.2: a hold time is 0 or at least 3 seconds; 0 here means "use the
        # default" (planner/bgp.py). Keepalives must come before the hold timer expires.
        # The CRD's CEL rules say the same in the same words.
        hold = self.seconds(self.hold_time)
        if hold is not None and hold != 0 and hold < MIN_HOLD_TIME:
            raise model.SubfieldError(
                "holdTime", f"must be 0 (use the default) or at least {MIN_HOLD_TIME} seconds, "
                f"got {self.hold_time!r}")
        keepalive = self.seconds(self.keepalive_interval)
        if hold and keepalive is not None and keepalive >= hold:
            raise model.SubfieldError(
                "keepaliveInterval", "must be less than spec.timers.config.holdTime "
                f"({self.hold_time!r}), got {self.keepalive_interval!r}")
        return self


class Timers(model.KubeModel):
    config: TimersConfig | None = None


class Transport(model.KubeModel):
    mtu_discovery: bool = Field(False, alias="mtuDiscovery")
    passive_mode: bool = Field(False, alias="passiveMode")
    remote_address: str = Field("", alias="remoteAddress")
    remote_port: int = Field(0, alias="remotePort", ge=0, le=65535)
    tcp_mss: int = Field(0, alias="tcpMss", ge=0)

    _remote_ip = field_validator("remote_address")(_check_ip)


class Family(model.KubeModel):
    afi: Literal["AFI_IP", "AFI_IP6"]
    safi: Literal["SAFI_UNICAST"] = "SAFI_UNICAST"


class AfiSafiConfig(model.KubeModel):
    family: Family | None = None
    enabled: bool = False


class AddPathsConfig(model.KubeModel):
    receive: bool = False
    send_max: int = Field(0, alias="sendMax", ge=0, le=255)


class AddPaths(model.KubeModel):
    config: AddPathsConfig | None = None


class MpGracefulRestartConfig(model.KubeModel):
    enabled: bool = False


class MpGracefulRestart(model.KubeModel):
    config: MpGracefulRestartConfig | None = None


class AfiSafi(model.KubeModel):
    config: AfiSafiConfig | None = None
    mp_graceful_restart: MpGracefulRestart | None = Field(None, alias="mpGracefulRestart")
    add_paths: AddPaths | None = Field(None, alias="addPaths")


class BgpPeerSpec(model.KubeModel):
    conf: PeerConf
    ebgp_multihop: EbgpMultihop | None = Field(None, alias="ebgpMultihop")
    timers: Timers | None = None
    transport: Transport | None = None
    graceful_restart: GracefulRestart | None = Field(None, alias="gracefulRestart")
    afi_safis: tuple[AfiSafi, ...] = Field((), alias="afiSafis")
    node_selector: selectors.LabelSelector | None = Field(None, alias="nodeSelector")


class BgpPeerStatus(model.KubeModel):
    # Per-node session state; written by each speaker, kept as plain dicts.
    nodes_peer_status: dict[str, dict[str, Any]] = Field(
        default_factory=dict, alias="nodesPeerStatus"
    )


class BgpPeer(model.Resource):
    """One BGP neighbour that selected nodes peer with."""

    spec: BgpPeerSpec
    status: BgpPeerStatus = Field(default_factory=BgpPeerStatus)

    @classmethod
    def parse(cls, raw: Any) -> "BgpPeer":
        if not isinstance(raw, dict) or "spec" not in raw:
            raise errors.InvalidObject("spec", "required")
        return model.parse_model(cls, raw)

    @property
    def ignored(self) -> bool:
        """DESIGN §6: a BgpPeer labelled `openelb.kubesphere.io/cni` is not ours."""
        return annotations.CNI_LABEL in self.metadata.labels

    def selects(self, node_labels: dict[str, str]) -> bool:
        """Whether a node with these labels peers with this neighbour."""
        selector = self.spec.node_selector
        return selector is None or selector.matches(node_labels)
