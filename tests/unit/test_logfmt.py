"""The daemons' log lines stay bounded whatever a field carries (issue #19)."""

from __future__ import annotations

import logging

from openelb import logfmt


def _line(**fields: object) -> str:
    record = logging.makeLogRecord({"msg": "service refused", "levelname": "WARNING",
                                    "name": "t", **fields})
    return logfmt.LogfmtFormatter().format(record)


def test_a_huge_field_is_cut_with_a_marker() -> None:
    line = _line(service="shop/web", error="x" * 100_000)
    assert len(line) < logfmt.MAX_VALUE + 300
    assert f"... ({100_000 - logfmt.MAX_VALUE} more characters)" in line
    assert "service=shop/web" in line


def test_ordinary_fields_are_unchanged() -> None:
    assert 'error="no free address"' in _line(error="no free address")
