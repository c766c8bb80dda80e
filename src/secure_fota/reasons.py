"""Stable reason codes for every way a device can refuse a release.

The same strings are used by the Python reference device, the host C tool and the ESP-IDF
component (as ``SECURE_OTA_ERR_*`` codes), and appear in JSON output. They are part of the
public format (``docs/formats.md``): never rename one, only add.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Reason"]


class Reason(StrEnum):
    """Why a release was refused, in the order the checks run; then why an answer of the
    server could not be used at all (the transport reasons, which judge no release)."""

    # -- manifest envelope -------------------------------------------------------------
    MANIFEST_TOO_LARGE = "manifest_too_large"
    MANIFEST_MALFORMED = "manifest_malformed"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    MANIFEST_DECRYPT_FAILED = "manifest_decrypt_failed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    INVALID_CLAIMS = "invalid_claims"
    UNSUPPORTED_FORMAT = "unsupported_format"
    # -- update decision ---------------------------------------------------------------
    WRONG_DEVICE_TYPE = "wrong_device_type"
    WRONG_CHIP = "wrong_chip"
    ALREADY_INSTALLED = "already_installed"
    ROLLBACK = "rollback"
    SECURE_VERSION_TOO_LOW = "secure_version_too_low"
    EXPIRED = "expired"
    IMAGE_TOO_LARGE = "image_too_large"
    # -- freshness (nonce-bound statement from the server) -----------------------------
    FRESHNESS_INVALID = "freshness_invalid"
    STALE_MANIFEST = "stale_manifest"
    # -- image -------------------------------------------------------------------------
    IMAGE_SIZE_MISMATCH = "image_size_mismatch"
    ENC_DIGEST_MISMATCH = "enc_digest_mismatch"
    IMAGE_HEADER_INVALID = "image_header_invalid"
    IMAGE_DECRYPT_FAILED = "image_decrypt_failed"
    IMAGE_DIGEST_MISMATCH = "image_digest_mismatch"
    IMAGE_INVALID = "image_invalid"
    SECURE_BOOT_SIGNATURE_INVALID = "secure_boot_signature_invalid"
    # -- the server's answer (transport; nothing was judged) ---------------------------
    CONNECTION_FAILED = "connection_failed"
    TIMEOUT = "timeout"
    UNEXPECTED_STATUS = "unexpected_status"
    BAD_HEADER = "bad_header"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    REDIRECT_REFUSED = "redirect_refused"
