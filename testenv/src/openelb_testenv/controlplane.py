"""A real etcd and kube-apiserver on loopback, started and stopped from Python (DESIGN §5).

Test environment, outside the runtime layers of DESIGN §3: the integration-test fixtures
(tests/integration/conftest.py) and the demo use it; no runtime module imports it.
It finds the binaries that hack/build-control-plane.sh cached, writes a throw-away CA
and certificates with the openssl CLI, starts etcd and kube-apiserver on free loopback
ports (TLS, RBAC, ServiceAccount token signing, an admin in system:masters), waits until
both answer, writes a kubeconfig and always tears everything down again. It knows
nothing about openelb's CRDs or RBAC (manifests.py applies them) nor about API clients
(clients.py).

Teardown happens on every path: `stop()` / `async with`, an atexit hook for an
interpreter that exits without stopping, and the kernel's parent-death signal for one
that is killed outright. Each server runs in its own process group, which is what gets
killed.

    ControlPlaneError            root of this module's errors
     ├── BinariesMissing         the pinned binaries are not built (run the build script)
     ├── ProcessExited           etcd or kube-apiserver exited on its own
     └── StartTimeout            a server did not become ready in time
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import ctypes
import dataclasses
import functools
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

__all__ = [
    "BUILD_SCRIPT",
    "Binaries",
    "BinariesMissing",
    "ControlPlane",
    "ControlPlaneError",
    "ProcessExited",
    "Settings",
    "StartTimeout",
    "cache_key",
    "main",
    "warm_versions",
]

#: The script that builds the binaries, relative to the repository root.
BUILD_SCRIPT = "hack/build-control-plane.sh"

# The files whose bytes, concatenated in this order, hash to the cache key. The build
# script hashes the same list: change both together.
_PINNED_FILES = (
    "hack/controlplane/etcd/go.mod",
    "hack/controlplane/etcd/go.sum",
    "hack/controlplane/kube-apiserver/go.mod",
    "hack/controlplane/kube-apiserver/go.sum",
    BUILD_SCRIPT,
)

# Overrides the cache entry directory (a directory holding etcd and kube-apiserver).
_BINARIES_ENV = "OPENELB_CONTROLPLANE_BIN"

_WORKDIR_PREFIX = "openelb-controlplane-"
_OWNER_FILE = "owner.pid"
_LOG_TAIL_BYTES = 4000
_PR_SET_PDEATHSIG = 1

_T = TypeVar("_T")
_Probe = Callable[[], Awaitable[bool]]


class ControlPlaneError(Exception):
    """Root of the errors this module raises."""


class BinariesMissing(ControlPlaneError):
    """The cache entry for the pinned versions does not hold both binaries."""

    def __init__(self, directory: Path, build_script: Path) -> None:
        self.directory = directory
        self.build_script = build_script
        super().__init__(
            f"etcd and kube-apiserver for the pinned versions are not built "
            f"(expected in {directory}): run {build_script}"
        )


class ProcessExited(ControlPlaneError):
    """A server exited without being asked to; carries the end of its log."""

    def __init__(self, name: str, returncode: int, log_tail: str) -> None:
        self.name = name
        self.returncode = returncode
        self.log_tail = log_tail
        super().__init__(f"{name} exited with status {returncode}; its log ends:\n{log_tail}")


class StartTimeout(ControlPlaneError):
    """A server did not become ready in time; carries the end of its log."""

    def __init__(self, name: str, timeout: float, log_tail: str) -> None:
        self.name = name
        self.timeout = timeout
        self.log_tail = log_tail
        super().__init__(f"{name} was not ready after {timeout:g}s; its log ends:\n{log_tail}")


def cache_key(repo: Path) -> str:
    """The cache entry name for the versions pinned in `repo` (as the build script computes it)."""
    digest = hashlib.sha256()
    for relative in _PINNED_FILES:
        digest.update((repo / relative).read_bytes())
    return digest.hexdigest()[:16]


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "openelb" / "controlplane"


def _find_repo() -> Path:
    # testenv/src/openelb_testenv/controlplane.py -> the checkout's root holds the build script.
    for parent in Path(__file__).resolve().parents:
        if (parent / BUILD_SCRIPT).is_file():
            return parent
    raise ControlPlaneError(
        f"no {BUILD_SCRIPT} above {__file__}: pass the repository root explicitly"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Binaries:
    """Paths of the two server binaries."""

    etcd: Path
    kube_apiserver: Path

    @classmethod
    def locate(cls, repo: Path | None = None) -> Binaries:
        """The cached binaries for the versions pinned in `repo` (default: this checkout).

        The environment variable OPENELB_CONTROLPLANE_BIN names another directory instead.
        Raises BinariesMissing, naming the build script, when either binary is absent.
        """
        repo = repo if repo is not None else _find_repo()
        override = os.environ.get(_BINARIES_ENV)
        directory = Path(override) if override else _cache_root() / cache_key(repo)
        found = cls(etcd=directory / "etcd", kube_apiserver=directory / "kube-apiserver")
        for path in (found.etcd, found.kube_apiserver):
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise BinariesMissing(directory, repo / BUILD_SCRIPT)
        return found


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """How a ControlPlane runs; the defaults suit tests."""

    # Seconds each server gets to become ready.
    start_timeout: float = 90.0
    # Seconds between SIGTERM and SIGKILL when stopping a server.
    stop_timeout: float = 15.0
    # ClusterIP ranges (dual stack, so IPv6 Services can exist). Never routed: there is
    # no kube-proxy; the apiserver only allocates from them.
    service_cidrs: str = "10.96.0.0/16,fd00:10:96::/112"
    # Extra kube-apiserver flags, appended last so they win.
    extra_apiserver_args: tuple[str, ...] = ()
    # Where the servers' logs go; None keeps them in the work dir, removed on stop.
    log_dir: Path | None = None
    # Directory the work dir is created in; None is the system temp dir.
    temp_root: Path | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int


def warm_versions(crd: dict[str, Any]) -> list[dict[str, Any]]:
    """The served versions of a CRD that can be read without its conversion webhook:
    all of them under the None strategy, only the storage version otherwise."""
    webhook = ((crd["spec"].get("conversion") or {}).get("strategy") == "Webhook")
    return [v for v in crd["spec"]["versions"]
            if v.get("served") and (v.get("storage") or not webhook)]


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are chosen so the kernel hands out distinct ports.
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _die_with_parent(parent_pid: int) -> None:
    # Runs in the child between fork and exec: the kernel sends SIGKILL when the thread
    # that started us exits, so a killed test run leaves no server behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_workdirs(root: Path) -> None:
    # Work dirs of runs that were SIGKILLed (their servers died with them).
    for candidate in root.glob(_WORKDIR_PREFIX + "*"):
        owner = candidate / _OWNER_FILE
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(candidate, ignore_errors=True)


_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,\
DNS:kubernetes.default.svc
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""


@dataclasses.dataclass(frozen=True, slots=True)
class _Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ControlPlaneError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _write_pki(directory: Path, days: int = 7) -> _Pki:
    """A fresh CA, the apiserver's serving cert, an admin client cert, the SA key pair."""
    directory.mkdir(mode=0o700)
    (directory / "openssl.cnf").write_text(_OPENSSL_CONFIG)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", "-config", "openssl.cnf", "-extensions", "ca", *ec,
        "-keyout", "ca.key", "-out", "ca.crt", "-days", str(days),
        "-subj", "/CN=openelb-testenv-ca",
        cwd=directory,
    )  # fmt: skip
    for name, subject, extensions in (
        ("server", "/CN=kube-apiserver", "server"),
        ("admin", "/O=system:masters/CN=openelb-testenv-admin", "client"),
    ):
        _openssl(
            "req", "-new", "-config", "openssl.cnf", *ec,
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
            cwd=directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", str(secrets.randbits(63)), "-days", str(days),
            "-extfile", "openssl.cnf", "-extensions", extensions, "-out", f"{name}.crt",
            cwd=directory,
        )  # fmt: skip
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", "sa.key",
        cwd=directory,
    )  # fmt: skip
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
    return _Pki(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )


def _kubeconfig_text(server: str, pki: _Pki) -> str:
    # JSON is YAML; kubectl and kubernetes_asyncio both read it.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "openelb-testenv",
                "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "openelb-testenv-admin",
                "user": {
                    "client-certificate": str(pki.admin_cert),
                    "client-key": str(pki.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": "openelb-testenv",
                "context": {"cluster": "openelb-testenv", "user": "openelb-testenv-admin"},
            }
        ],
        "current-context": "openelb-testenv",
    }
    return json.dumps(config, indent=2) + "\n"


async def _http_get(port: int, path: str, tls: ssl.SSLContext | None) -> tuple[int, bytes]:
    """One HTTP/1.0 GET (never chunked) on 127.0.0.1 -> (status, body); callers bound the time."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="127.0.0.1" if tls else None
    )
    try:
        writer.write(
            f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    return (int(status_line[1]) if len(status_line) > 1 else 0), body


class _Server:
    """One server process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        parent = os.getpid()
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: _die_with_parent(parent),
            )

    def exited(self) -> int | None:
        """The exit status if the process has exited on its own, else None."""
        return None if self.process is None else self.process.poll()

    def log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
                return log.read().decode(errors="replace")
        except OSError:
            return "(no log)"

    def _signal_group(self, signum: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    async def stop(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds, reap the process."""
        if self.process is None:
            return
        if self.process.poll() is None:  # a reaped pid may already belong to another process
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                async with asyncio.timeout(grace):
                    await self._wait_exit()
        self.kill()

    async def _wait_exit(self) -> None:
        # A pidfd turns readable when the process exits: no polling, no thread.
        assert self.process is not None
        loop = asyncio.get_running_loop()
        exited = loop.create_future()
        pidfd = os.pidfd_open(self.process.pid)
        try:
            loop.add_reader(pidfd, exited.set_result, None)
            try:
                await exited
            finally:
                loop.remove_reader(pidfd)
        finally:
            os.close(pidfd)

    def kill(self) -> None:
        """SIGKILL the process group and reap the process (synchronous, for emergencies)."""
        if self.process is None:
            return
        # Signal the group even when the leader has exited: a straggler may remain.
        self._signal_group(signal.SIGKILL)
        self.process.wait()
        self.process = None


class ControlPlane:
    """etcd + kube-apiserver on 127.0.0.1, usable as `async with ControlPlane(...) as cp`.

    After start(): `server` is the apiserver URL, `kubeconfig` a kubeconfig for the admin
    (group system:masters), `ca_file`, `admin_cert` and `admin_key` the PEM files behind
    it. restart_apiserver() keeps etcd, its data and the apiserver's port and keys.

    Start the servers from a thread that lives as long as they should (normally the
    event loop's main thread): the parent-death signal fires when that thread exits.
    """

    def __init__(self, binaries: Binaries, settings: Settings | None = None) -> None:
        self.binaries = binaries
        self.settings = settings if settings is not None else Settings()
        self._workdir: Path | None = None
        self._pki: _Pki | None = None
        self._ports: _Ports | None = None
        self._etcd: _Server | None = None
        self._apiserver: _Server | None = None
        self.started_in: float | None = None  # seconds the last start() took

    # -- what clients need -------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        return self._require(self._workdir)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._require(self._ports).apiserver}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self._require(self._pki).ca_cert

    @property
    def admin_cert(self) -> Path:
        return self._require(self._pki).admin_cert

    @property
    def admin_key(self) -> Path:
        return self._require(self._pki).admin_key

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self._require(self._ports).etcd_client}"

    def pids(self) -> dict[str, int]:
        """Process ids of the servers that are running, by name."""
        return {
            server.name: server.process.pid
            for server in (self._etcd, self._apiserver)
            if server is not None and server.process is not None
        }

    @staticmethod
    def _require(value: _T | None) -> _T:
        if value is None:
            raise ControlPlaneError("the control plane is not running")
        return value

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> ControlPlane:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start etcd, then kube-apiserver; return once /readyz answers ok."""
        if self._workdir is not None:
            raise ControlPlaneError("the control plane is already running")
        began = time.monotonic()
        temp_root = self.settings.temp_root or Path(tempfile.gettempdir())
        _remove_stale_workdirs(temp_root)
        self._workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX, dir=temp_root))
        atexit.register(self.kill)
        try:
            (self._workdir / _OWNER_FILE).write_text(str(os.getpid()))
            self._pki = _write_pki(self._workdir / "pki")
            self._ports = _Ports(*_free_ports(3))
            log_dir = self.settings.log_dir or self._workdir
            log_dir.mkdir(parents=True, exist_ok=True)
            self._etcd = _Server("etcd", self._etcd_argv(), log_dir / "etcd.log")
            self._apiserver = _Server(
                "kube-apiserver", self._apiserver_argv(), log_dir / "kube-apiserver.log"
            )
            self._etcd.start()
            await self._wait_ready(self._etcd, self._etcd_ready)
            self.kubeconfig.write_text(_kubeconfig_text(self.server, self._pki))
            await self.start_apiserver()
        except BaseException:
            self.kill()
            raise
        self.started_in = time.monotonic() - began

    async def stop(self) -> None:
        """Stop both servers (apiserver first) and remove the work dir; idempotent."""
        try:
            if self._apiserver is not None:
                await self._apiserver.stop(self.settings.stop_timeout)
            if self._etcd is not None:
                await self._etcd.stop(self.settings.stop_timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """Kill both servers at once and remove the work dir (synchronous; also atexit)."""
        atexit.unregister(self.kill)
        for server in (self._apiserver, self._etcd):
            if server is not None:
                server.kill()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = self._pki = self._ports = None
        self._etcd = self._apiserver = None

    async def etcd_v3(self, call: str, body: dict[str, Any]) -> dict[str, Any]:
        """One call of etcd's v3 JSON gateway (e.g. "kv/put"; keys and values base64),
        for tests that change what the apiserver stores behind its back. etcd here is
        plain HTTP on loopback; etcdctl is not part of the build."""
        import aiohttp  # the test environment's own dependency; only these tests need it

        async with aiohttp.ClientSession() as session, session.post(
            f"{self.etcd_url}/v3/{call}", json=body, timeout=aiohttp.ClientTimeout(total=10)
        ) as response:
            response.raise_for_status()
            return dict(await response.json(content_type=None))

    @staticmethod
    def _b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    async def etcd_delete(self, key: str) -> None:
        """Delete `key` (e.g. /registry/services/specs/NS/NAME) straight from etcd."""
        await self.etcd_v3("kv/deleterange", {"key": self._b64(key)})

    async def etcd_compact(self) -> int:
        """Advance etcd's revision (a marker key) and compact everything before it:
        every older resourceVersion is then too old to watch from. Returns the revision."""
        head = await self.etcd_v3("kv/put", {"key": self._b64("/openelb-testenv/compacted"),
                                             "value": self._b64(str(time.time()))})
        revision = int(head["header"]["revision"])
        await self.etcd_v3("kv/compaction", {"revision": revision, "physical": True})
        return revision

    async def stop_apiserver(self) -> None:
        """Stop only kube-apiserver (clients then see connection errors)."""
        await self._require(self._apiserver).stop(self.settings.stop_timeout)

    async def start_apiserver(self, *, warm_crds: bool = True) -> None:
        """Start kube-apiserver (again) on the same port; return once it serves requests.

        Ready means /readyz answers ok and, with `warm_crds`, every served version of
        every CRD answers a list: custom resource storage starts lazily, and until it
        has loaded the apiserver answers 429 "storage is (re)initializing".
        """
        apiserver = self._require(self._apiserver)
        if apiserver.process is not None:
            raise ControlPlaneError("kube-apiserver is already running")
        apiserver.start()
        await self._wait_ready(apiserver, self._apiserver_ready)
        if warm_crds:
            for path in await self._crd_list_paths():
                await self._wait_ready(apiserver, functools.partial(self._lists, path))

    async def restart_apiserver(self, *, warm_crds: bool = True) -> None:
        """Stop and start kube-apiserver; etcd and everything stored in it stay."""
        await self.stop_apiserver()
        await self.start_apiserver(warm_crds=warm_crds)

    # -- internals ---------------------------------------------------------------------

    def _etcd_argv(self) -> list[str]:
        ports = self._require(self._ports)
        client = f"http://127.0.0.1:{ports.etcd_client}"
        peer = f"http://127.0.0.1:{ports.etcd_peer}"
        return [
            str(self.binaries.etcd),
            "--name=openelb-testenv",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=openelb-testenv={peer}",
            "--initial-cluster-state=new",
            # Throw-away data: durability buys nothing and fsync dominates write latency.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_argv(self) -> list[str]:
        pki = self._require(self._pki)
        ports = self._require(self._ports)
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--tls-cert-file={pki.server_cert}",
            f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=RBAC",
            # TokenRequest: tokens signed with sa.key, verified with sa.pub.
            f"--service-account-issuer=https://127.0.0.1:{ports.apiserver}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={self.settings.service_cidrs}",
            "--allow-privileged=false",
            "--profiling=false",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            *self.settings.extra_apiserver_args,
        ]

    def _admin_tls(self) -> ssl.SSLContext:
        pki = self._require(self._pki)
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        return context

    async def _etcd_ready(self) -> bool:
        status, body = await _http_get(self._require(self._ports).etcd_client, "/health", None)
        return status == 200 and b'"true"' in body

    async def _apiserver_ready(self) -> bool:
        port = self._require(self._ports).apiserver
        status, body = await _http_get(port, "/readyz", self._admin_tls())
        return status == 200 and body.strip() == b"ok"

    async def _lists(self, path: str) -> bool:
        status, _ = await _http_get(self._require(self._ports).apiserver, path, self._admin_tls())
        return status == 200

    async def _crd_list_paths(self) -> list[str]:
        port = self._require(self._ports).apiserver
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        status, body = await _http_get(port, path, self._admin_tls())
        if status != 200:
            raise ControlPlaneError(f"listing CRDs answered HTTP {status}")
        return [
            f"/apis/{crd['spec']['group']}/{version['name']}/{crd['spec']['names']['plural']}"
            for crd in json.loads(body)["items"]
            for version in warm_versions(crd)
        ]

    async def _wait_ready(self, server: _Server, probe: _Probe) -> None:
        deadline = time.monotonic() + self.settings.start_timeout
        while True:
            returncode = server.exited()
            if returncode is not None:
                raise ProcessExited(server.name, returncode, server.log_tail())
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError, ValueError):
                async with asyncio.timeout(5):
                    if await probe():
                        return
            if time.monotonic() > deadline:
                raise StartTimeout(server.name, self.settings.start_timeout, server.log_tail())
            await asyncio.sleep(0.1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a control plane until SIGINT/SIGTERM; print its kubeconfig path when ready."""
    parser = argparse.ArgumentParser(
        prog="python -m openelb_testenv.controlplane",
        description="Run a real etcd + kube-apiserver on loopback until interrupted.",
    )
    parser.add_argument(
        "--log-dir", type=Path, help="keep the servers' logs here (default: removed on exit)"
    )
    args = parser.parse_args(argv)
    try:
        binaries = Binaries.locate()
    except ControlPlaneError as exc:
        print(exc, file=sys.stderr)
        return 1
    return asyncio.run(_serve(ControlPlane(binaries, Settings(log_dir=args.log_dir))))


async def _serve(control_plane: ControlPlane) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    async with control_plane:
        print(f"control plane ready in {control_plane.started_in:.1f}s", flush=True)
        print(f"export KUBECONFIG={control_plane.kubeconfig}", flush=True)
        await stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
