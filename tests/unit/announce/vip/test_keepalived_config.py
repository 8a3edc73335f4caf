"""keepalived.conf rendered from VRRP instances matches the reviewed golden files."""

from __future__ import annotations

from pathlib import Path

import pytest

from openelb.announce.vip import config
from tests.unit.announce.vip import goldens

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("case", sorted(goldens.CASES), ids=sorted(goldens.CASES))
def test_rendered_config_matches_golden(case: str, update_golden: bool) -> None:
    text = config.render("openelb-node-a", goldens.CASES[case], goldens.FIFO)
    path = GOLDEN / f"{case}.conf"
    if update_golden:
        path.write_text(text)
    assert path.exists(), f"run pytest --update-golden to create {path.name}"
    assert text == path.read_text()


def test_the_order_of_instances_does_not_change_the_text() -> None:
    instances = goldens.CASES["alone_and_ipv6"]
    assert (config.render("r", instances, goldens.FIFO)
            == config.render("r", instances[::-1], goldens.FIFO))


def test_no_virtual_server_so_the_ipvs_checker_has_nothing_to_do() -> None:
    for instances in goldens.CASES.values():
        text = config.render("r", instances, goldens.FIFO)
        assert "virtual_server" not in text
        assert "lvs" not in text.lower()
