"""supervisor.py: no task of a daemon ends unnoticed (issue #13, item 1)."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from openelb import supervisor

FAST = supervisor.SupervisorSettings(backoff_base=0.01, backoff_cap=0.02,
                                     crash_loop_ends=3, crash_loop_window=60.0,
                                     lag_interval=0.02, lag_window=5.0, lag_limit=0.3)


async def _until(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_a_crashing_task_is_restarted_and_reported_when_it_keeps_crashing(
        caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    tasks = supervisor.Supervisor(registry, FAST)
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) <= 3:
            raise ValueError(f"bad line {len(runs)}")
        await asyncio.Event().wait()  # the fourth run stays up

    tasks.start("informer-services", flaky)
    try:
        await _until(lambda: len(runs) == 4)
        assert registry.get_sample_value(
            "openelb_task_restarts_total", {"task": "informer-services"}) == 3
        ok, why = tasks.health()
        assert not ok
        assert why == ("task informer-services ended 3 times in 60 s, last: "
                       "ValueError: bad line 3")
        assert not tasks.fatal.is_set()
        assert "bad line 1" in caplog.text  # the traceback is logged, not swallowed
    finally:
        await tasks.aclose()


async def test_a_fatal_task_ending_stops_the_process() -> None:
    tasks = supervisor.Supervisor(CollectorRegistry(), FAST)

    async def loop() -> None:
        await asyncio.sleep(0.01)  # returns: a loop that must never end

    tasks.start("speaker-loop", loop, on_exit=supervisor.Exit.FATAL)
    try:
        async with asyncio.timeout(5):
            await tasks.fatal.wait()
        assert tasks.fatal_reason == "task speaker-loop ended (returned)"
        assert tasks.health() == (False, "task speaker-loop ended (returned)")
    finally:
        await tasks.aclose()


async def test_a_blocked_event_loop_is_seen() -> None:
    tasks = supervisor.Supervisor(CollectorRegistry(), FAST)
    tasks.start("idle", asyncio.Event().wait)
    try:
        await asyncio.sleep(0.1)
        assert tasks.lag_problem() == ""
        time.sleep(0.5)  # noqa: ASYNC251 - the point: block the loop as a bug would
        await asyncio.sleep(0.1)
        assert tasks.max_lag() >= 0.4
        assert tasks.lag_problem().startswith("event loop stalled 0.")
        ok, why = tasks.health()
        assert ok  # a stall is for readiness: a restart would not help
        assert "event-loop lag at most" in why
    finally:
        await tasks.aclose()


async def test_aclose_cancels_everything() -> None:
    tasks = supervisor.Supervisor(CollectorRegistry(), FAST)
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    tasks.start("forever", forever)
    await started.wait()
    await tasks.aclose()
    assert not tasks.fatal.is_set()
    assert all(t.done() for t in asyncio.all_tasks() if t.get_name() in ("forever", "loop-lag"))
