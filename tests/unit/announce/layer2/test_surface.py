"""The package's public names and error tree (STYLE §2.6, §2.12)."""

from __future__ import annotations

import inspect

from openelb.announce import layer2
from openelb.announce.layer2 import errors
from openelb.api import errors as api_errors


def test_exported_members_are_exactly_the_public_api() -> None:
    assert sorted(layer2.__all__) == [
        "Claim", "Conflict", "Counters", "Drop", "Family", "InterfaceUnavailable",
        "Layer2Announcer", "Layer2Error", "Metric", "NetlinkFailed", "OnConflict", "OnCounter",
        "Reply", "decide", "resolve_interface",
    ]
    for name in layer2.__all__:
        assert hasattr(layer2, name), name


def test_errors_are_ours_and_no_library_exception_is_part_of_the_tree() -> None:
    """pyroute2's NetlinkError and OSError stop in netlink.py and announcer.py."""
    for error in (errors.Layer2Error, errors.InterfaceUnavailable, errors.NetlinkFailed):
        assert issubclass(error, api_errors.OpenELBError)
        bases = {c.__module__.split(".")[0] for c in inspect.getmro(error)}
        assert bases <= {"openelb", "builtins"}
        assert not issubclass(error, OSError)


def test_error_text_names_what_failed() -> None:
    unavailable = errors.InterfaceUnavailable({"eth9": "no such interface"})
    assert str(unavailable) == "layer2 interfaces unavailable: eth9: no such interface"
    assert unavailable.after == 1.0
    assert str(errors.NetlinkFailed("get link eth0", 1)) == "netlink get link eth0: EPERM"
