"""openelb's daemons run from its built image with podman, as a kubelet would run them.

Test environment (issue #16). `build()` makes the image with hack/build-image.sh (no
registry: a Debian base from mmdebstrap, wheels built outside); `Container` is the
argv of `podman run` for one daemon with what deploy/components gives its pod:

- the controller: user 65534, every capability dropped, no new privileges, read-only
  root filesystem with a small /tmp, on the machine's own network namespace, where it
  only talks to the test apiserver on loopback;
- a speaker: root with only NET_ADMIN, NET_RAW and NET_BIND_SERVICE, no new
  privileges, read-only root filesystem with /run/openelb writable, in its lab node's
  network namespace (the pod's hostNetwork).

Files the daemon reads (kubeconfig, CA) are bind-mounted read-only at their own paths.
`podman run` forwards SIGTERM to the daemon (its sig-proxy), so stopping the process
stops the daemon the way a kubelet does; `remove()` cleans up after a SIGKILL.
podman runs with runc and explicit ulimits for the reasons hack/build-image.sh gives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import resource
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Container", "build", "podman", "readable_copy", "remove", "ulimits"]

REPO = Path(__file__).resolve().parents[3]
# The controller's user in deploy/components/10-controller.yaml.
CONTROLLER_USER = 65534
SPEAKER_CAPS = ("NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE")


def podman() -> list[str]:
    """podman with runc (crun refuses this machine's cgroup layout)."""
    return ["podman", "--runtime", "runc"]


def ulimits() -> list[str]:
    """This process's own nofile hard limit (runc may not raise it) and 4096 processes."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]


def build(tag: str = "localhost/openelb/openelb:test") -> str:
    """Build (or rebuild; the base is cached) the image from this checkout; its tag."""
    done = subprocess.run(["bash", str(REPO / "hack" / "build-image.sh"), tag],
                          cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"hack/build-image.sh failed ({done.returncode}):\n"
                           f"{done.stderr[-4000:]}")
    return done.stdout.strip().splitlines()[-1]


@dataclasses.dataclass(frozen=True, slots=True)
class Container:
    """One daemon of the image, run the way its manifest runs it."""

    image: str
    name: str  # the container's name: oelb-<run id>-<daemon>, removed by remove()
    readable: Sequence[Path] = ()  # files bind-mounted read-only at their own paths

    def controller(self, args: Sequence[str]) -> list[str]:
        return [*self._run(), "--network", "host", "--user", str(CONTROLLER_USER),
                "--cap-drop", "all", "--tmpfs", "/tmp:size=1m",
                self.image, "controller", *args]

    def speaker(self, netns: str, workdir: str, args: Sequence[str]) -> list[str]:
        caps = [a for cap in SPEAKER_CAPS for a in ("--cap-add", cap)]
        return [*self._run(), "--network", f"ns:/run/netns/{netns}", "--user", "0",
                "--cap-drop", "all", *caps, "--tmpfs", workdir,
                self.image, "speaker", "--workdir", workdir, *args]

    def _run(self) -> list[str]:
        mounts = [a for path in self.readable for a in ("--volume", f"{path}:{path}:ro")]
        return [*podman(), "run", "--rm", "--name", self.name, "--replace",
                "--read-only", "--security-opt", "no-new-privileges", *ulimits(),
                "--log-driver", "none", *mounts]


def readable_copy(source: Path, destination: Path, uid: int) -> Path:
    """A copy of a secret file (a kubeconfig) readable only by `uid`, the user a
    container runs as."""
    destination.write_bytes(source.read_bytes())
    os.chown(destination, uid, -1)
    destination.chmod(0o400)
    return destination


async def remove(*names: str) -> None:
    """Remove these containers if they still exist (after a SIGKILL of podman run)."""
    if not names:
        return
    process = await asyncio.create_subprocess_exec(
        *podman(), "rm", "--force", "--ignore", "--time", "0", *names,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await process.wait()
