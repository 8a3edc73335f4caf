"""keepalived.conf rendered from VRRP instances matches the reviewed golden files."""

from __future__ import annotations

from pathlib import Path

import pytest

from openelb.announce.vip import config, keepalived
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


@pytest.mark.parametrize(("line", "parsed"), [
    ('INSTANCE "oelb_192_0_2_10" MASTER 250\n', ("oelb_192_0_2_10", "MASTER")),
    ('INSTANCE "oelb_192_0_2_10" BACKUP 249\n', ("oelb_192_0_2_10", "BACKUP")),
    ('INSTANCE "oelb_2001_db8__10" FAULT 250\n', ("oelb_2001_db8__10", "FAULT")),
    ('INSTANCE "oelb_192_0_2_10" STOP 250\n', ("oelb_192_0_2_10", "STOP")),
    # Events, not states: a master that heard a lower priority is still master.
    ('INSTANCE "oelb_192_0_2_10" MASTER_RX_LOWER_PRI 250\n', None),
    ('INSTANCE "oelb_192_0_2_10" MASTER_PRIORITY 250\n', None),
    ('GROUP "g" MASTER 0\n', None),
    ("", None),
])
def test_notify_lines_are_read_as_keepalived_writes_them(
        line: str, parsed: tuple[str, str] | None) -> None:
    assert keepalived.parse_notify(line) == parsed
