"""A speaker that stops keeping time recovers on its own (issue #13, item 5).

The owner's speaker is frozen for 2 s (SIGSTOP then SIGCONT: what a VM pause, a long
GC pause or a blocked event loop look like from outside). Its heartbeats stop, so the
next node by the rule takes the address over and the LAN client follows; once it runs
again, it hears and is heard, and the address goes back to it. What happened stays
visible: the frozen speaker's /readyz names the stall and its lag histogram holds it,
while /healthz does not ask for a restart. At every settled point exactly one node owns
the address.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from openelb_testenv import netlab
from tests.e2e.conftest import ClusterFactory
from tests.e2e.layer2 import lan

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

NODES = ("node-a", "node-b", "node-c")
FROZEN_S = 2.0
REACH = ("can_reach:192.0.2.1", "can_reach:2001:db8:1::1")  # the router, from each node


async def test_a_frozen_owner_loses_the_address_and_takes_it_back(
        cluster: ClusterFactory) -> None:
    ns = lan.namespace()
    async with cluster(router=None) as c:
        vip, owner, heir = await lan.settled_owner(c, ns, interface=REACH, nodes=NODES)
        assert (await c.speaker_probe(owner, "/readyz"))[0] == "200"

        speaker = c.speakers[owner]
        frozen_at = time.monotonic()
        speaker.signal(signal.SIGSTOP)
        try:
            # The others see it silent and the heir answers the LAN; the freeze lasts
            # FROZEN_S in all (the takeover itself takes about the 1 s heartbeat timeout).
            await lan.wait_for_client(c, vip, heir, timeout=FROZEN_S + 10)
            await asyncio.sleep(max(0.0, frozen_at + FROZEN_S - time.monotonic()))
        finally:
            speaker.signal(signal.SIGCONT)

        # Back: the stall is visible and named, and no restart is asked for.
        async def stall_reported() -> tuple[bool, object]:
            code, body = await c.speaker_probe(owner, "/readyz")
            return code == "503" and "event loop stalled" in body, (code, body)

        await netlab.poll_until("frozen speaker reports its stall", stall_reported, 10.0)
        assert (await c.speaker_probe(owner, "/healthz"))[0] == "200"
        stalls = await c.speaker_metric(
            owner, "openelb_event_loop_lag_distribution_seconds_bucket", 'le="5.0"')
        short = await c.speaker_metric(
            owner, "openelb_event_loop_lag_distribution_seconds_bucket", 'le="1.0"')
        assert stalls - short >= 1, "a lag of more than 1 s in the histogram"

        # The owner takes its address back, and from then on it alone holds it.
        await lan.wait_for_owner(c, vip, owner)
        await lan.wait_for_client(c, vip, owner)
        await asyncio.sleep(3.0)
        assert await c.layer2_owners(vip) == {owner}
        assert (await lan.client_view(c, vip)) == (owner, owner)
