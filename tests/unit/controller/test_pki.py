"""The webhook's certificates (controller/pki.py): what is made, when it is renewed, and
that a CA rotation never leaves a moment where the served certificate is untrusted."""

from __future__ import annotations

import datetime
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from openelb.controller import pki

NAMES = ("openelb-webhook.openelb-system.svc", "127.0.0.1")
LIFE = pki.Lifetimes(serving=datetime.timedelta(hours=3), ca=datetime.timedelta(hours=30))
T0 = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)


def _verifies(bundle: pki.Bundle, trusted: bytes) -> bool:
    """Whether a client trusting `trusted` accepts the served certificate (OpenSSL's own
    chain check, as the apiserver's Go TLS would do it)."""
    served = x509.load_pem_x509_certificate(bundle.cert)
    for ca in pki.certificates(trusted):
        try:
            served.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):  # not this CA
            continue
        return True
    return False


def test_a_fresh_bundle_serves_every_name_and_loads_into_ssl() -> None:
    bundle = pki.Bundle.fresh(NAMES, T0, LIFE)
    assert bundle.usable(NAMES, T0)
    assert _verifies(bundle, bundle.trusted)
    cert = x509.load_pem_x509_certificate(bundle.cert)
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == [NAMES[0]]
    assert [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)] == [NAMES[1]]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "c").write_bytes(bundle.cert)
        (Path(tmp) / "k").write_bytes(bundle.key)
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(Path(tmp) / "c",
                                                                Path(tmp) / "k")


def test_nothing_is_renewed_early() -> None:
    bundle = pki.Bundle.fresh(NAMES, T0, LIFE)
    at = T0 + datetime.timedelta(hours=1)
    assert bundle.next(NAMES, at, LIFE, ca_trusted_everywhere=True) is None


def test_the_serving_certificate_is_renewed_with_a_third_of_its_life_left() -> None:
    bundle = pki.Bundle.fresh(NAMES, T0, LIFE)
    at = T0 + datetime.timedelta(hours=2, minutes=5)
    renewed = bundle.next(NAMES, at, LIFE, ca_trusted_everywhere=True)
    assert renewed is not None
    assert renewed.trusted == bundle.trusted  # same CA: no caBundle change needed
    assert renewed.cert != bundle.cert
    assert _verifies(renewed, bundle.trusted)


def test_a_missing_name_or_garbage_makes_a_fresh_bundle() -> None:
    bundle = pki.Bundle.fresh(NAMES[:1], T0, LIFE)
    assert not bundle.usable(NAMES, T0)
    assert bundle.next(NAMES, T0, LIFE, ca_trusted_everywhere=True) is not None
    garbage = pki.Bundle(b"x", b"y", b"z", b"w")
    fresh = garbage.next(NAMES, T0, LIFE, ca_trusted_everywhere=False)
    assert fresh is not None
    assert fresh.usable(NAMES, T0)


def test_ca_rotation_never_serves_an_untrusted_certificate() -> None:
    """Walk a whole CA life in steps; at every step the trusted set the apiserver was
    last given (only updated when `ca_trusted_everywhere` would be true) accepts what
    is served, and the CA really changes."""
    bundle = pki.Bundle.fresh(NAMES, T0, LIFE)
    apiserver_trusts = bundle.trusted
    first_ca = bundle.newest_ca
    now = T0
    cas_seen = {first_ca}
    for _ in range(200):
        now += datetime.timedelta(minutes=15)
        following = bundle.next(NAMES, now, LIFE,
                                ca_trusted_everywhere=apiserver_trusts == bundle.trusted)
        if following is not None:
            # What the serving replicas load now must be trusted by the caBundle the
            # apiserver still holds (it is patched right after the Secret is written).
            assert _verifies(following, apiserver_trusts)
            bundle = following
            apiserver_trusts = bundle.trusted  # the injection that follows the write
        cas_seen.add(bundle.newest_ca)
        assert bundle.usable(NAMES, now)
    assert len(cas_seen) >= 2


def test_a_serving_certificate_never_outlives_its_ca() -> None:
    short = pki.Lifetimes(serving=datetime.timedelta(days=10), ca=datetime.timedelta(days=1))
    bundle = pki.Bundle.fresh(NAMES, T0, short)
    cert = x509.load_pem_x509_certificate(bundle.cert)
    ca = x509.load_pem_x509_certificate(bundle.newest_ca)
    assert cert.not_valid_after_utc <= ca.not_valid_after_utc


def test_the_serving_certificate_waits_for_the_apiserver_to_trust_a_new_ca() -> None:
    """The caBundle written is not the caBundle in use at once: a new CA must have been
    trusted for a while (CA_SETTLE, a minute, here) before it signs."""
    bundle, now = pki.Bundle.fresh(NAMES, T0, LIFE), T0
    while True:  # renew as the controller would, until the CA is replaced
        now += datetime.timedelta(minutes=5)
        following = bundle.next(NAMES, now, LIFE, ca_trusted_everywhere=True)
        if following is None:
            continue
        if following.trusted != bundle.trusted:
            break
        bundle = following
    assert following.cert == bundle.cert  # step 1: only the trusted set changed
    added = following
    for seconds in (1, 20, 50):  # not settled yet: nothing signed by the new CA
        assert added.next(NAMES, now + datetime.timedelta(seconds=seconds), LIFE,
                          ca_trusted_everywhere=True) is None
    moved = added.next(NAMES, now + pki.CA_SETTLE + datetime.timedelta(seconds=1), LIFE,
                       ca_trusted_everywhere=True)
    assert moved is not None
    assert moved.newest_ca == added.newest_ca
    served = x509.load_pem_x509_certificate(moved.cert)
    assert served.issuer == pki.certificates(added.newest_ca)[0].subject
