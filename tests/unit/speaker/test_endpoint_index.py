"""The speaker's endpoint index, kept as EndpointSlices change, always equals the set
computed from every slice at once (what each round used to recompute)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from openelb.api import nodes
from openelb.kube import informer, resources
from openelb.speaker import snapshots

SLICES = [f"shop/web-{i}" for i in range(4)]
SERVICES = ["web", "db"]
NODES = ["node-a", "node-b", "node-c"]

SLICE = st.fixed_dictionaries({
    "service": st.sampled_from([*SERVICES, None]),
    "endpoints": st.lists(st.tuples(st.sampled_from(NODES), st.sampled_from([True, False, None])),
                          max_size=4),
})
STEP = st.tuples(st.sampled_from(SLICES), st.one_of(st.none(), SLICE))  # None: deleted


def _raw(key: str, spec: dict[str, Any]) -> dict[str, Any]:
    namespace, name = key.split("/")
    labels = {nodes.SERVICE_NAME_LABEL: spec["service"]} if spec["service"] else {}
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels},
            "endpoints": [{"nodeName": node, "conditions": {"ready": ready}}
                          for node, ready in spec["endpoints"]]}


@settings(max_examples=200, deadline=None)
@given(st.lists(STEP, max_size=25))
def test_the_index_equals_a_full_recount_after_any_changes(steps: list) -> None:
    cache = informer.Informer(None, resources.ENDPOINTSLICES)  # type: ignore[arg-type]
    index = snapshots.EndpointIndex(cache)
    for key, spec in steps:
        if spec is None:
            cache._cache.pop(key, None)
        else:
            cache._cache[key] = _raw(key, spec)
        index.changed(key)
        expected = {k: v for k, v in nodes.ready_endpoint_nodes(cache.items()).items() if v}
        assert {k: v for k, v in index.snapshot().items() if v} == expected
