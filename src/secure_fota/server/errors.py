"""Errors that only the server raises; each is a :class:`FotaError` mapped in ``http_errors``."""

from __future__ import annotations

from secure_fota.errors import FotaError, InputError, StorageError

__all__ = [
    "AuthenticationRequired",
    "BadRequest",
    "Forbidden",
    "MissingParameter",
    "PayloadTooLarge",
    "RequestTimeout",
    "Throttled",
    "Unavailable",
    "UnsupportedMediaType",
    "required",
]


class PayloadTooLarge(InputError):
    """A request body, a file or a field exceeds its configured limit (413)."""


class UnsupportedMediaType(InputError):
    """The request body is not of a type the endpoint accepts (415)."""


class AuthenticationRequired(FotaError):
    """No credentials, or wrong ones (401). ``scheme`` goes into ``WWW-Authenticate``."""

    def __init__(self, message: str = "authentication required", *, basic: bool = True) -> None:
        super().__init__(message)
        self.basic = basic


class Forbidden(FotaError):
    """Valid credentials without the role the endpoint needs, or TLS missing (403)."""


class Throttled(FotaError):
    """Too many failed authentication attempts from one client or for one user (429)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed authentication attempts; retry in {retry_after} s")
        self.retry_after = retry_after


class Unavailable(StorageError):
    """The database or the blob store cannot be reached right now (503)."""


class RequestTimeout(FotaError):
    """The request body did not arrive within the configured time (408)."""


class MissingParameter(InputError):
    """A required parameter is absent (400; a present but malformed one is 422)."""

    def __init__(self, field: str) -> None:
        super().__init__(field, "is required")


def required(field: str, value: str | None) -> str:
    """``value``, or :class:`MissingParameter` for ``field`` when it is absent."""
    if value is None:
        raise MissingParameter(field)
    return value


class BadRequest(InputError):
    """The request is syntactically broken (malformed multipart body, ...) (400)."""
