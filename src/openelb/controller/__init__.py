"""The controller (DESIGN §2): IPAM against the cluster, one active replica.

Orchestration only: rules live in ipam/, I/O in kube/. Import submodules as namespaces.
"""
