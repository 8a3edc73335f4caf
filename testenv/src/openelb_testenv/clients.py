"""kubernetes_asyncio clients for a testenv control plane (DESIGN §5).

Test environment, outside DESIGN §3's runtime layers; used by the integration fixtures
and the demo. The admin client authenticates with the control plane's client
certificate (group system:masters, so RBAC lets it do anything). A ServiceAccount
client carries a token from the TokenRequest API, so it has exactly the rights that RBAC
grants that ServiceAccount: this is how the controller and speaker are tested under
their own identities. Callers own the returned ApiClient and must close it.
"""

from __future__ import annotations

from kubernetes_asyncio import client as k8s

from openelb_testenv import controlplane

__all__ = [
    "admin_client",
    "admin_configuration",
    "bearer_configuration",
    "request_token",
    "service_account_client",
]


def admin_configuration(cp: controlplane.ControlPlane) -> k8s.Configuration:
    """Client settings for the admin: TLS to the control plane, the admin certificate."""
    configuration = k8s.Configuration(host=cp.server, ssl_ca_cert=str(cp.ca_file))
    configuration.cert_file = str(cp.admin_cert)
    configuration.key_file = str(cp.admin_key)
    return configuration


def bearer_configuration(cp: controlplane.ControlPlane, token: str) -> k8s.Configuration:
    """Client settings that authenticate with a bearer token (and no certificate)."""
    return k8s.Configuration(
        host=cp.server,
        ssl_ca_cert=str(cp.ca_file),
        api_key={"BearerToken": token},
        api_key_prefix={"BearerToken": "Bearer"},
    )


def admin_client(cp: controlplane.ControlPlane) -> k8s.ApiClient:
    """An ApiClient acting as the cluster admin."""
    return k8s.ApiClient(configuration=admin_configuration(cp))


async def request_token(
    admin: k8s.ApiClient,
    namespace: str,
    name: str,
    *,
    expiration_seconds: int = 3600,
    audiences: list[str] | None = None,
) -> str:
    """A token for ServiceAccount `namespace/name` from the TokenRequest API.

    Without `audiences` the token is for the apiserver itself.
    """
    request = k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(
            audiences=audiences or [], expiration_seconds=expiration_seconds
        )
    )
    response = await k8s.CoreV1Api(admin).create_namespaced_service_account_token(
        name, namespace, request
    )
    token: str = response.status.token
    return token


async def service_account_client(
    cp: controlplane.ControlPlane, admin: k8s.ApiClient, namespace: str, name: str
) -> k8s.ApiClient:
    """An ApiClient acting as ServiceAccount `namespace/name` (token via TokenRequest)."""
    token = await request_token(admin, namespace, name)
    return k8s.ApiClient(configuration=bearer_configuration(cp, token))
