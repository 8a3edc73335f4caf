"""Every long-running task of a daemon, owned and watched (controller-runtime's manager idea).

Both daemons start their caches, loops and servers through a `Supervisor` instead of
bare `asyncio.create_task`, so nothing ends unnoticed (issue #13: an exception in a
watch callback used to end a cache silently while /readyz kept answering 200). A task
that ends, by an exception or by returning, is either restarted with exponential
backoff and jitter (`Exit.RESTART`) or takes the process down (`Exit.FATAL`): the
daemon's run loop waits on `fatal` and exits non-zero, so the kubelet restarts it. Each
unexpected end is logged with its traceback and counted in
`openelb_task_restarts_total{task}`.

It also measures event-loop lag: a probe task asks to wake every `lag_interval` and
records how late it woke (`openelb_event_loop_lag_seconds`). A loop held by blocking
work is the one thing the probes cannot see for themselves, since they are answered
by that same loop once it is free again.

`health()` says whether a restart would help (a task crash-looping, a fatal end) and
`lag_problem()` whether the loop has stalled lately; health.py serves both.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Exit", "Supervisor"]

log = logging.getLogger(__name__)

Factory = Callable[[], Coroutine[Any, Any, None]]


class Exit(enum.StrEnum):
    """What happens when a task ends by itself."""

    RESTART = "restart"  # again, after a backoff
    FATAL = "fatal"  # the process exits (the kubelet restarts it)


@dataclass(slots=True)
class _Child:
    name: str
    factory: Factory
    on_exit: Exit
    task: asyncio.Task[None] | None = None
    ends: deque[float] = field(default_factory=lambda: deque(maxlen=16))
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    backoff_base: float = 0.5  # first restart delay, doubles per end in a row
    backoff_cap: float = 30.0
    crash_loop_ends: int = 3  # this many ends within crash_loop_window: unhealthy
    crash_loop_window: float = 120.0
    lag_interval: float = 0.25
    lag_window: float = 30.0  # lag_problem() looks back this far
    lag_limit: float = 1.0  # a stall longer than this is reported


class Supervisor:
    def __init__(self, registry: CollectorRegistry,
                 settings: SupervisorSettings | None = None) -> None:
        self.settings = settings or SupervisorSettings()
        self._children: dict[str, _Child] = {}
        self.fatal = asyncio.Event()
        self.fatal_reason = ""
        self._lags: deque[tuple[float, float]] = deque(maxlen=512)  # (when, lag)
        self._restarts = Counter(
            "openelb_task_restarts", "Unexpected ends of a supervised task, by task",
            ["task"], registry=registry)
        self._lag = Gauge("openelb_event_loop_lag_seconds",
                          "How late the event loop last woke a timer", registry=registry)
        self._lag_histogram = Histogram(
            "openelb_event_loop_lag_distribution_seconds",
            "How late the event loop woke a timer", registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        self._lag_task: asyncio.Task[None] | None = None

    # ---- tasks ---------------------------------------------------------------------------

    def start(self, name: str, factory: Factory, *, on_exit: Exit = Exit.RESTART) -> None:
        """Run `factory()` as a task named `name`, watched from now on."""
        child = _Child(name, factory, on_exit)
        self._children[name] = child
        child.task = asyncio.create_task(self._keep(child), name=name)
        if self._lag_task is None:
            self._lag_task = asyncio.create_task(self._measure_lag(), name="loop-lag")

    async def _keep(self, child: _Child) -> None:
        in_a_row = 0
        while True:
            try:
                await child.factory()
                why = "returned"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any bug: logged with its traceback, then handled
                why = f"{type(exc).__name__}: {exc}"
                log.exception("task crashed", extra={"task": child.name, "bug": True,
                                                     "on_exit": str(child.on_exit)})
            else:
                log.error("task ended", extra={"task": child.name,
                                               "on_exit": str(child.on_exit)})
            child.ends.append(time.monotonic())
            child.last_error = why
            self._restarts.labels(child.name).inc()
            if child.on_exit is Exit.FATAL:
                self.fatal_reason = f"task {child.name} ended ({why})"
                self.fatal.set()
                return
            s = self.settings
            delay = min(s.backoff_cap, s.backoff_base * 2 ** in_a_row)
            in_a_row += 1
            await asyncio.sleep(delay * (0.5 + random.random()))

    async def aclose(self) -> None:
        """Cancel every task and wait for them."""
        tasks = [c.task for c in self._children.values() if c.task is not None]
        if self._lag_task is not None:
            tasks.append(self._lag_task)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---- event-loop lag ------------------------------------------------------------------

    async def _measure_lag(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.lag_interval
        while True:
            asked = loop.time()
            await asyncio.sleep(interval)
            lag = max(0.0, loop.time() - asked - interval)
            self._lags.append((time.monotonic(), lag))
            self._lag.set(lag)
            self._lag_histogram.observe(lag)

    def max_lag(self, window: float | None = None) -> float:
        """The longest event-loop stall seen in the last `window` seconds."""
        since = time.monotonic() - (window or self.settings.lag_window)
        return max((lag for when, lag in self._lags if when >= since), default=0.0)

    def lag_problem(self) -> str:
        """Why the loop is not keeping time lately, or ""."""
        worst = self.max_lag()
        if worst > self.settings.lag_limit:
            return (f"event loop stalled {worst:.1f} s in the last "
                    f"{self.settings.lag_window:g} s")
        return ""

    # ---- health --------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """(False, why) when a restart of the process would help: a fatal end, or a task
        that keeps ending (crash loop)."""
        if self.fatal.is_set():
            return False, self.fatal_reason
        s = self.settings
        since = time.monotonic() - s.crash_loop_window
        for child in self._children.values():
            recent = sum(1 for t in child.ends if t >= since)
            if recent >= s.crash_loop_ends:
                return False, (f"task {child.name} ended {recent} times in "
                               f"{s.crash_loop_window:g} s, last: {child.last_error}")
        return True, f"ok; event-loop lag at most {self.max_lag() * 1000:.0f} ms lately"
