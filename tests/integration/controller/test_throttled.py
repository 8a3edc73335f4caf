"""The controller rides out a 429 storm from the apiserver itself (issue #13, item 5).

The apiserver's own API Priority and Fairness does the refusing: a FlowSchema sends
every request of the controller's ServiceAccount to a priority level with no nominal
seats (APF still dispatches one request at a time) that rejects what it cannot seat,
with HTTP 429 and Retry-After, as an overloaded apiserver answers. 100 Services created
at once meet the controller's 32 workers there: most of their writes are refused. The
controller keeps running and leading, /healthz stays ok, the 429s are counted in
openelb_kube_client_requests_total, and every Service gets an address, each its own,
with no intervention.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator

import pytest

from openelb.kube import client, resources
from openelb.kube import errors as kube_errors
from tests.integration.controller import harness
from tests.integration.controller.conftest import (
    CONTROLLER_NAMESPACE,
    CONTROLLER_SA,
    Controllers,
)

pytestmark = pytest.mark.controlplane

PATIENT_LEASE = ("--lease-duration", "120", "--renew-deadline", "90", "--retry-period", "1")
PRIORITY_LEVELS = resources.Resource("flowcontrol.apiserver.k8s.io", "v1",
                                     "prioritylevelconfigurations",
                                     "PriorityLevelConfiguration", False)
FLOW_SCHEMAS = resources.Resource("flowcontrol.apiserver.k8s.io", "v1", "flowschemas",
                                  "FlowSchema", False)
_429 = re.compile(r'^openelb_kube_client_requests_total\{code="429",method="(\w+)"\} (\S+)$',
                  re.MULTILINE)


@contextlib.asynccontextmanager
async def refusing_the_controller(kube: client.Kube) -> AsyncIterator[None]:
    """APF rejects every request of the controller's ServiceAccount while inside."""
    name = f"openelb-test-storm-{uuid.uuid4().hex[:6]}"
    await kube.create(PRIORITY_LEVELS, {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
        "metadata": {"name": name},
        "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": 0, "lendablePercent": 0,
            "borrowingLimitPercent": 0, "limitResponse": {"type": "Reject"}}}})
    await kube.create(FLOW_SCHEMAS, {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "priorityLevelConfiguration": {"name": name},
            "matchingPrecedence": 100,  # before every default schema but exempt's
            "rules": [{
                "subjects": [{"kind": "ServiceAccount", "serviceAccount": {
                    "name": CONTROLLER_SA, "namespace": CONTROLLER_NAMESPACE}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                   "clusterScope": True, "namespaces": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            }]}})
    try:
        yield
    finally:
        for kind in (FLOW_SCHEMAS, PRIORITY_LEVELS):
            with contextlib.suppress(kube_errors.NotFound):
                await kube.delete(kind, name)


async def _refused(ctl: harness.Controller) -> float:
    status, text = await ctl.get("/metrics")
    assert status == 200, text
    return sum(float(count) for _, count in _429.findall(text))


async def test_a_429_storm_is_ridden_out(cluster: harness.Cluster, controllers: Controllers,
                                         admin_kube: client.Kube) -> None:
    await cluster.create_eip("main", "192.0.2.0/25", default=True)
    ctl = await controllers.start("a", *PATIENT_LEASE)
    await cluster.create_service("before")
    await cluster.wait_ip("before")
    assert await _refused(ctl) == 0

    async with refusing_the_controller(admin_kube):
        await cluster.create_services([f"storm-{i}" for i in range(100)])

        async def refused_many() -> float:
            count = await _refused(ctl)
            assert count >= 20, count
            return count

        refused = await harness.eventually(refused_many, timeout=60,
                                           what="the controller meets 429s")
        status, text = await ctl.get("/healthz")
        assert status == 200, text
        assert ctl.running

    assigned = await cluster.wait_all_assigned(101)
    flat = [ip for ips in assigned.values() for ip in ips]
    assert len(flat) == len(set(flat)) == 101
    assert ctl.running
    assert await ctl.is_leading()
    deferred = ctl.component.log_text().count('msg="service write deferred"')
    assert deferred >= 1
    print(f"requests refused with 429: {refused:.0f}; service writes deferred: {deferred}")
