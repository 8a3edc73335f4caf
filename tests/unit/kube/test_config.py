"""kube/config.py: how kubeconfig files and the in-cluster account become a Connection.

Files only (tmp_path); the TLS handshakes with these settings are exercised against the
real apiserver in tests/integration/test_kube_client.py.
"""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path
from typing import Any

import pytest

from openelb.kube import config


def write_kubeconfig(path: Path, *, cluster: dict[str, Any] | None = None,
                     user: dict[str, Any] | None = None, current: str | None = "ctx") -> Path:
    document: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": user or {}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
    }
    if current is not None:
        document["current-context"] = current
    path.write_text(json.dumps(document))
    return path


def test_token_becomes_a_bearer_header(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", user={"token": "abc"})
    connection = config.load(str(path))
    assert connection.server == "http://127.0.0.1:1"
    assert connection.tls is None
    assert connection.authorization() == "Bearer abc"


def test_basic_auth_header(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", user={"username": "ann", "password": "s3cret"})
    expected = "Basic " + base64.b64encode(b"ann:s3cret").decode()
    assert config.load(str(path)).authorization() == expected


def test_token_file_is_relative_to_the_kubeconfig_and_reread(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("first\n")
    path = write_kubeconfig(tmp_path / "kc", user={"tokenFile": "token"})
    connection = config.load(str(path))
    assert connection.authorization() == "Bearer first"
    (tmp_path / "token").write_text("rotated\n")
    assert connection.authorization() == "Bearer first"  # within the re-read interval
    assert isinstance(connection.token, config.TokenFile)
    connection.token._read_at -= config.TOKEN_REREAD_SECONDS  # a minute later
    assert connection.authorization() == "Bearer rotated"


def test_token_file_vanishing_keeps_the_last_good_token(tmp_path: Path) -> None:
    token = config.TokenFile(tmp_path / "token")
    (tmp_path / "token").write_text("kept")
    assert token.token() == "kept"
    (tmp_path / "token").unlink()
    token._read_at -= config.TOKEN_REREAD_SECONDS
    assert token.token() == "kept"


def test_kubeconfig_list_uses_the_first_existing_file(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", user={"token": "t"})
    assert config.load(f"{tmp_path / 'missing'}:{path}").authorization() == "Bearer t"


def test_https_without_ca_still_verifies(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", cluster={"server": "https://192.0.2.1:6443"})
    tls = config.load(str(path)).tls
    assert tls is not None
    assert tls.verify_mode == ssl.CERT_REQUIRED
    assert tls.check_hostname


def test_insecure_skip_tls_verify_is_honoured(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", cluster={
        "server": "https://192.0.2.1:6443", "insecure-skip-tls-verify": True})
    tls = config.load(str(path)).tls
    assert tls is not None
    assert tls.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(("cluster", "user", "current", "message"), [
    (None, None, None, "current-context: not set"),
    (None, None, "other", "contexts: no entry named 'other'"),
    ({"server": "127.0.0.1:6443"}, None, "ctx",
     "clusters[c].cluster.server: must be an http(s) URL, got '127.0.0.1:6443'"),
    (None, {"exec": {"command": "aws"}}, "ctx",
     "users[u].user.exec: credential plugins are not supported"),
    (None, {"auth-provider": {"name": "oidc"}}, "ctx",
     "users[u].user.auth-provider: credential plugins are not supported"),
    ({"server": "https://192.0.2.1", "certificate-authority-data": "not base64!"}, None,
     "ctx", "clusters[c].cluster.certificate-authority-data: not valid base64"),
    ({"server": "https://192.0.2.1", "certificate-authority": "/nonexistent/ca.crt"}, None,
     "ctx", "clusters[c].cluster.certificate-authority:"),
    ({"server": "https://192.0.2.1"}, {"client-certificate": "/nonexistent/c.crt"}, "ctx",
     "users[u].user.client-key: missing (a client certificate needs its key)"),
])
def test_bad_kubeconfigs_name_the_field(tmp_path: Path, cluster: dict[str, Any] | None,
                                        user: dict[str, Any] | None, current: str | None,
                                        message: str) -> None:
    path = write_kubeconfig(tmp_path / "kc", cluster=cluster, user=user, current=current)
    with pytest.raises(config.InvalidConfig) as caught:
        config.load(str(path))
    assert str(caught.value).startswith(message)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(config.InvalidConfig, match="kubeconfig: no such file"):
        config.load(str(tmp_path / "nope"))
    (tmp_path / "bad").write_text("clusters: [unclosed")
    with pytest.raises(config.InvalidConfig, match="is not YAML"):
        config.load(str(tmp_path / "bad"))
    (tmp_path / "list").write_text("- a\n- b\n")
    with pytest.raises(config.InvalidConfig, match="expected a mapping"):
        config.load(str(tmp_path / "list"))


def test_in_cluster(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    env = {"KUBERNETES_SERVICE_HOST": "2001:db8::1", "KUBERNETES_SERVICE_PORT": "443"}
    connection = config.in_cluster(tmp_path, env)
    assert connection.server == "https://[2001:db8::1]:443"
    assert connection.authorization() == "Bearer sa-token"


def test_in_cluster_outside_a_pod_says_why(tmp_path: Path) -> None:
    with pytest.raises(config.InvalidConfig, match="KUBERNETES_SERVICE_HOST/PORT are not set"):
        config.in_cluster(tmp_path, {})
    env = {"KUBERNETES_SERVICE_HOST": "192.0.2.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(config.InvalidConfig, match="no ServiceAccount token"):
        config.in_cluster(tmp_path, env)
