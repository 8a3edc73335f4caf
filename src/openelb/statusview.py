"""`openelb status`: one screen answering "is my load balancer healthy?".

Pure (DESIGN §3, level of manifests): `build()` turns what the apiserver holds (Eips,
Services, BgpConfs, BgpPeers, Events) into a `Report` value; `render()` prints it as
aligned text; `as_dict()` is the same for `-o json|yaml`. The CLI (cli.py) fetches the
objects and prints. Nothing here guesses: a fact the API does not hold is shown as
unknown, and the last AnnounceIP/WithdrawIP Event is quoted as what it is.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from openelb.api import annotations as api_annotations
from openelb.api import errors, service

__all__ = ["Report", "answered", "as_dict", "build", "render", "unannounced"]

ANNOUNCE_REASONS = ("AnnounceIP", "WithdrawIP")
ESTABLISHED = "BGP_FSM_ESTABLISHED"
# A NodeAnnouncement not renewed for this long is a speaker that stopped without
# clearing it (speakers renew every minute).
STALE_AFTER = datetime.timedelta(minutes=3)
MODE_WORDS = {"layer2": "answers ARP/NDP", "vip": "VRRP master"}


@dataclasses.dataclass(frozen=True)
class Pool:
    name: str
    mode: str
    address: str
    size: int
    used: int
    ready: str  # "yes", or "no: <why>"
    default: bool
    disabled: bool


@dataclasses.dataclass(frozen=True)
class Svc:
    key: str
    ips: tuple[str, ...]
    pool: str
    mode: str
    state: str  # "assigned", or "pending: <why>"
    announced: str  # what the API says about who announces it


@dataclasses.dataclass(frozen=True)
class Session:
    peer: str
    node: str
    neighbor: str
    state: str
    reason: str
    since: str = ""  # when it entered its state (uptime or downtime), RFC 3339; "" unknown
    age: str = ""  # how long ago that was, e.g. "3m05s"
    prefixes: int | None = None  # BGP addresses the node announces (its NodeAnnouncement)


@dataclasses.dataclass(frozen=True)
class Report:
    pools: tuple[Pool, ...]
    services: tuple[Svc, ...]
    sessions: tuple[Session, ...]
    problems: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.problems


def _meta(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = raw.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _ready(raw: Mapping[str, Any]) -> tuple[bool | None, str]:
    """The object's Ready condition: (True/False, message), (None, "") when absent."""
    for condition in ((raw.get("status") or {}).get("conditions") or ()):
        if condition.get("type") == "Ready":
            ok = condition.get("status") == "True"
            return ok, str(condition.get("message") or condition.get("reason") or "")
    return None, ""


def _stamp(event: Mapping[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or "")


def _newest(events: Iterable[Mapping[str, Any]], reasons: Iterable[str]
            ) -> dict[str, Mapping[str, Any]]:
    """Service key -> its newest Event with one of `reasons`."""
    wanted = frozenset(reasons)
    newest: dict[str, Mapping[str, Any]] = {}
    for event in events:
        if event.get("reason") not in wanted:
            continue
        obj = event.get("involvedObject") or event.get("regarding") or {}
        if obj.get("kind") != "Service":
            continue
        key = f"{obj.get('namespace')}/{obj.get('name')}"
        best = newest.get(key)
        if best is None or _stamp(event) >= _stamp(best):
            newest[key] = event
    return newest


def _parse_time(text: object) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def _age(since: datetime.datetime | None, now: datetime.datetime) -> str:
    if since is None:
        return ""
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                      ("m", 60, "s", 1)):
        if seconds >= size:
            return f"{seconds // size}{unit}{seconds % size // sub_size:02d}{sub}"
    return f"{seconds}s"


def answered(records: Iterable[Mapping[str, Any]], now: datetime.datetime
             ) -> dict[str, set[str]]:
    """mode ("layer2", "vip") -> the addresses some fresh NodeAnnouncement lists."""
    owners = _owners(list(records), now, [], {}) or {}
    return {mode: set(owners.get(mode, ())) for mode in MODE_WORDS}


def established_anywhere(bgppeers: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any node reports an established session with any BgpPeer."""
    return any(((entry or {}).get("peerState") or {}).get("sessionState") == ESTABLISHED
               for raw in bgppeers
               for entry in ((raw.get("status") or {}).get("nodesPeerStatus") or {}).values())


def unannounced(addresses: Mapping[str, Iterable[Any]], modes: Mapping[str, str],
                records: Iterable[Mapping[str, Any]], bgppeers: Iterable[Mapping[str, Any]],
                now: datetime.datetime) -> dict[str, int]:
    """mode -> how many assigned addresses nobody announces: a layer-2 or VIP address
    no fresh NodeAnnouncement lists, a BGP address while no node has an established
    session. `addresses`: pool -> its assigned addresses; `modes`: pool -> protocol."""
    counts = {"bgp": 0, **dict.fromkeys(MODE_WORDS, 0)}
    heard = answered(records, now)
    bgp_up: bool | None = None
    for pool, ips in addresses.items():
        mode = modes.get(pool)
        if mode == "bgp":
            if bgp_up is None:
                bgp_up = established_anywhere(bgppeers)
            if not bgp_up:
                counts["bgp"] += sum(1 for _ in ips)
        elif mode in heard:
            counts[mode] += sum(1 for ip in ips if str(ip) not in heard[mode])
    return counts


def _owners(records: Sequence[Mapping[str, Any]], now: datetime.datetime,
            problems: list[str], prefixes: dict[str, int]
            ) -> dict[str, dict[str, list[str]]] | None:
    """mode -> address -> the nodes whose fresh NodeAnnouncement lists it; None when no
    speaker writes records (an older speaker, or the CRD not installed). Fills
    `prefixes`: node -> the BGP addresses its fresh record counts."""
    if not records:
        return None
    owners: dict[str, dict[str, list[str]]] = {"layer2": {}, "vip": {}}
    for raw in sorted(records, key=lambda r: str(_meta(r).get("name"))):
        node = str(_meta(raw).get("name"))
        status = raw.get("status") or {}
        renewed = _parse_time(status.get("renewTime"))
        if renewed is None:
            continue
        if now - renewed > STALE_AFTER:
            problems.append(f"node {node}'s speaker has not renewed its NodeAnnouncement "
                            f"for {int((now - renewed).total_seconds())} s: is it running?")
            continue
        prefixes[node] = int(status.get("bgpPrefixes") or 0)
        for mode in owners:
            for ip in (status.get(mode) or {}):
                owners[mode].setdefault(str(ip), []).append(node)
    return owners


def build(*, eips: Sequence[Mapping[str, Any]], services: Sequence[Mapping[str, Any]],
          bgpconfs: Sequence[Mapping[str, Any]], bgppeers: Sequence[Mapping[str, Any]],
          events: Sequence[Mapping[str, Any]], lb_class: str | None = None,
          announcements: Sequence[Mapping[str, Any]] = (),
          now: datetime.datetime | None = None) -> Report:
    problems: list[str] = []
    now = now or datetime.datetime.now(datetime.UTC)
    prefixes: dict[str, int] = {}
    owners = _owners(announcements, now, problems, prefixes)
    pools: list[Pool] = []
    modes: dict[str, str] = {}
    for raw in sorted(eips, key=lambda r: str(_meta(r).get("name"))):
        meta, spec, status = _meta(raw), raw.get("spec") or {}, raw.get("status") or {}
        name = str(meta.get("name"))
        mode = str(spec.get("protocol") or "bgp")
        modes[name] = mode
        ok, why = _ready(raw)
        if ok is None:
            ok = bool(status.get("ready"))
            why = "" if ok else "not accepted by the controller yet"
        if not ok:
            problems.append(f"eip/{name} is not ready: {why}")
        size, used = int(status.get("poolSize") or 0), int(status.get("usage") or 0)
        if size and used / size >= 0.9:
            problems.append(f"eip/{name} is {used} of {size} used")
        pools.append(Pool(
            name, mode, str(spec.get("address") or ""), size, used,
            "yes" if ok else f"no: {why}",
            (meta.get("annotations") or {}).get(api_annotations.DEFAULT_EIP_ANNOTATION)
            == "true", bool(spec.get("disable"))))

    sessions: list[Session] = []
    established: dict[str, set[str]] = {}  # node -> peers it has a session with
    for raw in sorted(bgppeers, key=lambda r: str(_meta(r).get("name"))):
        name = str(_meta(raw).get("name"))
        ok, why = _ready(raw)
        if ok is False:
            problems.append(f"bgppeer/{name} is not used: {why}")
        for node, entry in sorted(((raw.get("status") or {}).get("nodesPeerStatus")
                                   or {}).items()):
            state = (entry or {}).get("peerState") or {}
            timers = (entry or {}).get("timersState") or {}
            up = state.get("sessionState") == ESTABLISHED
            since = str(timers.get("uptime" if up else "downtime") or "")
            session = Session(name, node, str(state.get("neighborAddress") or ""),
                              str(state.get("sessionState") or "unknown"),
                              str(state.get("reason") or ""), since,
                              _age(_parse_time(since), now),
                              prefixes.get(node) if up else None)
            sessions.append(session)
            if session.state == ESTABLISHED:
                established.setdefault(node, set()).add(name)
            else:
                problems.append(f"BGP session of node {node} with bgppeer/{name} is "
                                f"{_short(session.state)}"
                                + (f" ({session.reason})" if session.reason else ""))
    for raw in bgpconfs:
        ok, why = _ready(raw)
        name = str(_meta(raw).get("name"))
        if ok is False and name == api_annotations.DEFAULT_BGPCONF_NAME:
            problems.append(f"bgpconf/{name} is not used: {why}")

    announce = _newest(events, ANNOUNCE_REASONS)
    pending = {key: str(event.get("message") or "")
               for key, event in _newest(events, ("AssignIPFailed",)).items()}
    svcs: list[Svc] = []
    for raw in services:
        try:
            svc = service.LbService.parse(raw, lb_class=lb_class)
        except errors.InvalidObject as exc:
            meta = _meta(raw)
            problems.append(f"service/{meta.get('namespace')}/{meta.get('name')}: "
                            f"{exc.message}")
            continue
        if not svc.wants_address:
            continue
        labels = _meta(raw).get("labels") or {}
        pool = str(labels.get(api_annotations.EIP_LABEL) or "")
        mode = modes.get(pool, "")
        ips = tuple(sorted((str(ip) for ip in svc.assigned_ips),
                           key=lambda text: ipaddress.ip_address(text).packed))
        if ips:
            state = "assigned"
        else:
            why = pending.get(svc.key, "waiting for the controller")
            state = f"pending: {why}"
            problems.append(f"service/{svc.key} has no address: {why}")
        for condition in ((raw.get("status") or {}).get("conditions") or ()):
            if (condition.get("type") == "openelb.kubesphere.io/Announceable"
                    and condition.get("status") == "False"):
                problems.append(f"service/{svc.key}: {condition.get('message')}")
        if ips and mode == "bgp" and not established:
            problems.append(f"service/{svc.key}: nobody announces {', '.join(ips)}: no node "
                            "has an established BGP session")
        if owners is not None and mode in MODE_WORDS and ips:
            text = _recorded(svc.key, mode, ips, owners[mode], problems)
        else:
            text = _announced(mode, ips, established, announce.get(svc.key))
        svcs.append(Svc(svc.key, ips, pool, mode, state, text))
    svcs.sort(key=lambda s: s.key)
    return Report(tuple(pools), tuple(svcs), tuple(sessions), tuple(problems))


def _recorded(key: str, mode: str, ips: tuple[str, ...],
              owners: Mapping[str, list[str]], problems: list[str]) -> str:
    """Who answers for a layer-2 or VIP Service, from the nodes' records."""
    parts = []
    for ip in ips:
        nodes = owners.get(ip, [])
        if not nodes:
            problems.append(f"service/{key}: no node answers ARP/NDP for {ip}"
                            if mode == "layer2" else
                            f"service/{key}: no node is VRRP master of {ip}")
            parts.append(f"{ip}: nobody")
        elif len(nodes) > 1:
            problems.append(f"service/{key}: {len(nodes)} nodes claim {ip}: "
                            f"{', '.join(nodes)}")
            parts.append(f"{ip}: {', '.join(nodes)} (conflict)")
        else:
            parts.append(nodes[0])
    who = "; ".join(parts)
    return f"{MODE_WORDS[mode]}: {who}"


def _short(state: str) -> str:
    return state.removeprefix("BGP_FSM_").lower()


def _announced(mode: str, ips: tuple[str, ...], established: Mapping[str, set[str]],
               event: Mapping[str, Any] | None) -> str:
    if not ips:
        return "-"
    if mode == "bgp":
        nodes = sorted(established)
        if not nodes:
            return "no node has an established BGP session"
        return f"by BGP, nodes with a session: {', '.join(nodes)}"
    if event is None:
        return "unknown (no AnnounceIP Event in the last hour)"
    source = event.get("source") or {}
    node = source.get("host") or event.get("reportingInstance") or "?"
    verb = "announced" if event.get("reason") == "AnnounceIP" else "withdrawn"
    return f"last {verb} by node {node} (Event)"


def as_dict(report: Report) -> dict[str, Any]:
    return {"healthy": report.healthy, **dataclasses.asdict(report)}


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = []
    for row in (header, *rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False))
                     .rstrip())
    return lines


def render(report: Report) -> str:
    out = [f"openelb: {'healthy' if report.healthy else 'PROBLEMS FOUND'}", ""]
    out.append("POOLS")
    out += _table(("NAME", "MODE", "RANGE", "SIZE", "USED", "FREE", "READY"), [
        (p.name + (" (default)" if p.default else "") + (" (disabled)" if p.disabled else ""),
         p.mode, p.address, str(p.size), str(p.used), str(max(p.size - p.used, 0)), p.ready)
        for p in report.pools]) if report.pools else ["  none"]
    out += ["", "SERVICES"]
    out += _table(("SERVICE", "IP", "POOL", "MODE", "STATE", "ANNOUNCED"), [
        (s.key, ",".join(s.ips) or "-", s.pool or "-", s.mode or "-", s.state, s.announced)
        for s in report.services]) if report.services else ["  none"]
    out += ["", "BGP SESSIONS"]
    out += _table(("PEER", "NODE", "NEIGHBOR", "STATE", "FOR", "PREFIXES", "REASON"), [
        (s.peer, s.node, s.neighbor, _short(s.state), s.age or "-",
         "-" if s.prefixes is None else str(s.prefixes), s.reason or "-")
        for s in report.sessions]) if report.sessions else ["  none"]
    out += ["", "PROBLEMS"]
    out += [f"  - {p}" for p in report.problems] or ["  none"]
    return "\n".join(out) + "\n"
