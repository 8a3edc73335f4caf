"""Sharing one address, told as a story (MetalLB's rules plus OpenELB's explicit request)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from openelb.api import service
from openelb.ipam import allocator
from openelb.ipam import errors as ipam_errors
from tests.unit.factories import pool, svc


@dataclass(frozen=True)
class Step:
    desc: str
    service: service.LbService
    expect_ip: str | None = None
    expect_error: type[ipam_errors.AllocationError] | None = None
    release: str = ""


STORY = [
    Step("dns-tcp takes the first address", svc("dns-tcp", pool="lan", key="dns",
         ports=[(53, "TCP")]), expect_ip="192.0.2.1"),
    Step("dns-udp with the same key joins it", svc("dns-udp", pool="lan", key="dns",
         ports=[(53, "UDP")]), expect_ip="192.0.2.1"),
    Step("dns-dot with the same key but a clashing port gets its own address",
         svc("dns-dot", pool="lan", key="dns", ports=[(53, "TCP")]), expect_ip="192.0.2.2"),
    Step("web without a key can't grab dns's address", svc("web", ip="192.0.2.1", ports=[80]),
         expect_error=ipam_errors.AddressTaken),
    Step("web with another key is refused for the key", svc("web", ip="192.0.2.1",
         key="web", ports=[80]), expect_error=ipam_errors.SharingRefused),
    Step("a Local Service with other pods can't join", svc("metrics", key="dns",
         ip="192.0.2.1", ports=[9100], local=True), expect_error=ipam_errors.SharingRefused),
    Step("a Local Service selecting dns's pods... still differs from dns-udp's",
         svc("dns-metrics", key="dns", ip="192.0.2.1", ports=[9153], local=True,
             selector={"app": "dns-tcp"}), expect_error=ipam_errors.SharingRefused),
    Step("a Local Service selecting exactly dns-tcp's pods still can't join Cluster ones",
         svc("dns-local", key="dns", ip="192.0.2.1", ports=[8053], local=True,
             selector={"app": "dns-tcp"}), expect_error=ipam_errors.SharingRefused),
    Step("two Local Services selecting the same pods share an address",
         svc("mail-smtp", pool="lan", key="mail", ports=[25], local=True,
             selector={"app": "mail"}), expect_ip="192.0.2.3"),
    Step("...", svc("mail-imap", pool="lan", key="mail", ports=[143], local=True,
                    selector={"app": "mail"}), expect_ip="192.0.2.3"),
    Step("...but a Cluster one with the same pods may not join them",
         svc("mail-pop", key="mail", ip="192.0.2.3", ports=[110],
             selector={"app": "mail"}), expect_error=ipam_errors.SharingRefused),
    Step("two Services asking for one IP explicitly share it (OpenELB)",
         svc("api", ip="192.0.2.10", ports=[443]), expect_ip="192.0.2.10"),
    Step("...", svc("api-grpc", ip="192.0.2.10", ports=[8443]), expect_ip="192.0.2.10"),
    Step("...unless their ports clash", svc("api-clash", ip="192.0.2.10", ports=[443]),
         expect_error=ipam_errors.SharingRefused),
    Step("releasing dns-tcp leaves the address with dns-udp", svc("dns-tcp"),
         release="default/dns-tcp"),
    Step("a newcomer with key dns joins what dns-udp holds",
         svc("dns-tcp2", pool="lan", key="dns", ports=[(53, "TCP")]), expect_ip="192.0.2.1"),
]


@pytest.fixture(scope="module")
def alloc() -> allocator.Allocator:
    return allocator.Allocator([pool("lan", "192.0.2.0/24", default=True)])


@pytest.mark.parametrize("step", STORY, ids=[s.desc for s in STORY])
def test_sharing_story(alloc: allocator.Allocator, step: Step) -> None:
    if step.release:
        alloc.release(step.release)
        remaining = alloc.holders(next(iter(alloc.assignment("default/dns-udp").ips)))
        assert step.release not in remaining
        return
    if step.expect_error is not None:
        with pytest.raises(step.expect_error):
            alloc.assign(step.service)
        return
    got = alloc.assign(step.service)
    assert [str(ip) for ip in got.ips] == [step.expect_ip]


def test_pool_status_lists_every_holder_of_a_shared_address() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/30")])
    alloc.assign(svc("a", pool="lan", key="k", ports=[80]))
    alloc.assign(svc("b", pool="lan", key="k", ports=[443]))
    status = alloc.pool_status("lan")
    assert status.used == {"192.0.2.1": "default/a;default/b"}
    assert (status.usage, status.pool_size, status.first_ip, status.last_ip) == (
        1, 2, "192.0.2.1", "192.0.2.2",
    )
    assert status.v4
    assert status.ready
    assert not status.occupied
