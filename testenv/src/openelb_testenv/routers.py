"""The lab router's BGP daemons: BIRD 2, FRR and GoBGP, plus a stub speaker for nodes.

Test environment (DESIGN §5), built on netlab.py, which picks a flavour through
`FLAVOURS` for LabSettings.router. Every flavour renders the same `netlab.RouterConfig`:
AS 64513, one eBGP session per neighbour address (IPv4 and IPv6 sessions carry their
own family), import everything, export nothing, hold/keepalive/connect-retry timers,
optional TCP MD5 password, passive mode and ADD-PATH receive, and ECMP across every
node that announces a prefix. Each daemon keeps its config, control socket, pid file
and log in the lab's work dir (`<workdir>/router/<flavour>/`), never /etc or /run, so
several labs and the host's own services never clash.

How each flavour reaches the router namespace's kernel FIB:
  bird   the kernel protocol with `merge paths` (ECMP) exports the best routes.
  frr    bgpd with `maximum-paths` hands multipath routes to zebra, which installs them.
  gobgp  gobgpd has no FIB of its own, and its zebra client (Debian 12: gobgpd 3.10)
         cannot talk to Debian 12's zebra (FRR 8.4): it dies decoding zebra's interface
         messages, whatever `software-name` it is given. So `routes()` reads GoBGP's own
         RIB through the `gobgp` CLI, the daemon's authoritative view (ECMP set = the
         paths whose AS path length and origin equal the best path's), and a small FIB
         sync (`_GobgpFib`) mirrors that same set into the kernel so that traffic
         through the lab router works too; `kernel_routes()` reads the kernel.

BirdSpeaker runs BIRD in a node namespace announcing static prefixes with next hop
self: a stand-in for openelb's speaker in tests of the lab itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import pwd
import re
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from openelb_testenv import netlab

__all__ = ["FLAVOURS", "Bird", "BirdSpeaker", "Frr", "Gobgp", "gobgp_ecmp"]

_BIRDC_TIMEOUT = 10.0
_START_TIMEOUT = 20.0


def _password(text: str) -> str:
    # Passwords go into three config syntaxes verbatim; keep them simple and safe.
    if not re.fullmatch(r"[A-Za-z0-9._+=@%:/-]+", text):
        raise netlab.NetlabError(f"password: {text!r} holds characters the lab cannot quote")
    return text


def _proto_name(address: netlab.IPAddress) -> str:
    return "peer_" + re.sub(r"[^0-9a-zA-Z]", "_", str(address))


async def _wait_ready(
    what: str, process: netlab.LabProcess, argv: Sequence[str], timeout: float
) -> None:
    """Poll a control command until it succeeds; fail early if the daemon exits."""

    async def probe() -> tuple[bool, object]:
        if not process.running:
            raise netlab.NetlabError(f"{process.name} exited during start:\n{process.log_tail()}")
        result = await netlab.run(argv, check=False, timeout=_BIRDC_TIMEOUT)
        return result.returncode == 0, (result.stdout + result.stderr).strip()[-500:]

    await netlab.poll_until(what, probe, timeout, process.log_tail, interval=0.1)


async def _query(argv: Sequence[str]) -> tuple[str | None, str]:
    """(stdout, "") of a control command, or (None, why) when it fails or hangs: a
    daemon still starting may refuse it, which `loaded()` reports as not loaded yet."""
    try:
        result = await netlab.run(argv, check=False, timeout=_BIRDC_TIMEOUT)
    except netlab.CommandFailed as exc:
        return None, str(exc)
    if result.returncode != 0:
        return None, (result.stdout + result.stderr).strip()[-500:]
    return result.stdout, ""


# --- BIRD -------------------------------------------------------------------------------


def _bird_timers(config: netlab.RouterConfig) -> str:
    return (
        f"    hold time {config.hold_time};\n"
        f"    keepalive time {config.keepalive};\n"
        f"    connect retry time {config.connect_retry};\n"
        # Start connecting at once, and come back within seconds after an error (the
        # defaults, 5 s and 60-300 s, would hide a restarted speaker for minutes).
        "    connect delay time 1;\n"
        "    error wait time 1, 3;\n"
    )


def _bird_session(name: str, local_as: int, peer: netlab.Peer, timers: str, channel: str) -> str:
    lines = [
        f"protocol bgp {name} {{",
        f"    local as {local_as};",
        f"    neighbor {peer.address} as {peer.remote_as};",
    ]
    if peer.password is not None:
        lines.append(f'    password "{_password(peer.password)}";')
    if peer.passive:
        lines.append("    passive on;")
    return "\n".join(lines) + "\n" + timers + channel + "}\n"


class _BirdDaemon:
    """One `bird -f` with its own config, control socket and pid file under `workdir`."""

    def __init__(self, host: netlab.Host, workdir: Path, name: str) -> None:
        self.host = host
        self.workdir = workdir
        self.name = name
        self.config_path = workdir / f"{name}.conf"
        self.socket_path = workdir / f"{name}.ctl"
        self.process: netlab.LabProcess | None = None

    def birdc_argv(self, *command: str) -> list[str]:
        return self.host.argv("birdc", "-s", str(self.socket_path), *command)

    async def start(self, config_text: str) -> netlab.LabProcess:
        self.config_path.write_text(config_text)
        self.process = await self.host.spawn(
            [
                "bird", "-f", "-c", str(self.config_path), "-s", str(self.socket_path),
                "-P", str(self.workdir / f"{self.name}.pid"),
            ],
            self.workdir / f"{self.name}.log",
            name=f"{self.host.name}/{self.name}",
        )  # fmt: skip
        await _wait_ready(
            f"{self.name} control socket", self.process, self.birdc_argv("show", "status"),
            _START_TIMEOUT,
        )  # fmt: skip
        return self.process

    async def birdc(self, *command: str) -> str:
        result = await netlab.run(self.birdc_argv(*command), timeout=_BIRDC_TIMEOUT)
        return result.stdout

    async def reconfigure(self, config_text: str) -> None:
        self.config_path.write_text(config_text)
        out = await self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration" not in out:
            raise netlab.NetlabError(f"{self.name}: birdc configure failed: {out.strip()}")

    async def protocol_states(self) -> dict[str, netlab.SessionState]:
        """BGP protocol name -> session state, from `birdc show protocols`."""
        states = {}
        for line in (await self.birdc("show", "protocols")).splitlines():
            # name  BGP  table  state  since  info (info starts with the BGP state)
            match = re.match(r"^(\S+)\s+BGP\s+\S+\s+(\S+)\s+\S+\s*(\S*)", line)
            if match:
                name, _proto_state, info = match.groups()
                states[name] = netlab.SessionState.parse(info) if info else netlab.SessionState.IDLE
        return states


class Bird(netlab.Router):
    """BIRD 2: one BGP protocol per neighbour, kernel protocols with `merge paths` (ECMP)."""

    flavour = "bird"
    tools: ClassVar[Mapping[str, str]] = {"bird": "bird2", "birdc": "bird2"}

    def __init__(
        self,
        host: netlab.Host,
        config: netlab.RouterConfig,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(host, config, aliases)
        self._daemon = _BirdDaemon(host, self.workdir, "bird")

    def render(self) -> str:
        """The bird.conf for the current config."""
        config = self.config
        parts = [
            "# Rendered by openelb_testenv.routers for one lab run.\n",
            "log stderr all;\n",
            f"router id {config.router_id};\n",
            "protocol device { scan time 10; }\n",
        ]
        for family in ("ipv4", "ipv6"):
            parts.append(
                f"protocol kernel kernel_{family} {{\n"
                f"    {family} {{ import none; export all; }};\n"
                # ECMP: equally good routes from several nodes become one multipath route.
                f"    merge paths on limit {config.max_paths};\n"
                "}\n"
            )
        timers = _bird_timers(config)
        add_paths = " add paths rx;" if config.add_path_receive else ""
        for peer in self.peers:
            family = "ipv4" if peer.address.version == 4 else "ipv6"
            channel = f"    {family} {{ import all; export none;{add_paths} }};\n"
            parts.append(
                _bird_session(_proto_name(peer.address), config.asn, peer, timers, channel)
            )
        return "".join(parts)

    async def start(self) -> None:
        process = await self._daemon.start(self.render())
        self.processes.append(process)
        await self.wait_loaded(process)

    async def loaded(self) -> tuple[bool, object]:
        status, why = await _query(self._daemon.birdc_argv("show", "status"))
        if status is None:
            return False, why
        protocols, why = await _query(self._daemon.birdc_argv("show", "protocols", "all"))
        if protocols is None:
            return False, why
        router_id = re.search(r"Router ID is (\S+)", status)
        # Every BGP protocol's block lists its "Local AS"; BIRD reads a config whole.
        names = set(re.findall(r"^(\S+)\s+BGP\s", protocols, re.MULTILINE))
        local_as = {int(n) for n in re.findall(r"^\s+Local AS:\s+(\d+)", protocols, re.MULTILINE)}
        seen = {"router_id": router_id[1] if router_id else None, "local_as": sorted(local_as),
                "protocols": sorted(names)}
        wanted = {_proto_name(peer.address) for peer in self.peers}
        return (seen["router_id"] == str(self.config.router_id) and wanted <= names
                and local_as <= {self.config.asn}), seen

    async def sessions(self) -> dict[str, netlab.SessionState]:
        states = await self._daemon.protocol_states()
        return {
            str(peer.address): states.get(_proto_name(peer.address), netlab.SessionState.IDLE)
            for peer in self.peers
        }

    async def birdc(self, *command: str) -> str:
        """Run a birdc command against this router (e.g. `show route all`)."""
        return await self._daemon.birdc(*command)


# --- FRR --------------------------------------------------------------------------------


def _frr_user() -> tuple[int, int]:
    # FRR's daemons insist that their user be in the vty group (frrvty); root is not, so
    # they run as the `frr` user the Debian package creates and own their own directory.
    try:
        entry = pwd.getpwnam("frr")
    except KeyError:
        raise netlab.ToolMissing({"user frr": "frr"}) from None
    return entry.pw_uid, entry.pw_gid


class Frr(netlab.Router):
    """FRR: zebra + bgpd with `maximum-paths`; zebra installs multipath routes."""

    flavour = "frr"
    tools: ClassVar[Mapping[str, str]] = {
        "/usr/lib/frr/zebra": "frr",
        "/usr/lib/frr/bgpd": "frr",
        "vtysh": "frr",
    }

    @property
    def _zserv(self) -> Path:
        return self.workdir / "zserv.api"

    def render(self) -> str:
        """The bgpd.conf for the current config (zebra's needs nothing)."""
        config = self.config
        lines = [
            "! Rendered by openelb_testenv.routers for one lab run.",
            "frr defaults traditional",
            "hostname router",
            f"router bgp {config.asn}",
            f" bgp router-id {config.router_id}",
            # FRR >= 7.4 drops eBGP routes without an explicit policy (RFC 8212).
            " no bgp ebgp-requires-policy",
            " no bgp default ipv4-unicast",
            " no bgp network import-check",
            f" timers bgp {config.keepalive} {config.hold_time}",
        ]
        for peer in self.peers:
            address = peer.address
            lines.append(f" neighbor {address} remote-as {peer.remote_as}")
            lines.append(f" neighbor {address} timers connect {config.connect_retry}")
            if peer.password is not None:
                lines.append(f" neighbor {address} password {_password(peer.password)}")
            if peer.passive:
                lines.append(f" neighbor {address} passive")
        for family, version in (("ipv4", 4), ("ipv6", 6)):
            peers = [p for p in self.peers if p.address.version == version]
            if not peers:
                continue
            lines.append(f" address-family {family} unicast")
            lines.append(f"  maximum-paths {config.max_paths}")
            for peer in peers:
                lines.append(f"  neighbor {peer.address} activate")
            lines.append(" exit-address-family")
        # No `set ipv6 next-hop prefer-global` route-map: any inbound route-map delays
        # routes by ~3 s in FRR 8.4; link-local next hops are mapped by Router.aliases.
        lines.append("")
        # ADD-PATH receive: FRR 8.4 always offers it (there is no knob to turn it off).
        return "\n".join(lines)

    def _daemon_argv(self, daemon: str) -> list[str]:
        return [
            f"/usr/lib/frr/{daemon}",
            "-f", str(self.workdir / f"{daemon}.conf"),
            "-i", str(self.workdir / f"{daemon}.pid"),
            "-z", str(self._zserv),
            "--vty_socket", str(self.workdir),
            "-P", "0",  # no TCP vty port
            "--log", "stdout",
            "--log-level", "info",
        ]  # fmt: skip

    def vtysh_argv(self, *commands: str) -> list[str]:
        argv = ["vtysh", "--vty_socket", str(self.workdir), "--config_dir", str(self.workdir)]
        for command in commands:
            argv += ["-c", command]
        return self.host.argv(*argv)

    async def vtysh(self, *commands: str) -> str:
        """Run vtysh commands against this router (e.g. `show bgp ipv4 unicast`)."""
        result = await netlab.run(self.vtysh_argv(*commands), timeout=_BIRDC_TIMEOUT)
        return result.stdout

    async def start(self) -> None:
        uid, gid = _frr_user()
        os.chown(self.workdir, uid, gid)
        for name, text in (
            ("zebra.conf", "hostname router\n"),
            ("bgpd.conf", self.render()),
            ("vtysh.conf", ""),
        ):
            path = self.workdir / name
            path.write_text(text)
            os.chown(path, uid, gid)
        # A socket left by the previous zebra would let bgpd start before the new zebra
        # listens: bgpd's first connect fails, it retries only after 10 s, and meanwhile
        # it knows no interfaces and drops IPv6 routes with link-local next hops.
        self._zserv.unlink(missing_ok=True)
        zebra = await self._spawn("zebra", self._daemon_argv("zebra"))
        await zebra.wait_until("zebra's zserv socket exists", self._zserv.exists, _START_TIMEOUT)
        bgpd = await self._spawn("bgpd", [*self._daemon_argv("bgpd"), "-p", "179"])
        await _wait_ready(
            "bgpd answers vtysh", bgpd, self.vtysh_argv("show bgp summary json"), _START_TIMEOUT
        )
        await self._wait_bgpd_joined_zebra(bgpd)
        await self.wait_loaded(bgpd)

    async def loaded(self) -> tuple[bool, object]:
        text, why = await _query(self.vtysh_argv("show bgp neighbors json"))
        if text is None:
            return False, why
        data: dict[str, Any] = json.loads(text or "{}")
        seen = {address: (entry.get("localAs"), entry.get("localRouterId"))
                for address, entry in data.items() if isinstance(entry, dict)}
        wanted = (self.config.asn, str(self.config.router_id))
        return all(seen.get(peer) == wanted for peer in self.expected_neighbours()), seen

    async def _wait_bgpd_joined_zebra(self, bgpd: netlab.LabProcess) -> None:
        """Return once zebra lists bgpd as a client (it then has the interfaces)."""

        async def probe() -> tuple[bool, object]:
            if not bgpd.running:
                raise netlab.NetlabError(f"bgpd exited during start:\n{bgpd.log_tail()}")
            out = await self.vtysh("show zebra client summary")
            joined = any(line.split()[:1] == ["bgp"] for line in out.splitlines())
            return joined, out.strip()[-500:]

        await netlab.poll_until(
            "bgpd connected to zebra", probe, _START_TIMEOUT, self.log_tail, interval=0.1
        )

    async def sessions(self) -> dict[str, netlab.SessionState]:
        data: dict[str, Any] = json.loads(await self.vtysh("show bgp neighbors json") or "{}")
        states = {}
        for peer in self.peers:
            entry = data.get(str(peer.address)) or {}
            states[str(peer.address)] = netlab.SessionState.parse(entry.get("bgpState", "Idle"))
        return states


# --- GoBGP ------------------------------------------------------------------------------

_GOBGP_API = "127.0.0.1:50051"
_FIB_PROTO = "bgp"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def _gobgp_path_hops(path: Mapping[str, Any]) -> tuple[str | None, tuple[int, int]]:
    """(next hop, (AS path length, origin)) of one path of `gobgp global rib -j`."""
    hop: str | None = None
    as_path_length = 0
    origin = 0
    for attr in path.get("attrs", ()):
        kind = attr.get("type")
        if kind == 1:  # ORIGIN
            origin = int(attr.get("value", 0))
        elif kind == 2:  # AS_PATH
            for segment in attr.get("as_paths", ()):
                as_path_length += len(segment.get("asns", ()))
        elif kind == 3 or (kind == 14 and hop is None):  # NEXT_HOP, MP_REACH_NLRI
            hop = attr.get("nexthop")
    return hop, (as_path_length, origin)


def gobgp_ecmp(rib: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, set[str]]:
    """Prefix -> ECMP next hops from `gobgp global rib -j`: the best path's next hop plus
    those of every path with the same AS path length and origin (what bird and FRR
    merge for paths from one neighbour AS)."""
    table: dict[str, set[str]] = {}
    for prefix, paths in rib.items():
        usable = [p for p in paths if not p.get("filtered") and not p.get("stale")]
        best = next((p for p in usable if p.get("best")), None)
        if best is None:
            continue
        _, best_rank = _gobgp_path_hops(best)
        hops = set()
        for path in usable:
            hop, rank = _gobgp_path_hops(path)
            if hop and rank == best_rank:
                hops.add(str(ipaddress.ip_address(hop)))
        if hops:
            table[str(ipaddress.ip_network(prefix))] = hops
    return table


class Gobgp(netlab.Router):
    """GoBGP (gobgpd): RIB via the `gobgp` CLI; a FIB sync mirrors it into the kernel."""

    flavour = "gobgp"
    tools: ClassVar[Mapping[str, str]] = {"gobgpd": "gobgpd", "gobgp": "gobgpd"}

    def __init__(
        self,
        host: netlab.Host,
        config: netlab.RouterConfig,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(host, config, aliases)
        self.fib: _GobgpFib | None = None  # the kernel FIB mirror, while gobgpd runs

    def render(self) -> str:
        """The gobgpd.toml for the current config."""
        config = self.config
        lines = [
            "# Rendered by openelb_testenv.routers for one lab run.",
            "[global.config]",
            f"  as = {config.asn}",
            f"  router-id = {_toml(config.router_id)}",
            "  port = 179",
            "[global.use-multiple-paths.config]",
            "  enabled = true",
        ]
        for peer in self.peers:
            family = "ipv4-unicast" if peer.address.version == 4 else "ipv6-unicast"
            lines += [
                "[[neighbors]]",
                "  [neighbors.config]",
                f"    neighbor-address = {_toml(peer.address)}",
                f"    peer-as = {peer.remote_as}",
            ]
            if peer.password is not None:
                lines.append(f"    auth-password = {_toml(_password(peer.password))}")
            lines += [
                "  [neighbors.timers.config]",
                f"    hold-time = {config.hold_time}",
                f"    keepalive-interval = {config.keepalive}",
                f"    connect-retry = {config.connect_retry}",
                # Back within a second after an error (default 30 s).
                "    idle-hold-time-after-reset = 1",
                "  [neighbors.transport.config]",
                f"    passive-mode = {_toml(peer.passive)}",
                "  [neighbors.add-paths.config]",
                f"    receive = {_toml(config.add_path_receive)}",
                "  [[neighbors.afi-safis]]",
                "    [neighbors.afi-safis.config]",
                f"      afi-safi-name = {_toml(family)}",
            ]
        return "\n".join(lines) + "\n"

    def gobgp_argv(self, *args: str) -> list[str]:
        host, _, port = _GOBGP_API.partition(":")
        return self.host.argv("gobgp", "--host", host, "--port", port, *args)

    async def gobgp(self, *args: str) -> str:
        """Run a `gobgp` CLI command against this router's gobgpd."""
        result = await netlab.run(self.gobgp_argv(*args), timeout=_BIRDC_TIMEOUT)
        return result.stdout

    async def start(self) -> None:
        path = self.workdir / "gobgpd.toml"
        path.write_text(self.render())
        gobgpd = await self._spawn(
            "gobgpd",
            ["gobgpd", "--config-file", str(path), "--config-type", "toml",
             "--api-hosts", _GOBGP_API, "--pprof-disable", "--log-plain", "--log-level", "info"],
        )  # fmt: skip
        try:
            # gobgpd serves its API before it reads the config file (`gobgp global` then
            # says AS 0): wait until it holds the config, never just for the API.
            await self.wait_loaded(gobgpd)
        except netlab.WaitTimeout as exc:
            raise netlab.NetlabError(f"{exc}\n{await _go_stacks(gobgpd)}") from exc
        self.fib = _GobgpFib(self)
        await self.fib.start()

    async def loaded(self) -> tuple[bool, object]:
        text, why = await _query(self.gobgp_argv("global", "--json"))
        if text is None:
            return False, why
        global_ = json.loads(text or "{}") or {}
        text, why = await _query(self.gobgp_argv("neighbor", "--json"))
        if text is None:
            return False, why
        neighbours = {
            str(ipaddress.ip_address(address))
            for entry in json.loads(text or "[]") or ()
            if (address := (entry.get("conf") or {}).get("neighbor_address"))
        }
        seen = {"asn": global_.get("asn"), "router_id": global_.get("router_id"),
                "neighbours": sorted(neighbours)}
        return (seen["asn"] == self.config.asn
                and seen["router_id"] == str(self.config.router_id)
                and self.expected_neighbours() <= neighbours), seen

    async def stop(self) -> None:
        if self.fib is not None:
            await self.fib.aclose()
            self.fib = None
        await super().stop()

    async def sessions(self) -> dict[str, netlab.SessionState]:
        data = json.loads(await self.gobgp("neighbor", "--json") or "[]")
        found = {}
        for entry in data or ():
            state = entry.get("state") or {}
            address = state.get("neighbor_address") or entry.get("conf", {}).get("neighbor_address")
            if address:
                found[str(ipaddress.ip_address(address))] = _gobgp_state(state.get("session_state"))
        return {
            str(peer.address): found.get(str(peer.address), netlab.SessionState.IDLE)
            for peer in self.peers
        }

    async def rib(self, version: int) -> dict[str, set[str]]:
        """Prefix -> ECMP next hops of one address family, from GoBGP's RIB."""
        family = "ipv4" if version == 4 else "ipv6"
        text = await self.gobgp("global", "rib", "--address-family", family, "--json")
        data = json.loads(text) if text.strip() else {}
        return gobgp_ecmp(data or {})

    async def routes(self, prefix: str | netlab.IPAddress | netlab.IPNetwork) -> set[str]:
        """Next hops of `prefix` in GoBGP's RIB (see the module docstring for why)."""
        network = netlab.as_network(prefix)
        hops = (await self.rib(network.version)).get(str(network), set())
        return {self.aliases.get(hop, hop) for hop in hops}


async def _go_stacks(process: netlab.LabProcess) -> str:
    """Where a Go daemon that never loaded its config is stuck: SIGQUIT makes the Go
    runtime print every goroutine's stack to stderr (the log) and exit; the main
    goroutine's is returned, and the whole dump stays in the log."""
    if not process.running:
        return f"{process.name} is not running"
    process.signal(signal.SIGQUIT)
    with contextlib.suppress(TimeoutError):
        await process.wait(5.0)
    text = process.log_path.read_text(errors="replace")
    main = re.search(r"^goroutine 1 \[.*?(?=^\s*$)", text, re.MULTILINE | re.DOTALL)
    return (f"{process.name}'s main goroutine (SIGQUIT; full dump in {process.log_path}):\n"
            + (main[0] if main else "(no goroutine dump in the log)"))


def _gobgp_state(value: object) -> netlab.SessionState:
    # gobgp's JSON carries the protobuf enum, by number or by name depending on version.
    numbered = {
        1: netlab.SessionState.IDLE,
        2: netlab.SessionState.CONNECT,
        3: netlab.SessionState.ACTIVE,
        4: netlab.SessionState.OPEN_SENT,
        5: netlab.SessionState.OPEN_CONFIRM,
        6: netlab.SessionState.ESTABLISHED,
    }
    if isinstance(value, int):
        return numbered.get(value, netlab.SessionState.IDLE)
    if isinstance(value, str):
        return netlab.SessionState.parse(value.removeprefix("SESSION_STATE_"))
    return netlab.SessionState.IDLE


class _GobgpFib:
    """Mirrors GoBGP's ECMP RIB into the router namespace's kernel (proto bgp routes).

    `gobgp monitor global rib` lines wake it up; it then reads the whole RIB and applies
    the difference with one `ip -batch`. It syncs once at start and again every second as
    a safety net; `synced` is set after each round.
    On close it removes the routes it installed, as zebra does for a client that leaves.
    """

    def __init__(self, router: Gobgp) -> None:
        self.router = router
        self.wake = asyncio.Event()
        self.synced = asyncio.Event()  # set after each sync round, as the loop waits again
        self.tasks: list[asyncio.Task[None]] = []
        self.monitors: list[asyncio.subprocess.Process] = []

    @property
    def versions(self) -> list[int]:
        return sorted({peer.address.version for peer in self.router.peers}) or [4]

    async def start(self) -> None:
        for version in self.versions:
            family = "ipv4" if version == 4 else "ipv6"
            monitor = await asyncio.create_subprocess_exec(
                *self.router.gobgp_argv(
                    "monitor", "global", "rib", "--address-family", family, "--json"
                ),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            self.monitors.append(monitor)
            self.tasks.append(asyncio.create_task(self._watch(monitor)))
        self.tasks.append(asyncio.create_task(self._sync_loop()))

    async def _watch(self, monitor: asyncio.subprocess.Process) -> None:
        assert monitor.stdout is not None
        while await monitor.stdout.readline():
            self.wake.set()

    def _log(self, line: str) -> None:
        # Part of Router.log_text(), like the daemons' own logs.
        with (self.router.workdir / "fib-sync.log").open("a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    async def _sync_loop(self) -> None:
        while True:
            self.wake.clear()  # a change during the sync wakes the next round
            try:
                await self.sync()
            except Exception as exc:  # keep syncing; gobgpd may be restarting
                self._log(f"sync failed: {exc!r}")
            self.synced.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.wake.wait()

    async def _kernel(self, version: int) -> dict[str, set[str]]:
        found = await self.router.host.ip_json(f"-{version}", "route", "show", "proto", _FIB_PROTO)
        table: dict[str, set[str]] = {}
        for route in found:
            dst = route.get("dst", "")
            if dst and dst != "default":
                # A host route is printed without its length.
                table[str(ipaddress.ip_network(dst))] = netlab.kernel_next_hops([route])
        return table

    async def sync(self) -> None:
        """Make the kernel's proto-bgp routes equal GoBGP's ECMP RIB."""
        commands = []
        for version in self.versions:
            wanted = await self.router.rib(version)
            have = await self._kernel(version)
            for prefix, hops in wanted.items():
                if have.get(prefix) != hops:
                    via = " ".join(f"nexthop via {hop}" for hop in sorted(hops))
                    commands.append(f"route replace {prefix} proto {_FIB_PROTO} {via}")
            for prefix in have.keys() - wanted.keys():
                commands.append(f"route del {prefix} proto {_FIB_PROTO}")
        if commands:
            self._log("apply: " + "; ".join(commands))
            await netlab.run(
                ["ip", "-n", self.router.host.netns, "-force", "-batch", "-"],
                input="\n".join(commands) + "\n",
                check=False,
            )

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        for monitor in self.monitors:
            with contextlib.suppress(ProcessLookupError):
                monitor.kill()
        # gather, not `suppress(CancelledError)` around each await: that would also
        # swallow a cancellation of aclose() itself (a caller's timeout).
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for monitor in self.monitors:
            await monitor.wait()
        self.tasks.clear()
        self.monitors.clear()
        for version in self.versions:
            await self.router.host.ip(
                f"-{version}", "route", "flush", "proto", _FIB_PROTO, check=False
            )


FLAVOURS: dict[str, type[netlab.Router]] = {"bird": Bird, "frr": Frr, "gobgp": Gobgp}


# --- a stub speaker for nodes -----------------------------------------------------------


class BirdSpeaker:
    """BIRD in a node namespace announcing static prefixes to the router, next hop self.

    Stands in for openelb's speaker in tests of the lab itself. `neighbors` default to
    the router's LAN addresses (AS 64513); prefixes are announced over the session of
    their own family.
    """

    def __init__(
        self,
        host: netlab.Host,
        prefixes: Iterable[str | netlab.IPAddress | netlab.IPNetwork] = (),
        *,
        neighbors: Sequence[netlab.Peer] | None = None,
        asn: int = netlab.NODE_ASN,
        hold_time: int = 9,
        keepalive: int = 3,
    ) -> None:
        self.host = host
        self.prefixes = [netlab.as_network(p) for p in prefixes]
        if neighbors is None:
            neighbors = [
                netlab.Peer(address, remote_as=netlab.ROUTER_ASN)
                for address in (netlab.LAN_V4[1], netlab.LAN_V6[1] if host.ipv6 else None)
                if address is not None
            ]
        self.neighbors = list(neighbors)
        self.asn = asn
        self.timers = netlab.RouterConfig(hold_time=hold_time, keepalive=keepalive)
        workdir = host.workdir / "bird-speaker"
        workdir.mkdir(exist_ok=True)
        self._daemon = _BirdDaemon(host, workdir, "speaker")

    @property
    def process(self) -> netlab.LabProcess | None:
        return self._daemon.process

    def render(self) -> str:
        if self.host.ipv4 is None:
            raise netlab.NetlabError(f"{self.host.name}: a BIRD speaker needs an IPv4 router id")
        parts = [
            "log stderr all;\n",
            f"router id {self.host.ipv4};\n",
            "protocol device { scan time 10; }\n",
        ]
        for version, family in ((4, "ipv4"), (6, "ipv6")):
            routes = "".join(
                f"    route {prefix} blackhole;\n"
                for prefix in self.prefixes
                if prefix.version == version
            )
            parts.append(f"protocol static static_{family} {{\n    {family};\n{routes}}}\n")
        timers = _bird_timers(self.timers)
        for peer in self.neighbors:
            family = "ipv4" if peer.address.version == 4 else "ipv6"
            channel = f"    {family} {{ import none; export all; }};\n"
            parts.append(_bird_session(_proto_name(peer.address), self.asn, peer, timers, channel))
        return "".join(parts)

    async def start(self) -> None:
        await self._daemon.start(self.render())

    async def announce(self, prefixes: Iterable[str | netlab.IPAddress | netlab.IPNetwork]) -> None:
        """Replace the announced prefixes (a BIRD reconfigure; sessions stay up)."""
        self.prefixes = [netlab.as_network(p) for p in prefixes]
        await self._daemon.reconfigure(self.render())

    async def stop(self) -> None:
        """SIGTERM: BIRD closes its sessions (Cease), so the router withdraws at once."""
        if self._daemon.process is not None:
            await self._daemon.process.stop(timeout=10.0)

    def kill(self) -> None:
        """SIGKILL: the router only notices when the hold timer expires."""
        if self._daemon.process is not None:
            self._daemon.process.kill()

    async def sessions(self) -> dict[str, netlab.SessionState]:
        states = await self._daemon.protocol_states()
        return {
            str(peer.address): states.get(_proto_name(peer.address), netlab.SessionState.IDLE)
            for peer in self.neighbors
        }
