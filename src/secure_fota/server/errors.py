"""Errors that only the server raises, each a :class:`FotaError` with its ``http_status``
(answered by ``http_errors``)."""

from __future__ import annotations

from secure_fota.errors import BadRequest, FotaError, InputError, StorageError

__all__ = [
    "AuthenticationRequired",
    "BadRequest",
    "Forbidden",
    "PayloadTooLarge",
    "RequestTimeout",
    "Throttled",
    "Unavailable",
    "UnsupportedMediaType",
]


class PayloadTooLarge(InputError):
    """A request body, a file or a field exceeds its configured limit (413)."""

    http_status = 413


class UnsupportedMediaType(InputError):
    """The request body is not of a type the endpoint accepts (415)."""

    http_status = 415


class AuthenticationRequired(FotaError):
    """No credentials, or wrong ones (401). ``scheme`` goes into ``WWW-Authenticate``."""

    http_status = 401

    def __init__(self, message: str = "authentication required", *, basic: bool = True) -> None:
        super().__init__(message)
        self.basic = basic


class Forbidden(FotaError):
    """Valid credentials without the role the endpoint needs, or TLS missing (403)."""

    http_status = 403


class Throttled(FotaError):
    """Too many failed authentication attempts from one client or for one user (429)."""

    http_status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed authentication attempts; retry in {retry_after} s")
        self.retry_after = retry_after


class Unavailable(StorageError):
    """The database or the blob store cannot be reached right now (503)."""


class RequestTimeout(FotaError):
    """The request body did not arrive within the configured time (408)."""

    http_status = 408
