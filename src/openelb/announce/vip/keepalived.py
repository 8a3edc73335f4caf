"""Runs keepalived for VIP mode: one child per speaker, supervised, and its states.

announce/vip (DESIGN §2, §4). keepalived runs in the foreground, VRRP only
(`--vrrp`), with its pid files and notify FIFO in the speaker's workdir so several
speakers on one host never collide. It dies with the speaker (PR_SET_PDEATHSIG:
SIGTERM, so a speaker killed outright still has keepalived resign its masterships with
priority 0 and remove its addresses; a dead node is covered by the VRRP timers).

`set(text)` starts keepalived on the first configuration, reloads it (SIGHUP) when
the text changes (keepalived keeps the state of instances whose name is unchanged),
and stops it on None: a node with no VIP Service runs no keepalived. A configuration
is checked with `keepalived --config-test` before it replaces the running one.

A keepalived that exits unexpectedly is started again with capped exponential backoff;
each restart is counted and reported through `on_exit`. keepalived writes a line per
state change to its notify FIFO (`INSTANCE "<name>" MASTER|BACKUP|FAULT|STOP <prio>`):
the FIFO is opened read-write so it never reads EOF between keepalived runs, and the
current state of each instance is `states`.
"""

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from openelb.announce.vip import errors, leftovers
from openelb.api import addresses

__all__ = ["Keepalived", "parse_notify"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# What an instance can be in, as keepalived's notify FIFO names it; STOP and DELETED
# mean it is gone (keepalived stopped, or a reload removed it).
_STATES = frozenset({"MASTER", "BACKUP", "FAULT", "STOP", "DELETED"})
STOP_GRACE = 3.0  # seconds keepalived gets to resign (priority 0) before SIGKILL


def parse_notify(line: str) -> tuple[str, str] | None:
    """(instance, state) from one notify FIFO line, `INSTANCE "<name>" <STATE> <prio>`;
    None for anything else. Only the states an instance is in count: keepalived also
    reports events on this channel, such as MASTER_RX_LOWER_PRI (a master heard a
    lower-priority advert and stays master), which must not be taken for a state."""
    parts = line.split()
    if len(parts) < 3 or parts[0] != "INSTANCE" or parts[2] not in _STATES:
        return None
    return parts[1].strip('"'), parts[2]


def _die_with_parent() -> None:
    """In the forked child: SIGTERM keepalived when the speaker dies, however it dies.

    SIGTERM, not SIGKILL: keepalived then sends priority 0 for its masterships and
    removes their addresses, so the backups take over at once instead of after the
    master-down interval, and no address stays on a node that no longer runs a speaker.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Keepalived:
    def __init__(self, workdir: Path, *, binary: str = "keepalived",
                 on_state: Callable[[str, str], None],
                 on_exit: Callable[[int | None], None]) -> None:
        self.workdir = workdir
        self.config_path = workdir / "keepalived.conf"
        self.fifo_path = workdir / "notify.fifo"
        self._binary = binary
        self._on_state = on_state
        self._on_exit = on_exit
        self._text: str | None = None
        self._held: tuple[tuple[addresses.IPAddress, str], ...] = ()  # (VIP, interface)
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._fifo_fd: int | None = None
        self._wanted = False
        self.states: dict[str, str] = {}  # instance name -> MASTER, BACKUP, FAULT
        self.restarts = 0

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    def _path(self) -> str:
        path = shutil.which(self._binary)
        if path is None:
            raise errors.KeepalivedMissing(self._binary)
        return path

    async def check(self, text: str) -> None:
        """ConfigRejected unless `keepalived --config-test` accepts `text`."""
        candidate = self.workdir / "keepalived.conf.new"
        candidate.write_text(text)
        proc = await asyncio.create_subprocess_exec(
            self._path(), "--config-test", "-f", str(candidate),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await proc.communicate()
        if proc.returncode != 0:
            raise errors.ConfigRejected(output.decode(errors="replace"))

    async def set(self, text: str | None,
                  held: Iterable[tuple[addresses.IPAddress, str]] = ()) -> None:
        """Run keepalived with configuration `text`; None stops it. `held` are the
        (VIP, interface) pairs the configuration may put on this node: removed by us if
        keepalived dies without removing them itself."""
        if text is None:
            await self.stop()
            return
        self._held = tuple(sorted(set(held)))
        if text == self._text and self._wanted:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self.check(text)
        (self.workdir / "keepalived.conf.new").replace(self.config_path)
        self._text = text
        if not self._wanted:
            self._wanted = True
            self._open_fifo()
            self._supervisor = asyncio.create_task(self._supervise(),
                                                   name="keepalived-supervisor")
        elif self.running and self._process is not None:
            self._process.send_signal(signal.SIGHUP)
            log.info("keepalived reloaded", extra={"op": "vip", "pid": self._process.pid})

    def forget(self, names: Iterable[str]) -> None:
        """Drop the states of instances no longer configured (a reload reports a
        removed instance as FAULT, and then nothing more about it)."""
        for name in self.states.keys() - frozenset(names):
            del self.states[name]

    def _open_fifo(self) -> None:
        if self._fifo_fd is not None:
            return
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISFIFO(self.fifo_path.stat().st_mode):
                self.fifo_path.unlink()
        if not self.fifo_path.exists():
            os.mkfifo(self.fifo_path, 0o600)
        # Read-write: this process holds a writer too, so reads never see EOF while
        # keepalived restarts, and opening never blocks.
        self._fifo_fd = os.open(self.fifo_path, os.O_RDWR | os.O_NONBLOCK)
        self._reader = asyncio.create_task(self._read_fifo(self._fifo_fd),
                                           name="keepalived-notify")

    async def _read_fifo(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0,
                                                                    closefd=False))
        try:
            while line := await reader.readline():
                self._note(line.decode(errors="replace"))
        finally:
            transport.close()

    def _note(self, line: str) -> None:
        parsed = parse_notify(line)
        if parsed is None:
            log.debug("keepalived notify line ignored", extra={"op": "vip",
                                                              "line": line.rstrip()})
            return
        self._set_state(*parsed)

    def _set_state(self, name: str, state: str) -> None:
        """Record and report one instance's state; STOP and DELETED mean it is gone."""
        if state in ("STOP", "DELETED"):
            self.states.pop(name, None)
        elif self.states.get(name) != state:
            self.states[name] = state
        else:
            return
        log.info("vrrp state", extra={"op": "vip", "instance": name, "state": state})
        self._on_state(name, state)

    async def _supervise(self) -> None:
        backoff = 1.0
        loop = asyncio.get_running_loop()
        while self._wanted:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv(), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "TMPDIR": str(self.workdir)}, start_new_session=True,
                preexec_fn=_die_with_parent)
            started = loop.time()
            log.info("keepalived started", extra={"op": "vip", "pid": self._process.pid})
            assert self._process.stdout is not None
            await self._relay(self._process.stdout)
            code = await self._process.wait()
            if not self._wanted:
                return
            self.restarts += 1
            for name in list(self.states):  # its masterships went with it
                self._set_state(name, "STOP")
            log.error("keepalived exited, restarting", extra={
                "op": "vip", "error": f"exit code {code}", "after": backoff})
            self._on_exit(code)
            await self._remove_leftovers()
            if loop.time() - started > 60:
                backoff = 1.0
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    def argv(self) -> list[str]:
        """keepalived in the foreground, VRRP only (no checker: IPVS is never touched),
        logging to our pipe (-G: not to syslog, which falls back to /dev/console
        without /dev/log), no BFD process (-B: else it checks /run/bfd.pid, shared by
        every keepalived on the host), pid files in our workdir."""
        return [self._path(), "--dont-fork", "--log-console", "--vrrp", "-G", "-B",
                "-f", str(self.config_path),
                "-p", str(self.workdir / "keepalived.pid"),
                "-r", str(self.workdir / "vrrp.pid")]

    async def _remove_leftovers(self) -> None:
        """A keepalived killed outright leaves its VIPs configured (only a clean stop
        removes them): remove them so this node does not answer next to the backup."""
        if not self._held:
            return
        try:
            await leftovers.remove(self._held)
        except OSError as exc:
            log.error("leftover vips not removed", extra={"op": "vip", "error": str(exc)})

    async def _relay(self, output: asyncio.StreamReader) -> None:
        """keepalived's own lines go to our log at debug level (it logs to console)."""
        while line := await output.readline():
            log.debug("keepalived", extra={"op": "vip",
                                          "line": line.decode(errors="replace").rstrip()})

    async def stop(self) -> None:
        """SIGTERM (keepalived resigns with priority 0 and removes its addresses), then
        SIGKILL after STOP_GRACE."""
        self._wanted = False
        self._text = None
        process, supervisor = self._process, self._supervisor
        self._supervisor = None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(STOP_GRACE):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
                await self._remove_leftovers()
            log.info("keepalived stopped", extra={"op": "vip", "pid": process.pid})
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        for name in list(self.states):
            self._set_state(name, "STOP")

    async def aclose(self) -> None:
        await self.stop()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self._fifo_fd is not None:
            os.close(self._fifo_fd)
            self._fifo_fd = None
