"""ExaBGP configuration rendered from peers matches the reviewed golden files."""

from __future__ import annotations

from pathlib import Path

import pytest

from openelb.announce.bgp import config
from tests.unit.announce import goldens

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("case", sorted(goldens.CASES), ids=sorted(goldens.CASES))
def test_rendered_config_matches_golden(case: str, update_golden: bool) -> None:
    speaker, peers = goldens.CASES[case]
    text = config.render(speaker, peers, goldens.BRIDGE)
    path = GOLDEN / f"{case}.conf"
    if update_golden:
        path.write_text(text)
    assert path.exists(), f"run pytest --update-golden to create {path.name}"
    assert text == path.read_text()


def test_admin_down_peer_has_no_session() -> None:
    speaker, peers = goldens.CASES["admin_down_and_ipv6"]
    text = config.render(speaker, peers, goldens.BRIDGE)
    assert "neighbor 192.0.2.2" not in text
    assert "neighbor 2001:db8:1::1" in text
