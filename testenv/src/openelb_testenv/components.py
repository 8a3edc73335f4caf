"""Runs openelb's own daemons as separate processes against a testenv control plane.

Test environment (DESIGN §5), used by integration/e2e tests, benchmarks and the demo.
Each component runs as `python -m openelb <command>` under its own ServiceAccount: a
kubeconfig carrying a TokenRequest token, never the admin credential. Processes get
their own process group and are killed with it; their logs go to a file for
`wait_for_log` and for the test report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from kubernetes_asyncio import client as k8s

from openelb_testenv import clients, controlplane

__all__ = ["Component", "free_port", "token_kubeconfig"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def token_kubeconfig(
    cp: controlplane.ControlPlane, admin: k8s.ApiClient, namespace: str, name: str, path: Path
) -> Path:
    """Write a kubeconfig acting as ServiceAccount `namespace/name`; returns `path`."""
    token = await clients.request_token(admin, namespace, name, expiration_seconds=86400)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "testenv",
                "cluster": {"server": cp.server, "certificate-authority": str(cp.ca_file)},
            }
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "testenv", "user": name}}],
        "current-context": name,
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


class Component:
    """One `openelb <command>` child process with its log file; `program` replaces
    `python -m openelb <argv>` with a whole argv (a daemon run from the image)."""

    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
        *, program: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(program) if program is not None else [
            sys.executable, "-m", "openelb", *argv]
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=log,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        finally:
            log.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def wait_for_log(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            if not self.running:
                raise RuntimeError(
                    f"{self.name} exited before logging {needle!r}:\n{self.log_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name} did not log {needle!r} in {timeout}s:\n{self.log_text()[-3000:]}"
                )
            await asyncio.sleep(0.1)

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            os.killpg(self.process.pid, signum)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        async with asyncio.timeout(timeout):
            return await self.process.wait()

    async def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.process is None:
            return None
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                return await self.wait(timeout)
            except TimeoutError:
                pass
        self.kill()
        return await self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
