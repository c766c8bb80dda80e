"""The exception hierarchy of secure-fota.

Every error the project raises on purpose is a :class:`FotaError`. Each surface translates
it exactly once: the CLI into one line and its ``exit_code``, the HTTP edges (the update
server, the author's local service) into its ``http_status`` and the JSON body of
:func:`secure_fota.wire.error_body`, the device into a typed result. Anything else escaping a
boundary is a bug.

Cryptographic failures never say *why* a check failed (padding, tag, key), only *which*
check failed, so that the messages cannot serve as an oracle.
"""

from __future__ import annotations

from secure_fota.reasons import Reason

__all__ = [
    "BadRequest",
    "ConfigError",
    "ConflictError",
    "FormatError",
    "FotaError",
    "InputError",
    "KeyMaterialError",
    "MissingParameter",
    "NotFoundError",
    "ReleaseRejected",
    "StorageError",
    "TransportError",
    "VerificationError",
    "required",
]


class FotaError(Exception):
    """Base class of every error secure-fota raises on purpose."""

    #: process exit status used by the CLI for this kind of error
    exit_code: int = 1
    #: HTTP status an HTTP edge answers with (500: a fault of ours, its message not shown)
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(FotaError):
    """A value given by the user (option, field, parameter) is not acceptable.

    ``field`` names the offending input so that every surface can point at it.
    """

    exit_code = 2
    http_status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class MissingParameter(InputError):
    """A required parameter is absent (400; a present but malformed one is 422)."""

    http_status = 400

    def __init__(self, field: str) -> None:
        super().__init__(field, "is required")


class BadRequest(InputError):
    """The request is syntactically broken (malformed multipart body, ...) (400)."""

    http_status = 400


def required(field: str, value: str | None) -> str:
    """``value``, or :class:`MissingParameter` for ``field`` when it is absent."""
    if value is None:
        raise MissingParameter(field)
    return value


class FormatError(FotaError):
    """Bytes that should be in one of our formats are malformed, truncated or oversized.

    ``what`` names the format ("app image", "encrypted image header", "manifest", ...).
    ``reason`` is the device-facing reason code when the parser knows it.
    """

    http_status = 422

    def __init__(self, what: str, message: str, *, reason: Reason | None = None) -> None:
        super().__init__(f"invalid {what}: {message}")
        self.what = what
        self.detail = message
        self.reason = reason


class KeyMaterialError(FotaError):
    """A key is missing, unreadable, of the wrong type or of the wrong size."""


class VerificationError(FotaError):
    """A cryptographic check failed. ``check`` names the check, never the internal cause."""

    def __init__(self, check: str, message: str | None = None) -> None:
        super().__init__(message or f"{check} verification failed")
        self.check = check


class ReleaseRejected(FotaError):
    """A device refuses a release. ``reason`` is the stable code shared with the C core."""

    exit_code = 3

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"release rejected ({reason.value}): {message}")
        self.reason = reason
        self.detail = message


class NotFoundError(FotaError):
    """A file, release or device type does not exist."""

    http_status = 404


class ConflictError(FotaError):
    """An operation contradicts what already exists (for example a different re-upload)."""

    http_status = 409


class StorageError(FotaError):
    """Storing or reading a blob or a database row failed (503: retry later)."""

    http_status = 503


class TransportError(FotaError):
    """A network exchange failed (connection, TLS, time-out, unexpected status or size); an
    HTTP edge that depended on it answers 502. ``reason`` is the device-facing transport
    reason code (``connection_failed``, ``timeout``, ...) when the device's client raised it."""

    http_status = 502

    def __init__(
        self, message: str, *, status_code: int | None = None, reason: Reason | None = None
    ) -> None:
        super().__init__(f"{message} [{reason.value}]" if reason is not None else message)
        self.status_code = status_code
        self.reason = reason
        self.detail = message


class ConfigError(FotaError):
    """Configuration is missing or inconsistent."""
