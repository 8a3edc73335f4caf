"""A lab of network namespaces: nodes on a LAN behind a BGP router (DESIGN §5).

Test environment, outside DESIGN §3's runtime layers: the e2e tests (tests/e2e), the
benchmarks and `openelb demo` build on it; nothing in openelb's runtime imports it. It
builds the topology below out of network namespaces, a bridge and veth pairs; runs
processes inside the namespaces (an HTTP server standing in for the Pods, tcpdump, the
relay to the host's apiserver, and the router daemon of routers.py); and always tears
everything down again. It knows nothing about Kubernetes objects nor about openelb's
speaker: tests start those themselves with `Host.spawn`.

One `Lab` is one run with a random id R (4 hex digits); every namespace it creates is
named `oelb-R-<host>`:

    LAN 192.0.2.0/24 + 2001:db8:1::/64, a Linux bridge in oelb-R-switch
      router   192.0.2.1     2001:db8:1::1      eth0   AS 64513, forwards v4 + v6
      node-a   192.0.2.11    2001:db8:1::11     eth0   AS 64512 (node-b .12, node-c .13, ...)
      client   192.0.2.100   2001:db8:1::100    eth0   the LAN client
    remote link 198.51.100.0/24 + 2001:db8:2::/64, one veth pair
      router   198.51.100.1  2001:db8:2::1      eth1
      remote   198.51.100.2  2001:db8:2::2      eth0   a client behind the router

Nodes, the LAN client and the remote client route everything else via the router. The
router runs one BGP daemon flavour (routers.py: BIRD 2, FRR or GoBGP), peering with every
node address, with ECMP into its kernel. Service IPs for BGP tests come from
203.0.113.0/24 and 2001:db8:3::/64 (`VIP_V4`, `VIP_V6`).

A speaker inside a node, against the host's apiserver, in a few lines:

    async with netlab.Lab(netlab.LabSettings(router="frr")) as lab:
        node = lab.node("node-a")
        await node.add_vip("203.0.113.10")    # kube-proxy's part
        await node.serve_http()               # the Pods' part: answers "node-a"
        kubeconfig = await lab.node_kubeconfig(node, speaker_kubeconfig)
        await node.spawn([sys.executable, "-m", "openelb", "speaker"],
                         env={"NODE_NAME": node.name, "KUBECONFIG": str(kubeconfig)})
        await lab.router.wait_for_routes("203.0.113.10/32", {"192.0.2.11"})
        assert await lab.http_get(lab.remote_client, "203.0.113.10") == "node-a"

Network safety: the host's own (root) network namespace is never changed. Links,
addresses, routes and sysctls are only ever set inside namespaces named `oelb-...`
(`_checked` refuses any other name); veth pairs are created inside a lab namespace with
their peer placed directly in another one. Addresses come from the documentation ranges
only. In the root namespace the lab only runs `ip netns add/del/pids` and, for
`Lab.apiserver_relay`, a socat that listens on a unix socket (no interface involved).

Teardown happens on every path: `async with` / `close()` (also on cancellation and
KeyboardInterrupt), an atexit hook, the kernel's parent-death signal for the processes
it started, and `remove_stale_namespaces()` for runs that were killed outright: each
Lab holds an flock on `<tempdir>/openelb-netlab/<run>.lock` for its lifetime, so a run
whose lock is free is gone (`python -m openelb_testenv.netlab remove-stale` runs it).

    NetlabError            root of this module's errors
     ├── ToolMissing       a program from a Debian package is not installed
     ├── CommandFailed     a command exited non-zero (or did not finish in time)
     └── WaitTimeout       a polled condition did not hold in time (also a TimeoutError)
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import contextlib
import ctypes
import dataclasses
import enum
import errno
import fcntl
import functools
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeAlias

import yaml

from openelb_testenv import components

__all__ = [
    "LAN_V4",
    "LAN_V6",
    "LOCK_DIR",
    "NODE_ASN",
    "PREFIX",
    "REMOTE_V4",
    "REMOTE_V6",
    "ROUTER_ASN",
    "VIP_V4",
    "VIP_V6",
    "Capture",
    "CommandFailed",
    "Host",
    "IPAddress",
    "IPNetwork",
    "Lab",
    "LabProcess",
    "LabSettings",
    "Neighbor",
    "NetlabError",
    "Peer",
    "Router",
    "RouterConfig",
    "SessionState",
    "ToolMissing",
    "WaitTimeout",
    "as_network",
    "delete_namespace",
    "kernel_next_hops",
    "list_namespaces",
    "namespaces_of_process",
    "poll_until",
    "remove_stale_namespaces",
    "require_tools",
    "rewrite_kubeconfig",
    "run",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Every namespace a lab creates starts with this; nothing else is ever touched.
PREFIX = "oelb-"
#: The router's AS and the nodes' AS (eBGP between them).
ROUTER_ASN = 64513
NODE_ASN = 64512
LAN_V4 = ipaddress.IPv4Network("192.0.2.0/24")
LAN_V6 = ipaddress.IPv6Network("2001:db8:1::/64")
REMOTE_V4 = ipaddress.IPv4Network("198.51.100.0/24")
REMOTE_V6 = ipaddress.IPv6Network("2001:db8:2::/64")
#: Where tests take Service IPs from in BGP mode (outside every lab subnet).
VIP_V4 = ipaddress.IPv4Network("203.0.113.0/24")
VIP_V6 = ipaddress.IPv6Network("2001:db8:3::/64")

_ROUTER_V4 = LAN_V4[1]
_ROUTER_V6 = LAN_V6[1]
_FIRST_NODE = 11
_CLIENT_HOST = 100
# Nodes take .11 up to .99; the LAN client is .100.
_MAX_NODES = _CLIENT_HOST - _FIRST_NODE
#: Where each live Lab holds the flock that marks its run as alive.
LOCK_DIR = Path(tempfile.gettempdir()) / "openelb-netlab"
_PR_SET_PDEATHSIG = 1
_LOG_TAIL = 3000

# Programs the lab itself needs, with the Debian package that ships each.
_TOOLS = {"ip": "iproute2", "curl": "curl", "tcpdump": "tcpdump", "socat": "socat"}


class NetlabError(Exception):
    """Root of the errors this module (and routers.py) raises."""


class ToolMissing(NetlabError):
    """Programs the lab needs are not installed; carries the Debian packages to install."""

    def __init__(self, missing: Mapping[str, str]) -> None:
        self.missing = dict(missing)
        self.packages = sorted(set(self.missing.values()))
        programs = ", ".join(sorted(self.missing))
        super().__init__(
            f"missing programs {programs}: install the Debian packages "
            f"{' '.join(self.packages)} (hack/install.sh does)"
        )


class CommandFailed(NetlabError):
    """A command exited non-zero, or did not finish in time (`returncode` None)."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = "did not finish in time" if returncode is None else f"exited {returncode}"
        detail = (stderr.strip() or stdout.strip())[-_LOG_TAIL:]
        super().__init__(f"`{' '.join(self.argv)}` {status}: {detail}")


class WaitTimeout(NetlabError, TimeoutError):
    """A polled condition did not hold in time; carries what was last seen."""

    def __init__(self, what: str, timeout: float, last: object, log_tail: str = "") -> None:
        self.what = what
        self.timeout = timeout
        self.last = last
        self.log_tail = log_tail
        text = f"{what}: not reached after {timeout:g}s; last seen: {last!r}"
        if log_tail:
            text += f"\nlog ends:\n{log_tail}"
        super().__init__(text)


# --- commands ---------------------------------------------------------------------------


def require_tools(router: str | None = None) -> None:
    """Raise ToolMissing unless the lab's programs (and `router`'s, if given) are installed."""
    tools = dict(_TOOLS)
    if router is not None:
        tools.update(_router_class(router).tools)
    missing = {
        program: package
        for program, package in tools.items()
        if not (os.access(program, os.X_OK) if program.startswith("/") else shutil.which(program))
    }
    if missing:
        raise ToolMissing(missing)


def _checked(netns: str) -> str:
    # The one gate every namespace name passes: the lab touches nothing without our prefix.
    if not netns.startswith(PREFIX) or "/" in netns:
        raise NetlabError(f"refusing to touch network namespace {netns!r}: not {PREFIX}*")
    return netns


def _ns_exec(netns: str) -> list[str]:
    return ["ip", "netns", "exec", _checked(netns)]


async def run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 30.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `argv` to completion; CommandFailed when it fails and `check`, or on timeout."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate(
                input.encode() if input is not None else None
            )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise CommandFailed(argv, None, "", f"no result after {timeout:g}s") from None
    except BaseException:
        # Cancelled: don't leave the child running; the loop's child watcher reaps it.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        raise
    result = subprocess.CompletedProcess(
        list(argv), process.returncode or 0, out.decode(errors="replace"),
        err.decode(errors="replace"),
    )  # fmt: skip
    if check and result.returncode != 0:
        raise CommandFailed(argv, result.returncode, result.stdout, result.stderr)
    return result


def _run_sync(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    # Teardown only: it must finish even when the event loop is being torn down.
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=30)


async def poll_until(
    what: str,
    probe: Callable[[], Awaitable[tuple[bool, object]]],
    timeout: float,
    log_tail: Callable[[], str] = lambda: "",
    interval: float = 0.1,
) -> object:
    """Call `probe` until it returns (True, seen); returns `seen` or raises WaitTimeout
    naming `what`, the last `seen` and the end of `log_tail()`."""
    deadline = time.monotonic() + timeout
    while True:
        done, seen = await probe()
        if done:
            return seen
        if time.monotonic() >= deadline:
            raise WaitTimeout(what, timeout, seen, log_tail())
        await asyncio.sleep(interval)


def list_namespaces() -> list[str]:
    """Names of every network namespace on the machine (`ip netns list`)."""
    result = _run_sync(["ip", "-j", "netns", "list"])
    if result.returncode != 0 or not result.stdout.strip():
        return []
    return [entry["name"] for entry in json.loads(result.stdout)]


def _kill_namespace_processes(netns: str) -> None:
    result = _run_sync(["ip", "netns", "pids", _checked(netns)])
    for pid in result.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def delete_namespace(netns: str) -> bool:
    """Kill what runs in `netns` (an `oelb-` name only) and delete it; True when gone."""
    _kill_namespace_processes(netns)
    _run_sync(["ip", "netns", "del", _checked(netns)])
    return netns not in list_namespaces()


def _run_of(netns: str) -> str | None:
    if not netns.startswith(PREFIX):
        return None
    run_id, _, host = netns[len(PREFIX) :].partition("-")
    return run_id if run_id and host else None


def _lock_path(run_id: str) -> Path:
    return LOCK_DIR / f"{run_id}.lock"


def _lock_owner(run_id: str) -> int | None:
    """The pid that owns `run_id` while its Lab is alive (holds the lock), else None."""
    path = _lock_path(run_id)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _recorded_owner(run_id: str) -> int | None:
    # The pid written in the lock file, whether or not the lock is still held.
    try:
        return int(_lock_path(run_id).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def namespaces_of_process(pid: int | None = None) -> list[str]:
    """The `oelb-` namespaces created by the Labs of process `pid` (default: this one).

    Lets a test fixture see what a test left behind without being confused by labs of
    other processes running at the same time.
    """
    pid = os.getpid() if pid is None else pid
    return [
        netns
        for netns in list_namespaces()
        if (run_id := _run_of(netns)) is not None and _recorded_owner(run_id) == pid
    ]


def remove_stale_namespaces(*, unclaimed: bool = False) -> list[str]:
    """Delete the `oelb-` namespaces of Lab runs that crashed; returns their names.

    A run is alive while its Lab holds the run's lock; a crashed run left its lock file
    behind, unheld. Labs of other live processes (parallel test runs) are left alone,
    and so are `oelb-` namespaces that no Lab ever claimed (other tools of the project
    may use the prefix too) unless `unclaimed` is set: only use that when no other test
    run is going on. Processes inside removed namespaces are killed, and the run's work
    dir in the system temp dir is removed. Only names with our prefix are considered.
    """
    removed = []
    stale_runs = {path.stem for path in LOCK_DIR.glob("*.lock") if _lock_owner(path.stem) is None}
    for netns in list_namespaces():
        run_id = _run_of(netns)
        if run_id is None or _lock_owner(run_id) is not None:
            continue
        if run_id in stale_runs or (unclaimed and not _lock_path(run_id).exists()):
            delete_namespace(netns)
            removed.append(netns)
    for run_id in stale_runs:
        # The work dirs of crashed runs (a lab closed with keep_workdir has no lock left).
        for workdir in Path(tempfile.gettempdir()).glob(f"{PREFIX}{run_id}-*"):
            shutil.rmtree(workdir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            _lock_path(run_id).unlink()
    return removed


# --- processes --------------------------------------------------------------------------


@functools.cache
def _prctl() -> Callable[..., int]:
    # Looked up in the parent: the child between fork and exec should not load libraries.
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def _die_with_parent(prctl: Callable[..., int], parent_pid: int) -> None:
    # Runs in the child between fork and exec (`ip netns exec` then execs the program,
    # which keeps the setting): SIGKILL when the thread that started us exits.
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


class LabProcess(components.Component):
    """A long-running process inside a lab namespace, with its log file.

    openelb's Component (SIGTERM/SIGKILL of the process group, `wait_for_log`, `stop`)
    with an `ip netns exec` prefix instead of `python -m openelb`. `netns` None runs the
    process in the root namespace (only the apiserver relay's unix-socket side does).
    When `stdout_path` is given, stdout goes there and stderr to the log.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        netns: str | None,
        env: Mapping[str, str] | None = None,
        stdout_path: Path | None = None,
    ) -> None:
        super().__init__(name, (), log_path, dict(env or {}))
        self.netns = netns
        self.argv = [*(_ns_exec(netns) if netns is not None else []), *argv]
        self.stdout_path = stdout_path

    async def start(self) -> None:
        with contextlib.ExitStack() as files:
            log = files.enter_context(self.log_path.open("ab"))
            out = files.enter_context(self.stdout_path.open("ab")) if self.stdout_path else log
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=out,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
                preexec_fn=functools.partial(_die_with_parent, _prctl(), os.getpid()),
            )

    async def wait_until(
        self, what: str, condition: Callable[[], bool], timeout: float = 10.0
    ) -> None:
        """Poll `condition` until true; fails early (with the log) if the process exits."""

        async def probe() -> tuple[bool, object]:
            if condition():
                return True, None
            if not self.running:
                raise NetlabError(f"{self.name} exited before {what}:\n{self.log_tail()}")
            return False, None

        await poll_until(f"{self.name}: {what}", probe, timeout, self.log_tail, interval=0.05)

    def log_tail(self) -> str:
        return self.log_text()[-_LOG_TAIL:]


# --- hosts ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Neighbor:
    """One entry of a host's neighbour table (ARP for IPv4, NDP for IPv6)."""

    ip: IPAddress
    # None while the entry is INCOMPLETE or FAILED.
    mac: str | None
    # Kernel NUD states, e.g. ("REACHABLE",), ("STALE",), ("FAILED",).
    states: tuple[str, ...]


class Capture:
    """tcpdump running in a namespace; `stop()` returns the packets as tcpdump prints them.

    Lines are tcpdump's `-n -e -tt` text: epoch timestamp, MACs, then the decoded
    packet, e.g. `... > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request
    who-has 192.0.2.11 tell 192.0.2.100, length 28`.
    """

    def __init__(self, process: LabProcess, output: Path) -> None:
        self.process = process
        self.output = output

    def lines(self) -> list[str]:
        """The packets captured so far."""
        try:
            text = self.output.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    async def stop(self) -> list[str]:
        """Stop tcpdump (flushing what it holds) and return every captured line."""
        if self.process.running:
            self.process.signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await self.process.wait(5.0)
        await self.process.stop(2.0)
        return self.lines()


_HTTP_SERVER = r"""
import http.server, socket, socketserver, sys

port, body = int(sys.argv[1]), sys.argv[2].encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingTCPServer):
    # One dual-stack socket on [::]: answers on every address of the namespace, VIPs too.
    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


server = Server(("::", port), Handler)
print("serving http on port", port, flush=True)
server.serve_forever()
"""


@dataclasses.dataclass(slots=True)
class _Registry:
    """What a Lab's hosts share: the work dir and every process started, for teardown."""

    workdir: Path
    processes: list[LabProcess] = dataclasses.field(default_factory=list)


class Host:
    """One namespace of the lab: a node, the router, a client, or the switch.

    Every method runs its command inside the namespace; none touches the root namespace.
    """

    def __init__(
        self,
        registry: _Registry,
        name: str,
        netns: str,
        ipv4: ipaddress.IPv4Address | None,
        ipv6: ipaddress.IPv6Address | None,
        interface: str = "eth0",
    ) -> None:
        self.name = name
        self.netns = _checked(netns)
        # The host's LAN (or, for the remote client, its only) address; None for the switch.
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.interface = interface
        self._registry = registry
        self._mac: str | None = None
        self._link_local: ipaddress.IPv6Address | None = None
        # The far end of this host's cable: (host, interface), set when the lab is built.
        self._cable: tuple[Host, str] | None = None

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.netns}>"

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        return tuple(ip for ip in (self.ipv4, self.ipv6) if ip is not None)

    @property
    def mac(self) -> str:
        """The MAC address of the host's interface (lower case, colon separated)."""
        if self._mac is None:
            raise NetlabError(f"{self.name}: MAC not known before the lab is built")
        return self._mac

    @property
    def link_local(self) -> ipaddress.IPv6Address | None:
        """The IPv6 link-local address of the host's interface (None without IPv6)."""
        return self._link_local

    @property
    def workdir(self) -> Path:
        """A directory for this host's files (configs, logs) inside the lab's work dir."""
        path = self._registry.workdir / self.name
        path.mkdir(exist_ok=True)
        return path

    def argv(self, *argv: str) -> list[str]:
        """`argv` prefixed so that it runs inside this namespace."""
        return [*_ns_exec(self.netns), *argv]

    async def exec(
        self, *argv: str, check: bool = True, timeout: float = 30.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the namespace to completion (CommandFailed on failure)."""
        return await run(self.argv(*argv), check=check, timeout=timeout, input=input)

    async def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ip -n <netns> ARGS`: the only way the lab changes links, addresses and routes."""
        return await run(["ip", "-n", self.netns, *args], check=check)

    async def ip_json(self, *args: str) -> list[dict[str, Any]]:
        result = await run(["ip", "-j", "-n", self.netns, *args])
        data = json.loads(result.stdout) if result.stdout.strip() else []
        return data if isinstance(data, list) else []

    async def sysctl(self, settings: Mapping[str, str | int]) -> None:
        """Set kernel parameters of this namespace (never of the host's)."""
        if settings:
            await self.exec("sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items()))

    async def spawn(
        self,
        argv: Sequence[str],
        log_path: Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        stdout_path: Path | None = None,
        joins_itself: bool = False,
    ) -> LabProcess:
        """Start `argv` inside the namespace; the lab stops it on teardown at the latest.

        `env` is added to this process's environment. The log (stdout and stderr unless
        `stdout_path` is given) defaults to `<workdir>/<host>/<program>.log`.
        `joins_itself`: the program puts what it runs into this namespace by itself
        (`podman run --network ns:/run/netns/<netns>`), so it starts outside: podman
        run inside `ip netns exec` would mount its containers in that command's private
        mount namespace, out of sight of every other podman command.
        """
        name = name or f"{self.name}/{Path(argv[0]).name}"
        if log_path is None:
            log_path = self.workdir / f"{Path(argv[0]).name}.log"
        process = LabProcess(
            name, argv, log_path, netns=None if joins_itself else self.netns, env=env,
            stdout_path=stdout_path,
        )
        self._registry.processes.append(process)
        await process.start()
        return process

    async def add_vip(self, ip: str | IPAddress) -> None:
        """Put `ip` (/32 or /128) on the host's lo, as kube-proxy would for a Service IP."""
        address = ipaddress.ip_address(ip)
        extra = ["nodad"] if address.version == 6 else []
        await self.ip("addr", "replace", f"{address}/{address.max_prefixlen}", "dev", "lo", *extra)

    async def del_vip(self, ip: str | IPAddress) -> None:
        address = ipaddress.ip_address(ip)
        await self.ip("addr", "del", f"{address}/{address.max_prefixlen}", "dev", "lo")

    async def serve_http(self, port: int = 80, body: str | None = None) -> LabProcess:
        """An HTTP server on [::]:port (dual stack) answering every GET with `body`.

        `body` defaults to the host's name, so a client sees which node answered.
        It answers on any address of the namespace, so also on VIPs added with add_vip.
        """
        process = await self.spawn(
            [sys.executable, "-c", _HTTP_SERVER, str(port), body or self.name],
            self.workdir / f"http-{port}.log",
            name=f"{self.name}/http:{port}",
        )
        await process.wait_for_log("serving http on port", timeout=15.0)
        return process

    async def neighbors(self, interface: str | None = None) -> list[Neighbor]:
        """The neighbour table of the host's interface (`ip -j neigh`)."""
        entries = await self.ip_json("neigh", "show", "dev", interface or self.interface)
        return [
            Neighbor(
                ip=ipaddress.ip_address(entry["dst"]),
                mac=entry.get("lladdr"),
                states=tuple(entry.get("state", ())),
            )
            for entry in entries
        ]

    async def neighbor(self, ip: str | IPAddress) -> Neighbor | None:
        """The neighbour entry for `ip`, if any."""
        wanted = ipaddress.ip_address(ip)
        return next((n for n in await self.neighbors() if n.ip == wanted), None)

    async def set_link(self, up: bool) -> None:
        """Plug in (True) or pull (False) the host's cable: the far end of its link (its
        switch port; for the remote client, the router's eth1) goes up or down, so the
        host sees no carrier but keeps its own addresses, routes and processes."""
        if self._cable is None:
            raise NetlabError(f"{self.name}: has no cable to pull")
        far, interface = self._cable
        await far.ip("link", "set", interface, "up" if up else "down")

    async def flush_neighbors(self) -> None:
        await self.ip("neigh", "flush", "dev", self.interface)

    async def start_capture(
        self, filter: str = "", *, interface: str | None = None, count: int | None = None
    ) -> Capture:
        """Start tcpdump on the host's interface; returns once it is capturing."""
        stamp = secrets.token_hex(3)
        output = self.workdir / f"capture-{stamp}.txt"
        argv = ["tcpdump", "-i", interface or self.interface, "-n", "-e", "-tt", "-l"]
        argv += ["--immediate-mode", *(["-c", str(count)] if count else []), *filter.split()]
        process = await self.spawn(
            argv,
            self.workdir / f"capture-{stamp}.log",
            name=f"{self.name}/tcpdump",
            stdout_path=output,
        )
        await process.wait_for_log("listening on", timeout=10.0)
        return Capture(process, output)

    async def capture(
        self,
        filter: str = "",
        duration: float = 1.0,
        *,
        interface: str | None = None,
        count: int | None = None,
    ) -> list[str]:
        """Capture for `duration` seconds (or until `count` packets); returns the lines."""
        capture = await self.start_capture(filter, interface=interface, count=count)
        with contextlib.suppress(TimeoutError):
            await capture.process.wait(duration)
        return await capture.stop()

    async def _learn_link(self) -> None:
        links = await self.ip_json("link", "show", "dev", self.interface)
        self._mac = str(links[0]["address"]).lower()
        if self.ipv6 is None:
            return

        async def probe() -> tuple[bool, object]:
            found = await self.ip_json("-6", "addr", "show", "dev", self.interface, "scope", "link")
            for link in found:
                for info in link.get("addr_info", ()):
                    if "local" not in info:  # ip -j leaves {} for filtered addresses
                        continue
                    self._link_local = ipaddress.IPv6Address(info["local"])
                    return True, self._link_local
            return False, found

        await poll_until(f"{self.name}: IPv6 link-local address", probe, 10.0)


# --- routers ----------------------------------------------------------------------------


class SessionState(enum.StrEnum):
    """A BGP session's state (RFC 4271 §8.2.2), whatever daemon reports it."""

    IDLE = "Idle"
    CONNECT = "Connect"
    ACTIVE = "Active"
    OPEN_SENT = "OpenSent"
    OPEN_CONFIRM = "OpenConfirm"
    ESTABLISHED = "Established"

    @classmethod
    def parse(cls, text: str) -> SessionState:
        """A daemon's spelling ("Established", "ESTABLISHED", "open_sent") -> the state."""
        wanted = text.replace("_", "").replace("-", "").lower()
        for state in cls:
            if state.value.lower() == wanted:
                return state
        return cls.IDLE


@dataclasses.dataclass(frozen=True, slots=True)
class Peer:
    """One BGP neighbour as the router (or a stub speaker) sees it."""

    address: IPAddress
    # The neighbour's AS.
    remote_as: int = NODE_ASN
    # TCP MD5 signature password (RFC 2385); None for none.
    password: str | None = None
    # Never connect to the neighbour, only accept its connections.
    passive: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class RouterConfig:
    """How the router's BGP daemon is configured; every flavour renders the same settings."""

    # The router's own AS.
    asn: int = ROUTER_ASN
    router_id: ipaddress.IPv4Address = _ROUTER_V4
    # Neighbours; None means every node address (IPv4, and IPv6 when the lab has it),
    # remote AS 64512, no password.
    peers: tuple[Peer, ...] | None = None
    # Hold time and keepalive interval offered to every neighbour, seconds.
    hold_time: int = 9
    keepalive: int = 3
    # Seconds between connection attempts to a neighbour that is not up.
    connect_retry: int = 2
    # Negotiate ADD-PATH receive (RFC 7911) with every neighbour.
    add_path_receive: bool = False
    # ECMP width for one prefix in the kernel.
    max_paths: int = 16


def kernel_next_hops(routes: Iterable[Mapping[str, Any]]) -> set[str]:
    """The gateways of `ip -j route` entries, single-path (`gateway`) and multipath
    (`nexthops`) alike; blackhole/unreachable entries have none."""
    hops: set[str] = set()
    for route in routes:
        if route.get("type", "unicast") != "unicast":
            continue
        if "gateway" in route:
            hops.add(str(ipaddress.ip_address(route["gateway"])))
        for hop in route.get("nexthops", ()):
            if "gateway" in hop:
                hops.add(str(ipaddress.ip_address(hop["gateway"])))
    return hops


def as_network(prefix: str | IPAddress | IPNetwork) -> IPNetwork:
    """`prefix` as a network; a bare address is its /32 or /128."""
    if isinstance(prefix, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ipaddress.ip_network(prefix)
    return ipaddress.ip_network(prefix, strict=True)


def _hop_set(hops: Iterable[str | IPAddress]) -> set[str]:
    return {str(ipaddress.ip_address(hop)) for hop in hops}


class Router(abc.ABC):
    """The BGP daemon in the router namespace; routers.py implements the flavours.

    Daemons keep config, sockets, pid files and logs under the lab's work dir, never
    in /etc or /run, so several labs and the host's own services never clash.
    `routes()` reports the next hops of a prefix as node addresses: IPv6 link-local
    gateways are translated to the node's global address (`aliases`).
    """

    #: The flavour's name in LabSettings.router.
    flavour: ClassVar[str]
    #: Programs this flavour runs, with the Debian package that ships each.
    tools: ClassVar[Mapping[str, str]]
    #: How long start() waits for the daemon to hold its config.
    load_timeout: float = 20.0

    def __init__(
        self, host: Host, config: RouterConfig, aliases: Mapping[str, str] | None = None
    ) -> None:
        if config.peers is None:
            raise NetlabError("RouterConfig.peers must be resolved before a Router is built")
        self.host = host
        self.config = config
        self.aliases = dict(aliases or {})
        self.workdir = host.workdir / self.flavour
        self.workdir.mkdir(exist_ok=True)
        self.processes: list[LabProcess] = []

    @property
    def peers(self) -> tuple[Peer, ...]:
        assert self.config.peers is not None
        return self.config.peers

    @property
    def running(self) -> bool:
        return bool(self.processes) and all(p.running for p in self.processes)

    @abc.abstractmethod
    def render(self) -> str:
        """The daemon's main config file for the current `config`."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Write the config, start the daemon(s), and return once they hold it
        (`wait_loaded`): a control socket that answers is not enough, as gobgpd answers
        before it has read its config file."""

    @abc.abstractmethod
    async def loaded(self) -> tuple[bool, object]:
        """Whether the running daemon holds `config`: its AS, its router id and every
        neighbour; with what it was seen to hold (for the error when it never does)."""

    async def wait_loaded(self, process: LabProcess) -> None:
        """Poll `loaded()` for `load_timeout` seconds until true; fails at once, with its
        log, if `process` exits."""
        config = self.config

        async def probe() -> tuple[bool, object]:
            if not process.running:
                raise NetlabError(f"{process.name} exited during start:\n{process.log_tail()}")
            return await self.loaded()

        await poll_until(
            f"{self.flavour} holds its config (AS {config.asn}, router id {config.router_id},"
            f" neighbours {sorted(str(p.address) for p in self.peers)})",
            probe, self.load_timeout, self.log_tail, interval=0.1,
        )  # fmt: skip

    def expected_neighbours(self) -> set[str]:
        return {str(peer.address) for peer in self.peers}

    async def stop(self) -> None:
        """Stop the daemon(s) (SIGTERM, then SIGKILL); their kernel routes go with them."""
        for process in reversed(self.processes):
            await process.stop(timeout=10.0)
        self.processes.clear()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def reconfigure(self, config: RouterConfig) -> None:
        """Apply a new config by restarting the daemon (every session is reset)."""
        if config.peers is None:
            config = dataclasses.replace(config, peers=self.peers)
        self.config = config
        if self.processes:
            await self.restart()

    @abc.abstractmethod
    async def sessions(self) -> dict[str, SessionState]:
        """Neighbour address -> session state, for every configured neighbour."""

    async def routes(self, prefix: str | IPAddress | IPNetwork) -> set[str]:
        """The next hops the router forwards `prefix` to (its kernel FIB, ECMP included)."""
        return await self.kernel_routes(prefix)

    async def kernel_routes(self, prefix: str | IPAddress | IPNetwork) -> set[str]:
        """Next hops of `prefix` in the router namespace's kernel (`ip -j route`)."""
        network = as_network(prefix)
        family = "-4" if network.version == 4 else "-6"
        found = await self.host.ip_json(family, "route", "show", "to", "exact", str(network))
        return {self.aliases.get(hop, hop) for hop in kernel_next_hops(found)}

    async def wait_for_routes(
        self,
        prefix: str | IPAddress | IPNetwork,
        expected: Iterable[str | IPAddress],
        timeout: float = 30.0,
        *,
        kernel: bool = False,
    ) -> set[str]:
        """Poll `routes(prefix)` (`kernel_routes` if `kernel`) until its next hops equal
        `expected` (empty: withdrawn)."""
        wanted = _hop_set(expected)
        read = self.kernel_routes if kernel else self.routes

        async def probe() -> tuple[bool, object]:
            hops = await read(prefix)
            return hops == wanted, hops

        where = "kernel" if kernel else "routes"
        await poll_until(
            f"{self.flavour} {where}: next hops of {prefix} == {sorted(wanted)}",
            probe,
            timeout,
            self.log_tail,
        )
        return wanted

    async def wait_for_sessions(
        self,
        state: SessionState = SessionState.ESTABLISHED,
        peers: Iterable[str | IPAddress] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, SessionState]:
        """Poll until every neighbour in `peers` (default: all) is in `state`."""
        wanted = _hop_set(peers) if peers is not None else {str(p.address) for p in self.peers}
        seen: dict[str, SessionState] = {}

        async def probe() -> tuple[bool, object]:
            nonlocal seen
            seen = await self.sessions()
            return all(seen.get(peer) == state for peer in wanted), seen

        await poll_until(
            f"{self.flavour} sessions {sorted(wanted)} {state}", probe, timeout, self.log_tail
        )
        return seen

    def log_paths(self) -> list[Path]:
        return sorted(self.workdir.glob("*.log"))

    def log_text(self) -> str:
        """Every log of this router's daemons, each under a header line."""
        parts = []
        for path in self.log_paths():
            with contextlib.suppress(OSError):
                parts.append(f"=== {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def log_tail(self) -> str:
        return self.log_text()[-_LOG_TAIL:]

    async def _spawn(self, name: str, argv: Sequence[str]) -> LabProcess:
        process = await self.host.spawn(
            argv, self.workdir / f"{name}.log", name=f"{self.flavour}/{name}"
        )
        self.processes.append(process)
        return process


def _router_class(flavour: str) -> type[Router]:
    # routers.py builds on this module, so it is imported when a flavour is asked for.
    from openelb_testenv import routers

    try:
        return routers.FLAVOURS[flavour]
    except KeyError:
        raise NetlabError(
            f"unknown router flavour {flavour!r}: choose one of {', '.join(routers.FLAVOURS)}"
        ) from None


# --- the lab ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class LabSettings:
    """What one Lab builds; the defaults are the e2e topology of DESIGN §5."""

    # BGP daemon in the router namespace: "bird", "frr", "gobgp", or None for a router
    # that only forwards (layer-2 tests).
    router: str | None = "bird"
    # Number of node namespaces: node-a, node-b, ... at 192.0.2.11, .12, ...
    nodes: int = 3
    # IPv6 addresses on every host, and IPv6 BGP sessions to every node.
    ipv6: bool = True
    # The router's BGP settings; `peers` None peers with every node address.
    bgp: RouterConfig = dataclasses.field(default_factory=RouterConfig)
    # Start the router daemon while entering the lab (else call `lab.router.start()`).
    start_router: bool = True
    # Directory the lab's work dir is created in; None is the system temp dir.
    temp_root: Path | None = None
    # Keep the work dir (configs, logs, captures) after the lab is closed.
    keep_workdir: bool = False


def _v6(network: ipaddress.IPv6Network, host: int) -> ipaddress.IPv6Address:
    # The IPv4 host number written as IPv6 digits: .11 -> ::11, .100 -> ::100.
    return network[int(str(host), 16)]


def _node_name(index: int) -> str:
    return f"node-{chr(ord('a') + index)}" if index < 26 else f"node-{index + 1}"


class Lab:
    """The namespaces, links and processes of one run; an async context manager.

    Build with `async with Lab(LabSettings(router="frr")) as lab:`; everything is
    removed on exit, whatever happened inside.
    """

    def __init__(self, settings: LabSettings | None = None) -> None:
        self.settings = settings or LabSettings()
        if not 1 <= self.settings.nodes <= _MAX_NODES:
            raise NetlabError(f"nodes: {self.settings.nodes} is not in 1..{_MAX_NODES}")
        self.run_id = ""
        self.workdir = Path()
        self.hosts: dict[str, Host] = {}
        self._registry: _Registry | None = None
        self._router: Router | None = None
        self._namespaces: list[str] = []
        self._lock_fd: int | None = None
        self._relay_sockets: dict[int, Path] = {}
        self._relays: dict[tuple[str, int], int] = {}
        self._closed = False

    # Hosts by role.
    @property
    def router_host(self) -> Host:
        return self.hosts["router"]

    @property
    def switch(self) -> Host:
        return self.hosts["switch"]

    @property
    def nodes(self) -> list[Host]:
        return [self.hosts[_node_name(i)] for i in range(self.settings.nodes)]

    @property
    def lan_client(self) -> Host:
        return self.hosts["client"]

    @property
    def remote_client(self) -> Host:
        return self.hosts["remote"]

    def node(self, name: str) -> Host:
        return self.hosts[name]

    @property
    def router(self) -> Router:
        """The BGP daemon of the router namespace."""
        if self._router is None:
            raise NetlabError("this lab runs no router daemon (LabSettings.router is None)")
        return self._router

    @property
    def namespaces(self) -> list[str]:
        """The namespaces this lab created (and will delete)."""
        return list(self._namespaces)

    @property
    def lock_path(self) -> Path:
        """The file whose flock marks this run as alive (see remove_stale_namespaces)."""
        return _lock_path(self.run_id)

    @property
    def processes(self) -> list[LabProcess]:
        """Every process the lab started (running or not)."""
        return list(self._registry.processes) if self._registry else []

    async def __aenter__(self) -> Lab:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Build the topology and start the router; on any failure, remove it all again."""
        if self._registry is not None:
            raise NetlabError(f"lab {self.run_id} was already started")
        require_tools(self.settings.router)
        self._claim_run_id()
        atexit.register(self._destroy)
        try:
            root = self.settings.temp_root
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{self.run_id}-", dir=root))
            # Daemons that drop privileges (FRR runs as user frr) must reach their dirs.
            self.workdir.chmod(0o755)
            self._registry = _Registry(self.workdir)
            await self._build()
            if self.settings.router is not None:
                self._router = self._make_router(self.settings.router)
                if self.settings.start_router:
                    await self._router.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop every process and delete every namespace; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._router is not None and self._router.processes:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(15.0):
                        await self._router.stop()
            await asyncio.gather(
                *(process.stop(timeout=3.0) for process in self.processes),
                return_exceptions=True,
            )
        finally:
            self._destroy()

    def _destroy(self) -> None:
        # Synchronous on purpose: it must complete on cancellation and from atexit.
        atexit.unregister(self._destroy)
        for process in self.processes:
            process.kill()
        # A namespace whose `ip netns add` was in flight when start() was cancelled exists
        # but was never recorded: sweep everything carrying this run's prefix too.
        mine = f"{PREFIX}{self.run_id}-" if self.run_id else None
        swept = [ns for ns in list_namespaces() if mine and ns.startswith(mine)]
        candidates = list(dict.fromkeys([*self._namespaces, *swept]))
        leftover = [ns for ns in candidates if not delete_namespace(ns)]
        self._namespaces = leftover
        if self._lock_fd is not None:
            if not leftover:
                with contextlib.suppress(FileNotFoundError):
                    _lock_path(self.run_id).unlink()
            os.close(self._lock_fd)
            self._lock_fd = None
        if self.workdir != Path() and not self.settings.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if leftover:
            raise NetlabError(f"lab {self.run_id}: could not delete namespaces {leftover}")

    def _claim_run_id(self) -> None:
        LOCK_DIR.mkdir(mode=0o755, exist_ok=True)
        taken = {_run_of(ns) for ns in list_namespaces()}
        for _ in range(100):
            run_id = secrets.token_hex(2)
            if run_id in taken:
                continue
            fd = os.open(_lock_path(run_id), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    continue
                raise
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self.run_id, self._lock_fd = run_id, fd
            return
        raise NetlabError("no free lab run id (too many labs running?)")

    def _host(
        self,
        name: str,
        ipv4: ipaddress.IPv4Address | None = None,
        ipv6: ipaddress.IPv6Address | None = None,
    ) -> Host:
        assert self._registry is not None
        host = Host(self._registry, name, f"{PREFIX}{self.run_id}-{name}", ipv4, ipv6)
        self.hosts[name] = host
        return host

    async def _build(self) -> None:
        v6 = self.settings.ipv6
        switch = self._host("switch")
        router = self._host("router", _ROUTER_V4, _ROUTER_V6 if v6 else None)
        lan: list[Host] = [router]
        for i in range(self.settings.nodes):
            lan.append(
                self._host(
                    _node_name(i),
                    LAN_V4[_FIRST_NODE + i],
                    _v6(LAN_V6, _FIRST_NODE + i) if v6 else None,
                )
            )
        client_v6 = _v6(LAN_V6, _CLIENT_HOST) if v6 else None
        client = self._host("client", LAN_V4[_CLIENT_HOST], client_v6)
        lan.append(client)
        remote = self._host("remote", REMOTE_V4[2], REMOTE_V6[2] if v6 else None)

        for host in self.hosts.values():
            await run(["ip", "netns", "add", host.netns])
            self._namespaces.append(host.netns)
            await host.sysctl(self._sysctls(host))
            await host.ip("link", "set", "lo", "up")

        # The LAN: a bridge in the switch namespace, one veth pair per LAN host.
        await switch.ip(
            "link", "add", "br0", "type", "bridge",
            "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0",
        )  # fmt: skip
        await switch.ip("link", "set", "br0", "up")
        switch.interface = "br0"
        for host in lan:
            port = f"p-{host.name}"[:15]
            await switch.ip(
                "link", "add", port, "type", "veth",
                "peer", "name", host.interface, "netns", host.netns,
            )  # fmt: skip
            await switch.ip("link", "set", port, "master", "br0", "up")
            host._cable = (switch, port)
            await self._address(host, host.interface, host.ipv4, LAN_V4, host.ipv6, LAN_V6)

        # The remote link: router eth1 <-> remote eth0.
        await router.ip(
            "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", remote.netns
        )
        await self._address(
            router, "eth1", REMOTE_V4[1], REMOTE_V4, REMOTE_V6[1] if v6 else None, REMOTE_V6
        )
        await self._address(remote, "eth0", remote.ipv4, REMOTE_V4, remote.ipv6, REMOTE_V6)
        remote._cable = (router, "eth1")

        for host in [*lan[1:], remote]:
            gateway4 = REMOTE_V4[1] if host is remote else _ROUTER_V4
            await host.ip("-4", "route", "add", "default", "via", str(gateway4))
            if v6:
                gateway6 = REMOTE_V6[1] if host is remote else _ROUTER_V6
                await host.ip("-6", "route", "add", "default", "via", str(gateway6))
        for host in [*lan, remote]:
            await host._learn_link()

    @staticmethod
    async def _address(
        host: Host,
        interface: str,
        ipv4: ipaddress.IPv4Address | None,
        net4: ipaddress.IPv4Network,
        ipv6: ipaddress.IPv6Address | None,
        net6: ipaddress.IPv6Network,
    ) -> None:
        if ipv4 is not None:
            await host.ip("addr", "add", f"{ipv4}/{net4.prefixlen}", "dev", interface)
        if ipv6 is not None:
            await host.ip("addr", "add", f"{ipv6}/{net6.prefixlen}", "dev", interface, "nodad")
        await host.ip("link", "set", interface, "up")

    def _sysctls(self, host: Host) -> dict[str, str | int]:
        # Inside the host's namespace only (Host.sysctl runs under `ip netns exec`).
        settings: dict[str, str | int] = {
            # No duplicate address detection: addresses are usable at once.
            "net.ipv6.conf.all.accept_dad": 0,
            "net.ipv6.conf.default.accept_dad": 0,
            "net.ipv6.conf.all.accept_ra": 0,
            "net.ipv6.conf.default.accept_ra": 0,
        }
        if host.name == "switch":
            # Bridge ports carry no addresses of their own.
            settings["net.ipv6.conf.all.disable_ipv6"] = 1
            settings["net.ipv6.conf.default.disable_ipv6"] = 1
            return settings
        # LAN hosts ignore ICMP redirects: else the router, forwarding a LAN client's
        # packet back onto the LAN, would redirect the client to one node for good and
        # the client would bypass the router's ECMP.
        settings["net.ipv4.conf.all.accept_redirects"] = 0
        settings["net.ipv4.conf.default.accept_redirects"] = 0
        settings["net.ipv6.conf.all.accept_redirects"] = 0
        settings["net.ipv6.conf.default.accept_redirects"] = 0
        if host.name == "router":
            settings.update(
                {
                    "net.ipv4.conf.all.send_redirects": 0,
                    "net.ipv4.conf.default.send_redirects": 0,
                    "net.ipv4.ip_forward": 1,
                    "net.ipv6.conf.all.forwarding": 1,
                    # Hash on ports too, so one client's connections spread over ECMP paths.
                    "net.ipv4.fib_multipath_hash_policy": 1,
                    "net.ipv6.fib_multipath_hash_policy": 1,
                }
            )
        elif host.name.startswith("node-"):
            # As kube-proxy sets them: a Service IP on a node's lo is not answered for in
            # ARP on the LAN (only the layer-2 speaker may answer), nor used as source.
            settings["net.ipv4.conf.all.arp_ignore"] = 1
            settings["net.ipv4.conf.all.arp_announce"] = 2
        return settings

    def _make_router(self, flavour: str) -> Router:
        config = self.settings.bgp
        if config.peers is None:
            peers = [Peer(node.ipv4) for node in self.nodes if node.ipv4 is not None]
            peers += [Peer(node.ipv6) for node in self.nodes if node.ipv6 is not None]
            config = dataclasses.replace(config, peers=tuple(peers))
        aliases = {
            str(node.link_local): str(node.ipv6)
            for node in self.nodes
            if node.link_local is not None and node.ipv6 is not None
        }
        return _router_class(flavour)(self.router_host, config, aliases)

    def _spawn_root(self, name: str, argv: Sequence[str], log_path: Path) -> LabProcess:
        assert self._registry is not None
        process = LabProcess(name, argv, log_path, netns=None)
        self._registry.processes.append(process)
        return process

    # --- services for tests ---------------------------------------------------------

    async def http_get(
        self, from_host: Host, ip: str | IPAddress, port: int = 80, timeout: float = 2.0
    ) -> str:
        """GET http://ip:port/ from inside `from_host`; the body (CommandFailed if none)."""
        address = ipaddress.ip_address(ip)
        target = f"[{address}]" if address.version == 6 else str(address)
        result = await from_host.exec(
            "curl", "--silent", "--show-error", "--fail", "--globoff", "--noproxy", "*",
            "--max-time", f"{timeout:g}", f"http://{target}:{port}/",
            timeout=timeout + 10.0,
        )  # fmt: skip
        return result.stdout

    async def apiserver_relay(self, host: Host, target_port: int, port: int | None = None) -> int:
        """Make 127.0.0.1:`port` inside `host` reach the root namespace's 127.0.0.1:`target_port`.

        Namespaces cannot reach the host's loopback, and the lab never adds an interface
        to the root namespace, so the bytes go through a unix socket in the work dir:
        a socat in the root namespace listens on it and connects to the target; a socat
        in `host` listens on its loopback and connects to the socket. `port` defaults to
        `target_port`, so a kubeconfig pointing at https://127.0.0.1:<target_port> works
        unchanged inside the namespace (the apiserver's certificate names 127.0.0.1).
        Returns the port inside the namespace.
        """
        port = port or target_port
        if (host.name, port) in self._relays:
            return port
        socket_path = self._relay_sockets.get(target_port)
        if socket_path is None:
            socket_path = self.workdir / f"relay-{target_port}.sock"
            outer = self._spawn_root(
                f"relay->{target_port}",
                ["socat", "-d", "-d", f"UNIX-LISTEN:{socket_path},fork,unlink-early,mode=600",
                 f"TCP:127.0.0.1:{target_port}"],
                self.workdir / f"relay-{target_port}.log",
            )  # fmt: skip
            await outer.start()
            await outer.wait_until(f"listening on {socket_path}", socket_path.exists)
            self._relay_sockets[target_port] = socket_path
        inner = await host.spawn(
            ["socat", "-d", "-d", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
             f"UNIX-CONNECT:{socket_path}"],
            host.workdir / f"relay-{port}.log",
            name=f"{host.name}/relay:{port}",
        )  # fmt: skip
        await inner.wait_for_log("listening on", timeout=10.0)
        self._relays[(host.name, port)] = target_port
        return port

    async def node_kubeconfig(self, host: Host, kubeconfig: Path) -> Path:
        """A copy of `kubeconfig` usable inside `host`: relays its server's port and points
        the copy at 127.0.0.1:<port> (written to the host's work dir)."""
        server = _kubeconfig_server(kubeconfig)
        target = urllib.parse.urlsplit(server).port
        if target is None:
            raise NetlabError(f"{kubeconfig}: server {server} names no port")
        port = await self.apiserver_relay(host, target)
        return rewrite_kubeconfig(kubeconfig, host.workdir / "kubeconfig", port)

    def log_tails(self) -> str:
        """The end of every process log and router log, for a failing test's report."""
        parts = [f"--- {p.name} ({p.log_path})\n{p.log_tail()}" for p in self.processes]
        return "\n".join(parts)


def _kubeconfig_server(path: Path) -> str:
    config = yaml.safe_load(path.read_text())
    clusters = config.get("clusters") or []
    if not clusters:
        raise NetlabError(f"{path}: no clusters")
    return str(clusters[0]["cluster"]["server"])


def rewrite_kubeconfig(source: Path, destination: Path, port: int) -> Path:
    """Copy a kubeconfig, pointing every cluster at https://127.0.0.1:`port` (the relay
    inside a node namespace); scheme and path are kept. Returns `destination`."""
    config = yaml.safe_load(source.read_text())
    for cluster in config.get("clusters") or []:
        server = urllib.parse.urlsplit(cluster["cluster"]["server"])
        cluster["cluster"]["server"] = urllib.parse.urlunsplit(
            (server.scheme or "https", f"127.0.0.1:{port}", server.path, "", "")
        )
    destination.write_text(json.dumps(config, indent=2) + "\n")
    destination.chmod(0o600)
    return destination


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m openelb_testenv.netlab remove-stale`: delete namespaces of dead runs."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m openelb_testenv.netlab")
    parser.add_argument("command", choices=["remove-stale", "list"])
    parser.add_argument(
        "--unclaimed",
        action="store_true",
        help="also remove oelb- namespaces no lab claims (only when nothing else runs)",
    )
    args = parser.parse_args(argv)
    if args.command == "list":
        for netns in list_namespaces():
            if (run_id := _run_of(netns)) is not None:
                owner = _lock_owner(run_id)
                claimed = _lock_path(run_id).exists()
                state = f"alive (pid {owner})" if owner else "stale" if claimed else "unclaimed"
                print(netns, state)
        return 0
    for netns in remove_stale_namespaces(unclaimed=args.unclaimed):
        print("removed", netns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
