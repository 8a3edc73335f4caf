"""The test control plane itself: credentials, restarts, and leaving nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from openelb_testenv import clients, controlplane

pytestmark = pytest.mark.controlplane

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _wait_until_gone(pids: list[int], within: float = 30.0) -> None:
    # A pidfd turns readable when its process exits, whoever its parent is.
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(within):
        for pid in pids:
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            try:
                gone = loop.create_future()
                loop.add_reader(pidfd, gone.set_result, None)
                try:
                    await gone
                finally:
                    loop.remove_reader(pidfd)
            finally:
                os.close(pidfd)


async def test_admin_authenticates_in_system_masters(admin: k8s.ApiClient) -> None:
    review = await k8s.AuthenticationV1Api(admin).create_self_subject_review({})
    assert "system:masters" in review.status.user_info.groups


async def test_token_request_authenticates_as_the_service_account(
    admin: k8s.ApiClient, namespace: str, sa_client: Any
) -> None:
    await k8s.CoreV1Api(admin).create_namespaced_service_account(
        namespace, {"metadata": {"name": "robot"}}
    )
    robot = await sa_client(namespace, "robot")
    review = await k8s.AuthenticationV1Api(robot).create_self_subject_review({})
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:robot"


async def test_service_account_has_no_rights_rbac_did_not_grant(
    admin: k8s.ApiClient, namespace: str, sa_client: Any
) -> None:
    await k8s.CoreV1Api(admin).create_namespaced_service_account(
        namespace, {"metadata": {"name": "robot"}}
    )
    robot = await sa_client(namespace, "robot")
    with pytest.raises(k8s.ApiException) as refused:
        await k8s.CoreV1Api(robot).list_namespaced_config_map(namespace)
    assert refused.value.status == 403


async def test_requests_without_credentials_are_refused(
    control_plane: controlplane.ControlPlane,
) -> None:
    configuration = k8s.Configuration(
        host=control_plane.server, ssl_ca_cert=str(control_plane.ca_file)
    )
    async with k8s.ApiClient(configuration) as anonymous:
        with pytest.raises(k8s.ApiException) as refused:
            await k8s.CoreV1Api(anonymous).list_namespace()
    assert refused.value.status in (401, 403)


async def test_restart_apiserver_keeps_stored_objects(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    async with clients.admin_client(control_plane) as api:
        created = await k8s.CoreV1Api(api).create_namespaced_config_map(
            namespace, {"metadata": {"name": "survivor"}, "data": {"k": "v"}}
        )
    old_pid = control_plane.pids()["kube-apiserver"]

    await control_plane.restart_apiserver()

    assert control_plane.pids()["kube-apiserver"] != old_pid
    assert not _alive(old_pid)
    async with clients.admin_client(control_plane) as api:
        read = await k8s.CoreV1Api(api).read_namespaced_config_map("survivor", namespace)
    assert read.data == {"k": "v"}
    assert read.metadata.resource_version == created.metadata.resource_version


def test_kubeconfig_names_the_server_and_admin_credentials(
    control_plane: controlplane.ControlPlane,
) -> None:
    config = json.loads(control_plane.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == control_plane.server
    user = config["users"][0]["user"]
    assert Path(user["client-certificate"]).is_file()
    assert Path(user["client-key"]).is_file()


async def test_stop_leaves_no_process_and_no_directory(
    controlplane_binaries: controlplane.Binaries, tmp_path: Path
) -> None:
    settings = controlplane.Settings(temp_root=tmp_path)
    async with controlplane.ControlPlane(controlplane_binaries, settings) as cp:
        pids = list(cp.pids().values())
        workdir = cp.workdir
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)
    assert not any(_alive(pid) for pid in pids)
    assert not await asyncio.to_thread(workdir.exists)
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from openelb_testenv import controlplane

    async def main():
        binaries = controlplane.Binaries.locate(Path(sys.argv[1]))
        settings = controlplane.Settings(temp_root=Path(sys.argv[2]))
        cp = controlplane.ControlPlane(binaries, settings)
        await cp.start()
        print(json.dumps({"pids": list(cp.pids().values()), "workdir": str(cp.workdir)}),
              flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_killed_owner_takes_its_servers_along(
    controlplane_binaries: controlplane.Binaries, tmp_path: Path
) -> None:
    """A test run killed with SIGKILL leaves no server; the next start removes its work dir."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, str(REPO), str(tmp_path), stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        async with asyncio.timeout(120):
            line = await child.stdout.readline()
        started = json.loads(line)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()

    await _wait_until_gone(started["pids"])
    stale = Path(started["workdir"])
    assert await asyncio.to_thread(stale.exists)  # SIGKILL left its owner no time to clean up

    settings = controlplane.Settings(temp_root=tmp_path)
    async with controlplane.ControlPlane(controlplane_binaries, settings):
        assert not await asyncio.to_thread(stale.exists)


def test_missing_binaries_fail_naming_the_build_script(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("OPENELB_CONTROLPLANE_BIN", raising=False)
    with pytest.raises(controlplane.BinariesMissing) as missing:
        controlplane.Binaries.locate(REPO)
    assert "run " in str(missing.value)
    assert str(missing.value).endswith("hack/build-control-plane.sh")


def test_build_script_and_python_agree_on_the_cache_entry(
    controlplane_binaries: controlplane.Binaries,
) -> None:
    """The build script reuses the entry the fixtures found (and builds nothing)."""
    result = subprocess.run(
        [str(REPO / controlplane.BUILD_SCRIPT), "--print-dir"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert Path(result.stdout.strip()) == controlplane_binaries.etcd.parent
    assert "cache hit" in result.stderr


async def test_cli_runs_until_sigterm_then_cleans_up(tmp_path: Path) -> None:
    """`python -m openelb_testenv.controlplane` serves until SIGTERM, then leaves nothing."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "openelb_testenv.controlplane",
        stdout=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None
    try:
        kubeconfig = None
        async with asyncio.timeout(120):
            while kubeconfig is None:
                line = (await child.stdout.readline()).decode()
                assert line, "the control plane exited before it was ready"
                if line.startswith("export KUBECONFIG="):
                    kubeconfig = Path(line.split("=", 1)[1].strip())
        assert await asyncio.to_thread(kubeconfig.is_file)
        child.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await child.wait() == 0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []
