"""Development TLS: a certificate authority and the server certificates it issues.

``fota keys tls`` and ``fota server run`` (without a configured certificate) write a
development CA certificate and one ECDSA P-256 server certificate, and discard the CA's key:
nothing else can be issued under it. Tests keep a :class:`CertificateAuthority` in memory to
issue more (for a wrong host, already expired). Production servers use a real CA.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secure_fota.crypto.keys import private_pem
from secure_fota.errors import InputError
from secure_fota.keys.directory import GeneratedFile, write_key_files

__all__ = ["CA_FILE", "CERT_FILE", "KEY_FILE", "CertificateAuthority", "generate_tls"]

#: what :func:`generate_tls` writes
CA_FILE = "ca.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server.key"
#: the longest server certificate validity browsers and TLS libraries accept
_MAX_SERVER_DAYS = 397


def _host_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        if not host or len(host) > 253 or any(c.isspace() or ord(c) < 0x20 for c in host):
            raise InputError("--host", f"{host!r} is not a host name or IP address")
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _validity(
    builder: x509.CertificateBuilder, days: int, now: datetime.datetime | None
) -> x509.CertificateBuilder:
    start = now or datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(start - datetime.timedelta(minutes=5)).not_valid_after(
        start + datetime.timedelta(days=days)
    )


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """An ECDSA P-256 CA certificate with its key (held in memory only)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(
        cls, name: str, *, days: int, now: datetime.datetime | None = None
    ) -> CertificateAuthority:
        """A self-signed CA named ``name``, valid ``days`` from ``now``."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
        )
        certificate = (
            _validity(builder, days, now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self, hosts: Sequence[str], *, days: int, now: datetime.datetime | None = None
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A server certificate for ``hosts`` (names or IP addresses; the first is its common
        name), valid ``days`` from ``now``, with a fresh P-256 key."""
        if not hosts:
            raise InputError("--host", "give at least one host name or IP address")
        alt_names = _host_names(hosts)
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
        )
        certificate = (
            _validity(builder, days, now)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )
        return certificate, key


def generate_tls(
    out: Path, hosts: Sequence[str], *, force: bool = False, days: int = 825
) -> list[GeneratedFile]:
    """Create a development CA (``ca.pem``) and a server certificate for ``hosts``
    (``server.pem``, ``server.key``; at most 397 days).

    The CA's private key is not kept: nothing else can be issued under it.
    """
    if not hosts:
        raise InputError("--host", "give at least one host name or IP address")
    _host_names(hosts)  # refused before any key is generated
    authority = CertificateAuthority.create("secure-fota development CA", days=days)
    certificate, key = authority.issue(hosts, days=min(days, _MAX_SERVER_DAYS))
    files = [
        (
            CA_FILE,
            authority.certificate_pem(),
            False,
            "development CA certificate (devices trust it)",
        ),
        (
            CERT_FILE,
            certificate.public_bytes(serialization.Encoding.PEM),
            False,
            f"server certificate for {', '.join(hosts)}",
        ),
        (KEY_FILE, private_pem(key), True, "server TLS private key"),
    ]
    return write_key_files(out, files, force)
