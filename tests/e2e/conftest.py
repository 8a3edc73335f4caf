"""Fixtures for the e2e level: network-namespace labs (DESIGN §5, STYLE §2.14-2.15).

A test asks for `lab` and builds as many labs as it needs with it:

    async def test_x(lab, router_flavour):
        async with lab(router=router_flavour) as net:
            ...

`lab(**fields)` takes LabSettings fields (or `settings=`) and returns an unstarted
netlab.Lab, itself the async context manager; whatever a test leaves open is closed
when the test ends. `router_flavour` runs a test once per router flavour (ids bird,
frr, gobgp); `@router_flavours("bird")` narrows it. Every lab test carries the `root`
mark; without root they skip and say why, and a missing Debian package fails the test
naming the package (never a silent skip). An autouse check fails a test that leaves a
namespace of its own labs behind, and stale `oelb-` namespaces of crashed runs are
removed when the session starts. Set OPENELB_LAB_KEEP=1 to keep each lab's work dir
(configs, daemon logs, captures) for debugging; its path is printed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

import pluggy
import pytest

from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import controlplane, netlab

FLAVOURS = ("bird", "frr", "gobgp")

LabFactory = Callable[..., netlab.Lab]
_LABS = pytest.StashKey[list[netlab.Lab]]()


def router_flavours(*flavours: str) -> pytest.MarkDecorator:
    """Parametrize `router_flavour` over `flavours` (default: all three)."""
    chosen = flavours or FLAVOURS
    return pytest.mark.parametrize("router_flavour", chosen, ids=chosen)


@pytest.fixture(params=FLAVOURS, ids=FLAVOURS)
def router_flavour(request: pytest.FixtureRequest) -> str:
    """The router daemon of the lab: each test using this runs once per flavour."""
    return str(request.param)


@pytest.fixture(scope="session", autouse=True)
def _remove_stale_namespaces() -> None:
    """Remove `oelb-` namespaces of earlier runs that were killed (only ours, only stale)."""
    if os.geteuid() != 0:
        return
    removed = netlab.remove_stale_namespaces()
    if removed:
        print(f"removed stale lab namespaces: {' '.join(removed)}", file=sys.stderr)


@pytest.fixture(autouse=True)
def _no_lab_namespace_left() -> Iterator[None]:
    """Fail a test that leaves a namespace of one of its own labs behind (and remove it)."""
    if os.geteuid() != 0:
        yield
        return
    before = set(netlab.namespaces_of_process())
    yield
    left = sorted(set(netlab.namespaces_of_process()) - before)
    if left:
        netlab.remove_stale_namespaces()
        for netns in left:
            netlab.delete_namespace(netns)
        pytest.fail(f"the test left lab namespaces behind: {' '.join(left)}", pytrace=False)


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces (run as root; CI does)")


@pytest.fixture
async def lab(request: pytest.FixtureRequest) -> AsyncIterator[LabFactory]:
    """A factory of labs: `lab(router="frr", nodes=3)` -> an unstarted netlab.Lab.

    Use the result as `async with`; any lab still open when the test ends is closed.
    Fails (never skips) when a Debian package the lab needs is missing.
    """
    _require_root()
    made: list[netlab.Lab] = []
    request.node.stash[_LABS] = made
    keep = os.environ.get("OPENELB_LAB_KEEP") == "1"

    def make(settings: netlab.LabSettings | None = None, **fields: Any) -> netlab.Lab:
        if settings is None:
            settings = netlab.LabSettings(**{"keep_workdir": keep, **fields})
        elif fields:
            settings = dataclasses.replace(settings, **fields)
        try:
            netlab.require_tools(settings.router)
        except netlab.ToolMissing as exc:
            pytest.fail(str(exc), pytrace=False)
        made.append(netlab.Lab(settings))
        return made[-1]

    try:
        yield make
    finally:
        errors = []
        for built in made:
            try:
                await built.close()
            except netlab.NetlabError as exc:
                errors.append(str(exc))
            if keep and built.run_id:
                print(f"lab {built.run_id} kept its work dir: {built.workdir}", file=sys.stderr)
        if errors:
            pytest.fail("; ".join(errors), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    """Attach the end of the labs' logs (router daemons first) to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for built in item.stash.get(_LABS, []):
            with contextlib.suppress(netlab.NetlabError):
                report.sections.append((f"lab {built.run_id} router", built.router.log_tail()))
            report.sections.append((f"lab {built.run_id} processes", built.log_tails()[-6000:]))


ClusterFactory = Callable[..., contextlib.AbstractAsyncContextManager[testenv_cluster.Cluster]]


@pytest.fixture
def cluster(lab: LabFactory, control_plane: controlplane.ControlPlane) -> ClusterFactory:
    """A factory: `async with cluster(router="bird") as c:` -> a lab plus the real control
    plane, the controller and one speaker per node (openelb_testenv.cluster.Cluster).
    Keyword arguments go to the lab, except `settings` (a ClusterSettings)."""

    @contextlib.asynccontextmanager
    async def make(settings: testenv_cluster.ClusterSettings | None = None,
                   **lab_fields: Any) -> AsyncIterator[testenv_cluster.Cluster]:
        async with lab(**lab_fields) as net:
            built = testenv_cluster.Cluster(control_plane, net, settings)
            try:
                await built.start()
                yield built
            except BaseException:
                print(built.log_tails()[-20000:], file=sys.stderr)
                raise
            finally:
                await built.aclose()

    return make
