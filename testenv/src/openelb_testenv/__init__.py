"""A real Kubernetes control plane for tests and the demo (DESIGN §5).

Test environment, not one of DESIGN §3's runtime layers: nothing in openelb's runtime
imports it, and the pure layers are forbidden to (pyproject import contracts).

    controlplane   builds nothing; starts/stops the cached etcd + kube-apiserver
    clients        kubernetes_asyncio clients for the admin and for ServiceAccounts
    manifests      load YAML files and apply them (CRDs, RBAC, examples)
    components     run openelb's own daemons as processes under their ServiceAccounts
"""

from openelb_testenv import clients, components, controlplane, manifests

__all__ = ["clients", "components", "controlplane", "manifests"]
