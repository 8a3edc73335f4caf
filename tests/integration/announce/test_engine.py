"""The ExaBGP engine on its own: started as ExaBGP's own `exabgp server` (no import
tricks since the memory budget was re-set, issue #14), connected through its nc bridge,
answering, with its log rotated. No neighbours: no traffic."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from openelb.announce.bgp import config, engine, errors


async def test_engine_answers_and_runs_exabgp_as_shipped(tmp_path: Path) -> None:
    connects = 0

    async def on_connect() -> None:
        nonlocal connects
        connects += 1

    bgp = engine.Engine(tmp_path, on_event=lambda event: None, on_connect=on_connect)
    try:
        await bgp.start(config.render(None, [], bgp.bridge_argv))
        await bgp.wait_connected(timeout=30)
        await bgp.command("show neighbor summary")  # answered `done`, or this raises
        pid = bgp.pid
        assert pid is not None
        argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        assert argv[1:4] == ["-m", "exabgp", "server"]
        for _ in range(50):
            if connects:
                break
            await asyncio.sleep(0.1)
        assert connects == 1
    finally:
        await bgp.stop()


async def test_a_missing_bridge_program_is_a_clear_engine_error(tmp_path: Path) -> None:
    async def on_connect() -> None:
        pass

    bgp = engine.Engine(tmp_path, on_event=lambda event: None, on_connect=on_connect)
    bgp.bridge_argv[0] = str(tmp_path / "no-such-nc")
    with pytest.raises(errors.BgpEngineError, match=r"nc\.openbsd not found"):
        await bgp.start(config.render(None, [], bgp.bridge_argv))
    assert bgp.pid is None  # nothing was started


async def test_exabgp_log_is_rotated_not_grown_forever(tmp_path: Path) -> None:
    """Issue #14, item 5: exabgp.log lived in the speaker's emptyDir and grew forever."""
    async def on_connect() -> None:
        pass

    bgp = engine.Engine(tmp_path, on_event=lambda event: None, on_connect=on_connect,
                        log_limit=2000)
    try:
        await bgp.start(config.render(None, [], bgp.bridge_argv))
        await bgp.wait_connected(timeout=30)
        for _ in range(40):  # each reload makes ExaBGP log a few lines
            await bgp.reload(lambda generation: config.render(None, [], bgp.bridge_argv,
                                                              generation))
        old = tmp_path / "exabgp.log.1"
        assert old.exists()
        assert bgp.log_path.stat().st_size <= 2000
        assert old.stat().st_size <= 2000
    finally:
        await bgp.stop()
