"""WorkQueue.retry: each key backs off on its own, with jitter, never under Retry-After."""

from __future__ import annotations

import asyncio

from openelb.controller import queue


def _queue(uniform: float = 0.5) -> queue.WorkQueue:
    # uniform 0.5 is the middle of the jitter: the delays are the plain doublings.
    return queue.WorkQueue(queue.Backoff(base=1.0, cap=8.0, jitter=0.2), lambda: uniform)


async def test_a_failing_key_backs_off_exponentially_up_to_the_cap() -> None:
    work = _queue()
    try:
        assert [work.retry("default/web") for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    finally:
        work.close()


async def test_keys_back_off_independently_and_forget_starts_over() -> None:
    work = _queue()
    try:
        work.retry("default/web")
        work.retry("default/web")
        assert work.retry("default/api") == 1.0
        work.forget("default/web")
        assert work.retry("default/web") == 1.0
    finally:
        work.close()


async def test_retry_after_from_the_apiserver_is_a_floor() -> None:
    work = _queue()
    try:
        assert work.retry("default/web", at_least=5.0) == 5.0
        assert work.retry("default/web", at_least=0.5) == 2.0
    finally:
        work.close()


async def test_jitter_spreads_delays_by_the_configured_fraction() -> None:
    low, high = _queue(uniform=0.0), _queue(uniform=0.999999)
    try:
        assert low.retry("k") == 0.8
        assert round(high.retry("k"), 4) == 1.2
    finally:
        low.close()
        high.close()


async def test_a_retried_key_comes_back_after_its_delay() -> None:
    work = queue.WorkQueue(queue.Backoff(base=0.01, cap=1.0, jitter=0.0))
    work.retry("default/web")
    async with asyncio.timeout(5):
        assert await work.get() == "default/web"
    work.done("default/web")
    work.close()
