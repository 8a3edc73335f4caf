"""Fixtures for the layer-2 announcer's namespace tests: a fresh Lab per test.

These tests need root (network namespaces, raw sockets) and Debian's iproute2,
iputils-arping, iputils-ping and ndisc6; they never need the control plane, so the
level-wide cleanup fixture that would start it is replaced here by a leak check.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.layer2 import lab as lab_module

TOOLS = {"ip": "iproute2", "arping": "iputils-arping", "ping": "iputils-ping",
         "ndisc6": "ndisc6"}


def _children() -> list[int]:
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def _remove_cluster_scoped_openelb_objects() -> Iterator[None]:
    """Replaces the level-wide apiserver cleanup: fails a test that leaves a lab
    namespace or a child process behind (STYLE §2.15). Children that existed before the
    test (the session's control plane, when other levels started it) are not its own."""
    before = set(_children())
    yield
    assert lab_module.leftover_namespaces() == []
    assert sorted(set(_children()) - before) == []


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[lab_module.Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and raw sockets (CI runs as root)")
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        pytest.fail(f"missing tools: apt-get install {' '.join(missing)}")
    bench = lab_module.Lab(tmp_path)
    try:
        bench.up()
        yield bench
    finally:
        bench.down()
