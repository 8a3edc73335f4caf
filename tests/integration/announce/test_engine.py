"""The ExaBGP engine on its own: started, connected through its nc bridge, answering,
and running without OpenSSL (the memory promise of issue #5). No neighbours: no traffic."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from openelb.announce.bgp import config, engine, errors


async def test_engine_answers_and_exabgp_runs_without_tls(tmp_path: Path) -> None:
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
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libssl" not in maps
        assert "exabgp.application.main" in Path(f"/proc/{pid}/cmdline").read_text()
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
