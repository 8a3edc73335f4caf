"""The webhook's TLS: certificates kept in a Secret, trusted by the apiserver, reloaded
live by every replica.

controller/ (DESIGN §2). Every controller replica serves the webhook, so every replica
runs `WebhookCerts.run()`: it reads the Secret every `check_interval` and loads a
changed serving certificate into the one `ssl.SSLContext` the server uses (new
connections get it; nothing restarts). With `manage` (the default) any replica also
creates the Secret when it is missing, renews what is due (controller/pki.py decides),
and patches the trusted CAs into the caBundle of the ValidatingWebhookConfiguration
and of the CRDs whose conversion goes through the webhook. Replicas race safely: the
Secret is written with its resourceVersion (or created), so one write wins and the
others read it on their next check; caBundle patches are idempotent.

Without `manage` (cert-manager, deploy/webhook/cert-manager.yaml) the Secret is
someone else's: this only loads it, and never writes a caBundle.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openelb.controller import pki
from openelb.kube import client, resources
from openelb.kube import errors as kube_errors

__all__ = ["CertSettings", "WebhookCerts"]

log = logging.getLogger(__name__)

CA_KEY = "ca.crt"
CA_PRIVATE_KEY = "ca.key"
CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"


@dataclass(frozen=True, slots=True)
class CertSettings:
    namespace: str = "openelb-system"
    secret: str = "openelb-webhook-cert"
    # Names the apiserver dials: the Service's DNS names (or an IP in tests).
    names: tuple[str, ...] = ("openelb-webhook.openelb-system.svc",
                              "openelb-webhook.openelb-system.svc.cluster.local")
    manage: bool = True
    lifetimes: pki.Lifetimes = field(default_factory=pki.Lifetimes)
    check_interval: float = 60.0
    webhook_configurations: tuple[str, ...] = ("openelb-admission",)
    crds: tuple[str, ...] = ("bgpconfs.network.kubesphere.io",
                             "bgppeers.network.kubesphere.io")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bundle_of(secret: client.RawObject | None) -> pki.Bundle | None:
    if secret is None:
        return None
    data = secret.get("data") or {}
    try:
        return pki.Bundle(*(base64.b64decode(data.get(k) or "")
                            for k in (CA_KEY, CA_PRIVATE_KEY, CERT_KEY, KEY_KEY)))
    except (ValueError, TypeError):
        return pki.Bundle(b"", b"", b"", b"")


class WebhookCerts:
    def __init__(self, kube: client.Kube, settings: CertSettings) -> None:
        self._kube = kube
        self.settings = settings
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self.loaded = asyncio.Event()  # a serving certificate is in `tls`
        self._served = b""
        self._dir = tempfile.TemporaryDirectory(prefix="openelb-webhook-")

    def close(self) -> None:
        self._dir.cleanup()

    async def run(self) -> None:
        """Check, load and (when managing) renew forever; errors are logged, retried."""
        while True:
            try:
                await self.check()
            except kube_errors.KubeError as exc:
                log.warning("webhook certificate not checked", extra={
                    "op": "webhook-cert", "error": str(exc)})
            await asyncio.sleep(self.settings.check_interval)

    async def check(self) -> None:
        """One round: read the Secret and load it; when managing, renew what is due
        and make sure the apiserver trusts it (a failure there never stops serving
        the certificate already stored)."""
        settings = self.settings
        secret = await self._read()
        bundle = _bundle_of(secret)
        self._load_if_new(bundle)
        if not settings.manage:
            return
        now = datetime.datetime.now(datetime.UTC)
        trusted = bundle.trusted if bundle else b""
        everywhere = bool(trusted) and await self._inject(trusted)
        base = bundle or pki.Bundle(b"", b"", b"", b"")
        following = base.next(settings.names, now, settings.lifetimes,
                              ca_trusted_everywhere=everywhere)
        if following is None:
            return
        if not await self._write(secret, following):
            self._load_if_new(_bundle_of(await self._read()))  # another replica won
            return
        log.info("webhook certificate renewed", extra={
            "op": "webhook-cert", "secret": f"{settings.namespace}/{settings.secret}",
            "new_ca": following.trusted != trusted})
        await self._inject(following.trusted)
        self._load_if_new(following)

    def _load_if_new(self, bundle: pki.Bundle | None) -> None:
        if bundle is not None and bundle.cert and bundle.cert != self._served:
            self._load(bundle)

    async def _read(self) -> client.RawObject | None:
        with contextlib.suppress(kube_errors.NotFound):
            return await self._kube.get(resources.SECRETS, self.settings.secret,
                                        self.settings.namespace)
        return None

    async def _write(self, secret: client.RawObject | None, bundle: pki.Bundle) -> bool:
        data = {CA_KEY: _b64(bundle.trusted), CA_PRIVATE_KEY: _b64(bundle.ca_key),
                CERT_KEY: _b64(bundle.cert), KEY_KEY: _b64(bundle.key)}
        try:
            if secret is None:
                await self._kube.create(resources.SECRETS, {
                    "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": self.settings.secret,
                                 "namespace": self.settings.namespace,
                                 "labels": {"app.kubernetes.io/part-of": "openelb"}},
                    "data": data}, self.settings.namespace)
            else:
                await self._kube.replace(resources.SECRETS, {**secret, "data": data},
                                         self.settings.namespace)
        except kube_errors.Conflict:
            return False
        return True

    async def _inject(self, trusted: bytes) -> bool:
        """Put `trusted` into every caBundle we own; True when all hold it now.
        A configuration or CRD that does not exist needs nothing."""
        value = _b64(trusted)
        done = True
        for name in self.settings.webhook_configurations:
            done &= await self._inject_webhooks(name, value)
        for name in self.settings.crds:
            done &= await self._inject_crd(name, value)
        return done

    async def _inject_webhooks(self, name: str, value: str) -> bool:
        try:
            config = await self._kube.get(resources.VALIDATING_WEBHOOKS, name)
        except kube_errors.NotFound:
            return True
        hooks: list[dict[str, Any]] = config.get("webhooks") or []
        stale = [h for h in hooks if (h.get("clientConfig") or {}).get("caBundle") != value]
        if not stale:
            return True
        for hook in stale:
            hook.setdefault("clientConfig", {})["caBundle"] = value
        try:
            await self._kube.replace(resources.VALIDATING_WEBHOOKS, config)
        except kube_errors.Conflict:
            return False  # changed meanwhile: the next check patches it
        log.info("caBundle injected", extra={"op": "webhook-cert",
                                             "validatingwebhookconfiguration": name})
        return True

    async def _inject_crd(self, name: str, value: str) -> bool:
        try:
            crd = await self._kube.get(resources.CRDS, name)
        except kube_errors.NotFound:
            return True
        conversion = (crd.get("spec") or {}).get("conversion") or {}
        if conversion.get("strategy") != "Webhook":
            return True
        if ((conversion.get("webhook") or {}).get("clientConfig") or {}).get(
                "caBundle") == value:
            return True
        await self._kube.patch(resources.CRDS, name, {"spec": {"conversion": {"webhook": {
            "clientConfig": {"caBundle": value}}}}})
        log.info("caBundle injected", extra={"op": "webhook-cert", "crd": name})
        return True

    def _load(self, bundle: pki.Bundle) -> None:
        """Load a serving certificate into the live context. `load_cert_chain` reads
        files only, so the PEMs pass through a private directory and are removed."""
        directory = Path(self._dir.name)
        cert_path, key_path = directory / "tls.crt", directory / "tls.key"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(bundle.key)
        cert_path.write_bytes(bundle.cert)
        try:
            self.tls.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            log.error("webhook certificate not loaded", extra={
                "op": "webhook-cert", "error": str(exc)})
            return
        finally:
            key_path.unlink(missing_ok=True)
            cert_path.unlink(missing_ok=True)
        self._served = bundle.cert
        self.loaded.set()
        log.info("webhook certificate loaded", extra={
            "op": "webhook-cert", "expires": _expiry(bundle.cert)})


def _expiry(cert: bytes) -> str:
    found = pki.certificates(cert)
    return found[0].not_valid_after_utc.isoformat() if found else "?"


def names_from(values: Sequence[str]) -> tuple[str, ...]:
    """Flag values (comma-separated or repeated) as a tuple of names."""
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())
