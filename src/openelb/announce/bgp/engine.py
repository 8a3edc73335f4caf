"""Supervises one ExaBGP process and speaks its text API (acks on, in order).

announce/bgp (DESIGN §3, STYLE §2.8). The engine owns a unix socket; ExaBGP runs
OpenBSD netcat as its API program, which connects to it (the bridge: a byte pipe
between ExaBGP's stdin/stdout and the socket, so the speaker stays ExaBGP's owner, not
its child; nc's peak RSS is 1.5 MB, socat's 4.5, a Python bridge's 10.5). Every command is awaited
until ExaBGP answers `done` (or `error`, raised as BgpEngineError); lines before the
answer are the command's output; JSON lines are events, handed to `on_event`. If
ExaBGP exits, it is started again with the last configuration (capped backoff) and
`on_connect` runs on every new bridge connection, so the owner re-sends its full state.

A `reload` is confirmed by reading the configuration back: ExaBGP answers `done` before
it reloads, and silently drops the reload while any neighbour still has routes queued to
send (exabgp 5.0.15, reactor/loop.py: `_pending_adjribout`), so the engine writes a
generation into every neighbour's description (config.render), asks ExaBGP for `show
neighbor configuration` until every neighbour shows it, and asks for the reload again
meanwhile. ExaBGP's own output goes to exabgp.log in the work dir, rotated at
`log_limit` bytes (LOG_LIMIT, 4 MB; one older file kept), so a speaker that runs for
months does not fill its emptyDir.
"""

import asyncio
import collections
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from openelb.announce.bgp import config, errors

__all__ = ["Engine"]

log = logging.getLogger(__name__)

EXABGP_ENV = {
    "exabgp.daemon.daemonize": "false",
    "exabgp.daemon.user": "root",  # the speaker already runs with only NET_ADMIN/NET_RAW
    "exabgp.daemon.drop": "false",
    "exabgp.api.ack": "true",  # pinned: every command is answered, and we wait for it
    "exabgp.api.cli": "false",  # no named pipes: the bridge is our only channel
    "exabgp.api.respawn": "true",
    "exabgp.log.destination": "stdout",
    "exabgp.log.level": "INFO",
}


_PR_SET_PDEATHSIG = 1
LOG_LIMIT = 4 * 1024 * 1024  # exabgp.log is rotated at this size (one old file kept)


def _die_with_parent() -> None:
    """In the forked child: SIGKILL ExaBGP when the speaker dies, however it dies.

    DESIGN §4 fate-sharing: a speaker killed with SIGKILL must not leave an ExaBGP behind
    that keeps its sessions (and its routes) alive. The kernel then closes the TCP
    sessions and routers drop this node's paths at once.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Engine:
    def __init__(self, workdir: Path, *,
                 on_event: Callable[[dict[str, Any]], None],
                 on_connect: Callable[[], Coroutine[Any, Any, None]],
                 command_timeout: float = 10.0, log_limit: int = LOG_LIMIT) -> None:
        self.workdir = workdir
        self.config_path = workdir / "exabgp.conf"
        self.socket_path = workdir / "api.sock"
        self.log_path = workdir / "exabgp.log"
        self._on_event = on_event
        self._on_connect = on_connect
        self._timeout = command_timeout
        self._log_limit = log_limit
        self._server: asyncio.AbstractServer | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._pending: collections.deque[tuple[asyncio.Future[list[str]], list[str]]] = (
            collections.deque())
        self._lock = asyncio.Lock()
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._generation = 0  # of the configuration last written (config.render)
        self.restarts = 0
        # ExaBGP's API program: OpenBSD netcat between its stdio and our socket.
        # ExaBGP 5.0.15 speaks its API only with programs it runs itself (`process`,
        # over their stdin/stdout), so the speaker, which must stay ExaBGP's owner and
        # not its child, needs a pipe between the two. nc is that pipe, a workaround we
        # keep: 1.5 MB of RSS against 10.5 MB for a Python relay, and a program ExaBGP
        # may restart freely. The name is Debian's (package netcat-openbsd, in the
        # image); other netcats lack `-N`/`-U`. The socket is bound before ExaBGP
        # starts, so one connect attempt suffices. `-N` shuts the socket down when
        # ExaBGP closes nc's stdin (ExaBGP died), so the
        # engine sees the disconnect; when the engine closes the socket, nc exits,
        # ExaBGP respawns it and the owner re-sends its state on the new connection.
        # Resolved once: the owner renders the configuration on every plan round.
        # start() refuses to run without it, so a node with no BGP never needs nc.
        self.bridge_argv = [shutil.which("nc.openbsd") or "/usr/bin/nc.openbsd",
                            "-N", "-U", str(self.socket_path)]

    def _check_bridge(self) -> None:
        netcat, *_, path = self.bridge_argv
        if not os.access(netcat, os.X_OK):
            raise errors.BgpEngineError("nc.openbsd not found",
                                        "install OpenBSD netcat (Debian: netcat-openbsd)")
        if any(c in path for c in ",;\"'{}[]#\\ \t"):  # ExaBGP's `run` has no quoting
            raise errors.BgpEngineError("unusable socket path", path)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def started(self) -> bool:
        """Whether start() ran (a node without BGP never starts ExaBGP)."""
        return self._supervisor is not None and not self._closing

    @property
    def running(self) -> bool:
        """ExaBGP is up and its API bridge connected (what /readyz wants to know)."""
        process = self._process
        return (process is not None and process.returncode is None
                and self._connected.is_set())

    async def start(self, config_text: str) -> None:
        self._check_bridge()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config_text)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._accept, str(self.socket_path))
        self._supervisor = asyncio.create_task(self._supervise(), name="exabgp-supervisor")

    async def wait_connected(self, timeout: float = 30.0) -> None:
        """Until ExaBGP's API program has connected; BgpEngineError after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            raise errors.BgpEngineError(
                "exabgp api not connected",
                f"no bridge connection within {timeout:g} s; see {self.log_path}") from None

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._closing:
            env = {**os.environ, **EXABGP_ENV}
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "exabgp", "server", str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True,
                preexec_fn=_die_with_parent)
            started = asyncio.get_running_loop().time()
            assert self._process.stdout is not None
            await self._copy_log(self._process.stdout)  # until ExaBGP closes its output
            code = await self._process.wait()
            if self._closing:
                return
            self.restarts += 1
            log.error("exabgp exited, restarting", extra={
                "op": "bgp", "error": f"exit code {code}", "after": backoff})
            self._connected.clear()
            self._fail_pending(errors.BgpEngineError("exabgp exited", f"code {code}"))
            if asyncio.get_running_loop().time() - started > 30:
                backoff = 0.5
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _copy_log(self, output: asyncio.StreamReader) -> None:
        """Append ExaBGP's output to exabgp.log, rotated at `log_limit` bytes."""
        log_file = self.log_path.open("ab")
        try:
            while line := await output.readline():
                if log_file.tell() + len(line) > self._log_limit:
                    log_file.close()
                    self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))
                    log_file = self.log_path.open("ab")
                log_file.write(line)
                log_file.flush()
        finally:
            log_file.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:
            self._writer.close()
        self._fail_pending(errors.BgpEngineError("bridge reconnected"))
        self._writer = writer
        self._connected.set()
        log.info("exabgp api connected", extra={"op": "bgp"})
        task = asyncio.create_task(self._on_connect(), name="exabgp-resend")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            while line := await reader.readline():
                self._dispatch(line.decode(errors="replace").rstrip("\n"))
        finally:
            if self._writer is writer:
                self._writer = None
                self._connected.clear()
                self._fail_pending(errors.BgpEngineError("bridge disconnected"))

    def _dispatch(self, line: str) -> None:
        stripped = line.strip()
        if stripped.startswith("{"):
            try:
                self._on_event(json.loads(stripped))
            except ValueError:
                log.warning("undecodable exabgp event", extra={"op": "bgp", "error": line})
            return
        if not self._pending:
            if stripped:
                log.debug("exabgp said", extra={"op": "bgp", "line": line})
            return
        future, output = self._pending[0]
        if stripped == "done":
            self._pending.popleft()
            if not future.done():
                future.set_result(output)
        elif stripped == "error":
            self._pending.popleft()
            if not future.done():
                future.set_exception(errors.BgpEngineError("exabgp refused", "; ".join(output)))
        else:
            output.append(line)

    def _fail_pending(self, error: errors.BgpEngineError) -> None:
        while self._pending:
            future, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(error)

    async def command(self, line: str) -> list[str]:
        """Send one API command and wait for its answer; returns its output lines."""
        async with self._lock:
            writer = self._writer
            if writer is None:
                raise errors.BgpEngineError("exabgp not connected", line)
            future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
            self._pending.append((future, []))
            writer.write(line.encode() + b"\n")
            await writer.drain()
        try:
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError:
            raise errors.BgpEngineError("exabgp did not answer", line) from None

    async def reload(self, render: Callable[[int], str], *, timeout: float = 10.0,
                     retry_after: float = 0.2, poll: float = 0.02) -> None:
        """Apply a new configuration, `render(generation)`; unchanged neighbours keep
        their sessions.

        Returns once ExaBGP shows every neighbour of the new configuration at its
        generation; asks for the reload again every `retry_after` seconds while ExaBGP
        drops it (routes still queued for a neighbour, see the module docstring).
        BgpEngineError when it never shows it (a configuration ExaBGP refuses says why
        in exabgp.log, whose end the error carries).
        """
        self._generation += 1
        text = render(self._generation)
        self.config_path.write_text(text)
        wanted = config.GENERATION_MARK.format(self._generation)
        neighbours = text.count(wanted)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self.command("reload")
            ask_again = min(loop.time() + retry_after, deadline)
            while True:
                shown = [line for line in await self.command("show neighbor configuration")
                         if line.strip().startswith("description ")]
                if len(shown) == neighbours and all(wanted in line for line in shown):
                    return
                if loop.time() >= ask_again:
                    break
                await asyncio.sleep(poll)
            if loop.time() >= deadline:
                raise errors.BgpEngineError(
                    "exabgp did not reload",
                    f"generation {self._generation} not shown after {timeout:g}s; "
                    f"exabgp.log ends: {self._log_tail()}")

    def _log_tail(self, size: int = 600) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:].strip()
        except OSError:
            return ""

    async def stop(self, grace: float = 5.0) -> None:
        """Ask ExaBGP to shut down (it closes every session), then make sure it is gone."""
        self._closing = True
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(errors.BgpEngineError):
                await self.command("shutdown")
            try:
                async with asyncio.timeout(grace):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
