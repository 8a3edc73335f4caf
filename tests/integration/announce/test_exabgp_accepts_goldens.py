"""The real ExaBGP accepts every golden configuration we render (STYLE §2.14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[2] / "unit" / "announce" / "golden"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.conf")), ids=lambda p: p.stem)
def test_exabgp_validates_golden_config(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exabgp", "validate", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_exabgp_rejects_a_broken_config(tmp_path: Path) -> None:
    """Guards the test above: validate really fails on a bad file."""
    bad = tmp_path / "bad.conf"
    bad.write_text("neighbor 192.0.2.1 { peer-as not-a-number; }\n")
    result = subprocess.run([sys.executable, "-m", "exabgp", "validate", str(bad)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
