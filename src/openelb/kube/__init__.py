"""The only code that talks to the kube-apiserver (DESIGN §3): client, informers,
leader election, Events. Import submodules as namespaces."""

from openelb.kube import client, errors, events, informer, leases, resources

__all__ = ["client", "errors", "events", "informer", "leases", "resources"]
