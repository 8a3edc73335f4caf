"""The speaker's cache trimmers keep everything its parsers read, and drop the bulk."""

from __future__ import annotations

import json
from typing import Any

from openelb.api import nodes

BIG_NODE: dict[str, Any] = {
    "metadata": {
        "name": "node-a", "uid": "u1", "resourceVersion": "42",
        "labels": {"openelb.kubesphere.io/rack": "r1",
                   "node.kubernetes.io/exclude-from-external-load-balancers": ""},
        "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
    },
    "spec": {"podCIDR": "10.0.0.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]},
    "status": {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status", "lastHeartbeatTime": "t"},
            {"type": "NetworkUnavailable", "status": "False", "reason": "RouteCreated"},
        ],
        "addresses": [{"type": "InternalIP", "address": "192.0.2.11"},
                      {"type": "InternalIP", "address": "2001:db8::11"},
                      {"type": "Hostname", "address": "node-a"}],
        "images": [{"names": [f"registry.example/image-{i}@sha256:{'0' * 64}"],
                    "sizeBytes": 1000 + i} for i in range(200)],
        "nodeInfo": {"kubeletVersion": "v1.36.3", "osImage": "Debian"},
        "capacity": {"cpu": "2", "memory": "24Gi"},
    },
}

SLICE: dict[str, Any] = {
    "metadata": {"name": "web-abc", "namespace": "demo", "resourceVersion": "7",
                 "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    "endpoints": [
        {"addresses": ["10.0.0.5"], "nodeName": "node-a", "conditions": {"ready": True},
         "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "demo"}},
        {"addresses": ["10.0.1.5"], "nodeName": "node-b", "conditions": {"ready": False}},
        {"addresses": ["10.0.2.5"], "nodeName": "node-c", "conditions": {}},
    ],
}


def test_slim_node_reads_the_same_and_is_small() -> None:
    slim = nodes.slim_node(BIG_NODE)
    assert nodes.NodeInfo.parse(slim) == nodes.NodeInfo.parse(BIG_NODE)
    assert nodes.NodeInfo.parse(slim).excluded
    assert len(json.dumps(slim)) * 20 < len(json.dumps(BIG_NODE))


def test_slim_endpointslice_reads_the_same() -> None:
    slim = nodes.slim_endpointslice(SLICE)
    assert nodes.ready_endpoint_nodes([slim]) == nodes.ready_endpoint_nodes([SLICE])
    assert nodes.ready_endpoint_nodes([slim]) == {"demo/web": frozenset({"node-a", "node-c"})}
    assert "ports" not in slim
