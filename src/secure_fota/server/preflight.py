"""Checks ``fota server run`` makes before it serves: each mistake is one line, not a trace.

* the certificate file holds PEM certificates, the key file a private key, and the key
  belongs to the first certificate (:func:`check_tls_pair`); a certificate outside its
  validity period is a warning (clients will refuse it, but the operator may be renewing);
* the freshness key loads; without one, a loud warning (devices that require freshness,
  the default, refuse every update from such a server) (:func:`freshness_warnings`).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from secure_fota.crypto.keys import Role
from secure_fota.errors import ConfigError, FotaError
from secure_fota.keys.directory import load_private_key_file

__all__ = ["check_tls_pair", "freshness_warnings"]

#: a certificate that expires within this many days earns a warning
EXPIRY_WARNING_DAYS = 14


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc.strerror})") from None


def _public_der(key: object) -> bytes:
    public = key.public_key()  # type: ignore[attr-defined]
    return bytes(
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def check_tls_pair(
    cert_file: Path, key_file: Path, password: str | None, *, now: datetime.datetime
) -> list[str]:
    """Refuse a certificate file or key file that cannot serve; return warnings."""
    try:
        chain = x509.load_pem_x509_certificates(_read(cert_file, "TLS certificate"))
    except ValueError:
        raise ConfigError(
            f"TLS certificate {cert_file} holds no PEM certificate "
            "(give the server's certificate chain, e.g. tls/server.pem)"
        ) from None
    data = _read(key_file, "TLS key")
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except TypeError:
        raise ConfigError(
            f"TLS key {key_file} is encrypted; set FOTA_TLS_KEY_PASSWORD to its password"
        ) from None
    except ValueError:
        hint = (
            "wrong FOTA_TLS_KEY_PASSWORD, or not a private key"
            if password
            else "not a PEM private key (e.g. tls/server.key)"
        )
        raise ConfigError(f"TLS key {key_file}: {hint}") from None
    leaf = chain[0]
    try:
        matches = _public_der(key) == _public_der(leaf)
    except (AttributeError, ValueError):
        matches = False
    if not matches:
        raise ConfigError(
            f"TLS key {key_file} does not belong to the certificate {cert_file} "
            "(give the key the certificate was issued for)"
        )
    warnings = []
    subject = leaf.subject.rfc4514_string() or "the server certificate"
    if now < leaf.not_valid_before_utc:
        warnings.append(
            f"warning: TLS certificate {cert_file} ({subject}) is not valid before "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; clients will refuse it "
            "(check this machine's clock)"
        )
    elif now > leaf.not_valid_after_utc:
        warnings.append(
            f"warning: TLS certificate {cert_file} ({subject}) EXPIRED on "
            f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; clients will refuse it; renew it"
        )
    elif now + datetime.timedelta(days=EXPIRY_WARNING_DAYS) > leaf.not_valid_after_utc:
        warnings.append(
            f"warning: TLS certificate {cert_file} expires on "
            f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; renew it soon"
        )
    return warnings


def freshness_warnings(freshness_key_file: Path | None) -> list[str]:
    """Load the freshness key to find its mistakes now; warn loudly when there is none."""
    if freshness_key_file is None:
        return [
            "WARNING: no freshness key: this server sends no freshness statements, and devices "
            "that require them (the default) refuse every update from it. Give "
            "--freshness-key keys/freshness_key.pem (setting freshness_key_file)."
        ]
    try:
        load_private_key_file(Role.FRESHNESS, freshness_key_file)
    except FotaError as exc:
        raise ConfigError(f"freshness key: {exc}") from None
    return []
