"""Options and fixtures shared by every test level.

The session's real control plane lives here so that integration and e2e tests share one
(started only when a test asks for it). If the binaries are not built the session fails
(never skips) and says to run hack/build-control-plane.sh. Set
OPENELB_CONTROLPLANE_LOGS=<dir> to keep the servers' logs after the run.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import FrameType

import pytest

from openelb_testenv import clients, controlplane, manifests

REPO = Path(__file__).resolve().parents[1]
CRDS = REPO / "deploy" / "crds"
RBAC = REPO / "deploy" / "rbac"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite golden files from the current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session", autouse=True)
def _sigterm_raises_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt for the whole session, so fixture teardown
    still stops servers, labs and daemons when a run is terminated."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="session")
def controlplane_binaries() -> controlplane.Binaries:
    """The pinned etcd and kube-apiserver; fails the session when they are not built."""
    try:
        return controlplane.Binaries.locate(REPO)
    except controlplane.BinariesMissing as exc:
        missing = str(exc)
    pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="session")
async def control_plane(
    controlplane_binaries: controlplane.Binaries,
) -> AsyncIterator[controlplane.ControlPlane]:
    """The session's control plane, with openelb's CRDs and RBAC installed."""
    logs = os.environ.get("OPENELB_CONTROLPLANE_LOGS")
    settings = controlplane.Settings(log_dir=Path(logs) if logs else None)
    async with controlplane.ControlPlane(controlplane_binaries, settings) as cp:
        async with clients.admin_client(cp) as api:
            await manifests.install(api, CRDS, RBAC)
        yield cp
