"""Layer-2 e2e: print what the stories recorded (takeover times, ownership changes on
the wire) at the end of the run, so a plain `pytest -q` shows the figures.

The stories record them with `record_property` (also in --junitxml); nothing asserts
on time (STYLE §2.14).
"""

from __future__ import annotations

import pytest

_RECORDED: list[tuple[str, list[tuple[str, object]]]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "tests/e2e/layer2/" in report.nodeid and report.user_properties:
        _RECORDED.append((report.nodeid.rpartition("::")[2], list(report.user_properties)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _RECORDED:
        return
    terminalreporter.section("layer-2 takeovers (seconds from the fault, as the LAN client saw)")
    for test, properties in _RECORDED:
        terminalreporter.write_line(test)
        for key, value in properties:
            terminalreporter.write_line(f"    {key} = {value}")
