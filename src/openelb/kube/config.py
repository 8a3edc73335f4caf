"""Where the apiserver is and how to prove who we are: kubeconfig or in-cluster account.

kube/ (DESIGN §3). Produces `Connection` (server URL, TLS context, credentials) for
kube/client.py. Written by hand rather than taken from a Kubernetes client library: the
established ones load every generated API model on import (kubernetes_asyncio costs
~63 MB of RSS per process, lightkube ~7 MB more than httpx alone), and the speaker runs
on every node under an 80 MB budget with ExaBGP. The formats read here are small and
stable: a kubeconfig's cluster/user/context entries, and the ServiceAccount files that
the kubelet mounts into every Pod.

Supported credentials: client certificate and key (file or inline data), bearer token
(inline or `tokenFile`), basic auth. `exec` and `auth-provider` plugins are refused
with a message naming the field: a daemon cannot answer interactive logins, and its
ServiceAccount token is what the deployment gives it.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openelb.api import errors

__all__ = ["Connection", "InvalidConfig", "TokenFile", "from_kubeconfig", "in_cluster", "load"]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Bound ServiceAccount tokens rotate (the kubelet rewrites the file well before expiry);
# client-go re-reads the file every minute, and so do we.
TOKEN_REREAD_SECONDS = 60.0


class InvalidConfig(errors.OpenELBError):
    """A kubeconfig or in-cluster setup we cannot use; the message names the field."""


@dataclass(slots=True)
class TokenFile:
    """A bearer token read from a file and re-read at most once a minute."""

    path: Path
    _token: str = ""
    _read_at: float = field(default=-1e9)

    def token(self) -> str:
        now = time.monotonic()
        if now - self._read_at >= TOKEN_REREAD_SECONDS or not self._token:
            try:
                text = self.path.read_text().strip()
            except OSError as exc:
                if self._token:  # keep the last good token; the kubelet may be mid-rewrite
                    return self._token
                raise InvalidConfig(f"tokenFile: cannot read {self.path}: {exc.strerror}") from exc
            self._token, self._read_at = text, now
        return self._token


@dataclass(slots=True)
class Connection:
    """Everything needed to open requests to one apiserver as one identity."""

    server: str
    tls: ssl.SSLContext | None  # None for plain http:// servers
    token: str | TokenFile | None = None
    basic_auth: tuple[str, str] | None = None

    def authorization(self) -> str | None:
        """The Authorization header value for the next request, if any."""
        if isinstance(self.token, TokenFile):
            return f"Bearer {self.token.token()}"
        if self.token:
            return f"Bearer {self.token}"
        if self.basic_auth:
            raw = f"{self.basic_auth[0]}:{self.basic_auth[1]}".encode()
            return f"Basic {base64.b64encode(raw).decode()}"
        return None


def load(kubeconfig: str | None) -> Connection:
    """From `kubeconfig` (a path, or a KUBECONFIG-style list whose first existing file
    is used), or the in-cluster ServiceAccount when it is None or empty."""
    if not kubeconfig:
        return in_cluster()
    paths = [p for p in kubeconfig.split(os.pathsep) if p]
    existing = [p for p in paths if Path(p).expanduser().is_file()]
    if not existing:
        raise InvalidConfig(f"kubeconfig: no such file: {', '.join(paths)}")
    return from_kubeconfig(Path(existing[0]).expanduser())


def in_cluster(directory: Path = SERVICE_ACCOUNT_DIR,
               environ: Mapping[str, str] = os.environ) -> Connection:
    """The Pod's ServiceAccount: token and CA mounted by the kubelet, address from env."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise InvalidConfig("in-cluster: KUBERNETES_SERVICE_HOST/PORT are not set "
                            "(not running in a Pod? pass --kubeconfig)")
    token_path, ca_path = directory / "token", directory / "ca.crt"
    if not token_path.is_file():
        raise InvalidConfig(f"in-cluster: no ServiceAccount token at {token_path} "
                            "(automountServiceAccountToken disabled?)")
    tls = _tls_context(ca_file=str(ca_path) if ca_path.is_file() else None,
                       ca_data=None, insecure=False, where="in-cluster")
    if ":" in host:  # an IPv6 service address needs brackets in a URL
        host = f"[{host}]"
    return Connection(server=f"https://{host}:{port}", tls=tls, token=TokenFile(token_path))


def from_kubeconfig(path: Path) -> Connection:
    """The current context of the kubeconfig file at `path`."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidConfig(f"kubeconfig: cannot read {path}: {exc.strerror}") from exc
    document = _parse_document(text, path)
    if not isinstance(document, dict):
        raise InvalidConfig(f"kubeconfig: {path} is not a kubeconfig (expected a mapping)")
    base = path.parent
    context_name = document.get("current-context")
    if not context_name:
        raise InvalidConfig("current-context: not set")
    context = _named(document, "contexts", context_name, "context")
    cluster = _named(document, "clusters", context.get("cluster"), "cluster")
    user_name = context.get("user")
    user = _named(document, "users", user_name, "user") if user_name else {}

    server = str(cluster.get("server") or "")
    if not server.startswith(("https://", "http://")):
        raise InvalidConfig(f"clusters[{context.get('cluster')}].cluster.server: "
                            f"must be an http(s) URL, got {server!r}")
    for plugin in ("exec", "auth-provider"):
        if plugin in user:
            raise InvalidConfig(f"users[{user_name}].user.{plugin}: credential plugins are "
                                "not supported; use a token or a client certificate")
    tls = None
    if server.startswith("https://"):
        where = f"clusters[{context.get('cluster')}].cluster"
        tls = _tls_context(
            ca_file=_path(base, cluster.get("certificate-authority")),
            ca_data=cluster.get("certificate-authority-data"),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            where=where,
        )
        _load_client_certificate(tls, base, user, f"users[{user_name}].user")
    token: str | TokenFile | None = user.get("token") or None
    if not token and user.get("tokenFile"):
        token = TokenFile(Path(_path(base, user["tokenFile"]) or ""))
    basic = None
    if user.get("username") and user.get("password"):
        basic = (str(user["username"]), str(user["password"]))
    return Connection(server=server.rstrip("/"), tls=tls, token=token, basic_auth=basic)


def _parse_document(text: str, path: Path) -> Any:
    """JSON (a YAML subset, what generated kubeconfigs often are) without importing a YAML
    parser; anything else through PyYAML, imported only then (it costs ~1 MB per daemon)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidConfig(f"kubeconfig: {path} is not YAML: {exc}") from exc


def _named(document: Mapping[str, Any], section: str, name: object, key: str
           ) -> dict[str, Any]:
    for entry in document.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key) or {}
            if not isinstance(value, dict):
                raise InvalidConfig(f"{section}[{name}].{key}: expected a mapping")
            return value
    raise InvalidConfig(f"{section}: no entry named {name!r}")


def _path(base: Path, value: object) -> str | None:
    """A file path from a kubeconfig; relative paths are relative to the file itself."""
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else base / path)


def _decoded(value: object, where: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError as exc:
        raise InvalidConfig(f"{where}: not valid base64") from exc


def _tls_context(*, ca_file: str | None, ca_data: object, insecure: bool, where: str
                 ) -> ssl.SSLContext:
    """Verifying client context. With a cluster CA, only that CA is trusted (as kubectl
    does): the system roots are loaded only when the kubeconfig names no CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies chain and hostname
    try:
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
        if ca_data:
            pem = _decoded(ca_data, f"{where}.certificate-authority-data").decode("ascii",
                                                                                "replace")
            context.load_verify_locations(cadata=pem)
        if not ca_file and not ca_data and not insecure:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidConfig(f"{where}.certificate-authority: {exc}") from exc
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _load_client_certificate(context: ssl.SSLContext, base: Path, user: Mapping[str, Any],
                             where: str) -> None:
    cert_file = _path(base, user.get("client-certificate"))
    key_file = _path(base, user.get("client-key"))
    cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
    if not (cert_file or cert_data):
        return
    if not (key_file or key_data):
        raise InvalidConfig(f"{where}.client-key: missing (a client certificate needs its key)")
    try:
        if cert_file and key_file:
            context.load_cert_chain(cert_file, key_file)
            return
        # ssl loads certificates only from files: write the inline data to a private
        # temporary directory just for the call, then remove it.
        with tempfile.TemporaryDirectory(prefix="openelb-kube-") as directory:
            cert_path = cert_file or _write_private(
                Path(directory) / "client.crt",
                _decoded(cert_data, f"{where}.client-certificate-data"))
            key_path = key_file or _write_private(
                Path(directory) / "client.key", _decoded(key_data, f"{where}.client-key-data"))
            context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidConfig(f"{where}.client-certificate: {exc}") from exc


def _write_private(path: Path, data: bytes) -> str:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return str(path)
