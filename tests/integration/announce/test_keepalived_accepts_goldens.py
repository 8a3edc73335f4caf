"""The real keepalived accepts every golden configuration we render (STYLE §2.14).

`keepalived --config-test` checks that the interfaces exist, so each check runs in a
private network namespace of its own (`unshare --net`, gone with the process) holding
an `eth0`; no traffic is sent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[2] / "unit" / "announce" / "vip" / "golden"

pytestmark = pytest.mark.root


def _config_test(path: Path) -> subprocess.CompletedProcess[str]:
    keepalived = shutil.which("keepalived")
    assert keepalived, "keepalived is not installed (hack/install.sh installs it)"
    script = ("ip link add eth0 type veth peer name eth1 && ip link set eth0 up && "
              f"exec {keepalived} --config-test --log-console -f {path}")
    return subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.conf")), ids=lambda p: p.stem)
def test_keepalived_validates_golden_config(path: Path) -> None:
    result = _config_test(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_keepalived_rejects_a_broken_config(tmp_path: Path) -> None:
    """Guards the test above: --config-test really fails, here on a missing interface."""
    bad = tmp_path / "bad.conf"
    bad.write_text((GOLDEN / "one_address_three_nodes.conf").read_text()
                   .replace("eth0", "nosuch0"))
    result = _config_test(bad)
    assert result.returncode != 0
    assert "nosuch0" in result.stdout + result.stderr
