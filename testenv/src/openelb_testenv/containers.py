"""openelb's daemons run from its built image with podman, as a kubelet would run their
Pods from deploy/components (issue #16, items 1 and 3).

Test environment. `build()` makes the image with hack/build-image.sh (no registry: a
Debian base from mmdebstrap, wheels built outside). `PodTemplate` reads a workload of
deploy/components and turns its one container into `podman run` arguments the way a
kubelet would: the container's command and args, its env (literal values and the
fieldRefs the manifests use), its securityContext merged over the Pod's (user,
capabilities, read-only root filesystem, no privilege escalation; RuntimeDefault
seccomp is podman's default profile), emptyDir volumes as tmpfs mounts, and the
ServiceAccount's token, CA and namespace mounted where in-cluster configuration reads
them, with KUBERNETES_SERVICE_HOST/PORT set. Anything in a manifest this stand-in does
not know how to run is an error, never silently dropped.

The network is the one difference: there is no CNI here, so a Pod without hostNetwork
joins a lab namespace too (`network_namespace`), where the apiserver is relayed.
`podman run` forwards SIGTERM to the daemon (its sig-proxy), so stopping that process
stops the daemon the way a kubelet does; a SIGKILL is `kill()`, and `remove()` cleans
up. podman runs with runc and explicit ulimits for the reasons hack/build-image.sh gives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["PodTemplate", "build", "kill", "podman", "remove", "ulimits",
           "write_service_account"]

REPO = Path(__file__).resolve().parents[3]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_WORKLOADS = ("Deployment", "DaemonSet")


class UnsupportedManifest(ValueError):
    """A manifest asks for something this kubelet stand-in does not run."""


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


def write_service_account(directory: Path, token: str, ca_file: Path, namespace: str) -> Path:
    """The files a kubelet projects for a Pod's ServiceAccount, readable by any user
    (its default mode, 0644), in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    for name, text in (("token", token), ("ca.crt", ca_file.read_text()),
                       ("namespace", namespace)):
        (directory / name).write_text(text)
        (directory / name).chmod(0o644)
    return directory


@dataclasses.dataclass(frozen=True, slots=True)
class PodTemplate:
    """The Pod template of one workload in a deploy/components file."""

    workload: str  # Kind/name
    pod: Mapping[str, Any]  # the template's spec

    @classmethod
    def load(cls, path: Path) -> PodTemplate:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in _WORKLOADS:
                workload = f"{doc['kind']}/{doc['metadata']['name']}"
                return cls(workload, doc["spec"]["template"]["spec"])
        raise UnsupportedManifest(f"{path}: no Deployment or DaemonSet")

    @property
    def container(self) -> Mapping[str, Any]:
        (only,) = self.pod["containers"]
        return dict(only)

    @property
    def host_network(self) -> bool:
        return bool(self.pod.get("hostNetwork"))

    @property
    def user(self) -> int:
        merged = {**self.pod.get("securityContext", {}),
                  **self.container.get("securityContext", {})}
        user = int(merged.get("runAsUser", 0))
        if merged.get("runAsNonRoot") and user == 0:
            raise UnsupportedManifest(f"{self.workload}: runAsNonRoot without runAsUser")
        return user

    def arg(self, flag: str) -> str | None:
        """The value of `--flag=value` in the container's args, if present."""
        for arg in self.container.get("args", []):
            name, _, value = str(arg).partition("=")
            if name == flag:
                return value
        return None

    def run_argv(self, *, image: str, name: str, network_namespace: str,
                 fields: Mapping[str, str], apiserver_port: int,
                 service_account: Path) -> list[str]:
        """`podman run` for this Pod's container in `network_namespace` (an `oelb-` lab
        namespace: the node's for hostNetwork, a stand-in for the Pod network otherwise);
        `fields`: the values of the fieldRefs its env uses (e.g. spec.nodeName)."""
        container = self.container
        argv = [*podman(), "run", "--rm", "--replace", "--name", name, *ulimits(),
                "--log-driver", "none", "--network", f"ns:/run/netns/{network_namespace}",
                "--user", str(self.user), *self._security(container),
                *self._volumes(container),
                "--volume", f"{service_account}:{SERVICE_ACCOUNT_DIR}:ro",
                "--env", "KUBERNETES_SERVICE_HOST=127.0.0.1",
                "--env", f"KUBERNETES_SERVICE_PORT={apiserver_port}",
                *self._env(container, fields)]
        command = container.get("command")
        if command:
            argv += ["--entrypoint", command[0]]
        return [*argv, image, *(command or [])[1:], *map(str, container.get("args", []))]

    def _security(self, container: Mapping[str, Any]) -> list[str]:
        context = container.get("securityContext", {})
        if context.get("privileged"):
            raise UnsupportedManifest(f"{self.workload}: privileged containers")
        seccomp = {**self.pod.get("securityContext", {}), **context}.get("seccompProfile")
        if seccomp and seccomp.get("type") != "RuntimeDefault":
            raise UnsupportedManifest(f"{self.workload}: seccomp {seccomp}")
        argv = []
        if context.get("readOnlyRootFilesystem"):
            argv.append("--read-only")
        if context.get("allowPrivilegeEscalation") is False:
            argv += ["--security-opt", "no-new-privileges"]
        capabilities = context.get("capabilities", {})
        argv += [a for cap in capabilities.get("drop", []) for a in ("--cap-drop", cap.lower())]
        argv += [a for cap in capabilities.get("add", []) for a in ("--cap-add", cap)]
        return argv

    def _volumes(self, container: Mapping[str, Any]) -> list[str]:
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        argv = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "emptyDir" not in volume:
                raise UnsupportedManifest(f"{self.workload}: volume {volume}")
            size = (volume["emptyDir"] or {}).get("sizeLimit")
            options = f",size={size.removesuffix('i').lower()}" if size else ""
            argv += ["--tmpfs", f"{mount['mountPath']}:rw{options}"]
        return argv

    def _env(self, container: Mapping[str, Any], fields: Mapping[str, str]) -> list[str]:
        argv = []
        for var in container.get("env", []):
            if "value" in var:
                value = str(var["value"])
            else:
                path = var["valueFrom"]["fieldRef"]["fieldPath"]
                if path not in fields:
                    raise UnsupportedManifest(f"{self.workload}: env {var['name']} from {path}")
                value = fields[path]
            argv += ["--env", f"{var['name']}={value}"]
        return argv


async def _podman(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *podman(), *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await process.wait()


async def kill(name: str) -> None:
    """SIGKILL the daemon in container `name` (a kill of `podman run` would not reach it)."""
    await _podman("kill", "--signal", "KILL", name)


async def remove(*names: str) -> None:
    """Remove these containers if they still exist (after a SIGKILL of podman run)."""
    if names:
        await _podman("rm", "--force", "--ignore", "--time", "0", *names)
