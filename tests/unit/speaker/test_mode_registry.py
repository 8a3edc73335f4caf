"""The speaker's registered modes and the coverage rules name the same protocols, so a
new mode cannot be announced by the speakers while the controller calls its pools
unannounceable (or the reverse)."""

import typing

from openelb.api import eip
from openelb.ipam import coverage
from openelb.speaker import modes


def test_every_registered_mode_has_a_coverage_rule_and_the_reverse() -> None:
    names = [getattr(make, "name", None) for make in modes.REGISTRY]
    assert len(set(names)) == len(names)
    assert set(names) == set(coverage.MODES)


def test_every_protocol_the_eip_accepts_is_a_registered_mode() -> None:
    accepted = set(typing.get_args(eip.Protocol))
    assert accepted == {getattr(make, "name", None) for make in modes.REGISTRY}
