"""The TLS client context every secure-fota client uses (uploads, devices, fleet, demo).

Certificate and host name are always verified; TLS 1.2 is the floor. ``ca_file`` pins the
trust to one CA (the fleet's, or a development CA); without it the system's CAs are used.
A ``ca_file`` that holds no certificate is one :class:`InputError` naming ``--ca``.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from secure_fota.errors import InputError

__all__ = ["client_context", "connect_failure"]


def client_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A verifying client context trusting ``ca_file`` (or the system CAs)."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except ssl.SSLError:
        raise InputError(
            "--ca",
            f"{ca_file} holds no PEM certificate (give the CA certificate, e.g. tls/ca.pem)",
        ) from None
    except OSError as exc:
        raise InputError("--ca", f"cannot read {ca_file} ({exc.strerror})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def connect_failure(exc: BaseException, server: str, *, server_option: str) -> str:
    """One line for a connection that could not be made: an untrusted certificate (give
    ``--ca``) or a server that does not answer (is it running? is ``server_option`` right?)."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            f"{server}: the server's TLS certificate is not trusted ({text}); give --ca with "
            "the CA certificate that issued it, and use a host name the certificate names"
        )
    return (
        f"cannot reach the update server {server} ({text}); is it running, and is "
        f"{server_option} right?"
    )
