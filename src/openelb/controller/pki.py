"""The webhook's certificates as values: a CA, a serving certificate it signs, and when
each must be renewed.

No I/O (controller/certs.py stores them in a Secret and patches the caBundles). Built
with `cryptography`, the library Python's own tooling uses for X.509; OpenSSL through
the `ssl` module can load certificates but not make them. Keys are ECDSA P-256: small,
fast to make (a rotation costs milliseconds), and accepted by every apiserver.

A `Bundle` is what the Secret holds: the CAs the apiserver must trust (newest first),
the newest CA's key, and the serving certificate with its key. Rotation is two-step
for the CA so no admission is ever refused: a new CA first joins the trusted set next
to the old one; only once that set is in every caBundle does the serving certificate
move to the new CA (`Bundle.next`).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Bundle", "Lifetimes", "issue", "new_ca"]

# A certificate is renewed once less than this share of its life is left.
RENEW_FRACTION = 1 / 3
# Certificates start this much in the past so a peer's small clock skew never sees
# them "not yet valid".
BACKDATE = datetime.timedelta(minutes=5)
# A new CA is trusted by the apiserver some time after its caBundle is written (the
# apiserver reads webhook configurations through its own informer): the serving
# certificate moves to it only after this long (or a quarter of a serving life, if less:
# a serving certificate is renewed with a third left, so it outlives the wait).
CA_SETTLE = datetime.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Lifetimes:
    serving: datetime.timedelta = datetime.timedelta(days=365)
    ca: datetime.timedelta = datetime.timedelta(days=3650)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def new_ca(now: datetime.datetime, lifetime: datetime.timedelta) -> tuple[bytes, bytes]:
    """A self-signed CA: (certificate PEM, key PEM)."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         f"openelb-webhook-ca-{int(now.timestamp())}")])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return _pem(cert), _key_pem(key)


def issue(ca_pem: bytes, ca_key_pem: bytes, names: Sequence[str], now: datetime.datetime,
          lifetime: datetime.timedelta) -> tuple[bytes, bytes]:
    """A serving certificate for `names` (DNS names or IP addresses) signed by the CA:
    (certificate PEM, key PEM). It never outlives its CA."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an ECDSA key")
    key = _key()
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    not_after = min(now + lifetime, ca.not_valid_after_utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _pem(cert), _key_pem(key)


def certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle ([] for garbage)."""
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []


def _due(cert: x509.Certificate, now: datetime.datetime) -> bool:
    # The life that was asked for: BACKDATE is clock-skew slack, not life.
    start, end = cert.not_valid_before_utc + BACKDATE, cert.not_valid_after_utc
    return now >= end - max(end - start, datetime.timedelta(0)) * RENEW_FRACTION


@dataclass(frozen=True, slots=True)
class Bundle:
    """The Secret's content. `trusted` is the caBundle: the newest CA first."""

    trusted: bytes
    ca_key: bytes
    cert: bytes
    key: bytes

    @classmethod
    def fresh(cls, names: Sequence[str], now: datetime.datetime,
              lifetimes: Lifetimes) -> Bundle:
        ca, ca_key = new_ca(now, lifetimes.ca)
        cert, key = issue(ca, ca_key, names, now, lifetimes.serving)
        return cls(ca, ca_key, cert, key)

    @property
    def newest_ca(self) -> bytes:
        found = certificates(self.trusted)
        return _pem(found[0]) if found else b""

    def usable(self, names: Sequence[str], now: datetime.datetime) -> bool:
        """Whether this bundle can be served and renewed at all: a CA and its key, a
        serving certificate for every name, signed by a trusted CA, not expired."""
        cas, served = certificates(self.trusted), certificates(self.cert)
        if not cas or not served or not self.ca_key or not self.key:
            return False
        cert = served[0]
        if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
            return False
        if cert.issuer not in {ca.subject for ca in cas}:
            return False
        try:
            alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        have = {str(v) for v in alt.get_values_for_type(x509.DNSName)}
        have |= {str(v) for v in alt.get_values_for_type(x509.IPAddress)}
        return all(str(ipaddress.ip_address(n)) in have if _is_ip(n) else n in have
                   for n in names)

    def next(self, names: Sequence[str], now: datetime.datetime, lifetimes: Lifetimes,
             *, ca_trusted_everywhere: bool) -> Bundle | None:
        """The bundle to store next, or None while this one needs nothing.

        1. The newest CA is due: a new CA joins the trusted set (the serving
           certificate stays, so every caller still trusts what is served).
        2. The serving certificate is due, or was signed by an older CA than the
           newest, and the newest CA is in every caBundle (`ca_trusted_everywhere`) and
           has been for CA_SETTLE: a new serving certificate from the newest CA;
           expired CAs leave the set.
        """
        if not self.usable(names, now):
            return Bundle.fresh(names, now, lifetimes)
        cas = certificates(self.trusted)
        newest, served = cas[0], certificates(self.cert)[0]
        kept = b"".join(_pem(c) for c in cas if c.not_valid_after_utc > now)
        if _due(newest, now):
            ca, ca_key = new_ca(now, lifetimes.ca)
            return replace(self, trusted=ca + kept, ca_key=ca_key)
        stale_issuer = served.issuer != newest.subject
        settle = min(CA_SETTLE, lifetimes.serving / 4)
        settled = now - (newest.not_valid_before_utc + BACKDATE) >= settle
        if (_due(served, now) or stale_issuer) and ca_trusted_everywhere and (
                settled or not stale_issuer):
            cert, key = issue(_pem(newest), self.ca_key, names, now, lifetimes.serving)
            return replace(self, trusted=kept, cert=cert, key=key)
        return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
