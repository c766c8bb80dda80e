"""Freshness statements: the server's nonce-bound answer to "what is the newest release?".

A device sends a random nonce with its poll; the server answers with the manifest and a short
JWS, signed by its online freshness key (EC P-256, ES256), that binds the nonce to the device
type, the newest ``seq`` and the SHA-256 of the manifest it serves. A device that checks it
knows that what it got is the server's current answer, without needing a clock. A server (or
its key) that is compromised can still freeze devices, but only until the manifest's ``exp``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from secure_fota.crypto.jws import CompactSigner, TrustedKeys, open_signed
from secure_fota.crypto.keys import PrivateKey
from secure_fota.errors import FormatError, InputError
from secure_fota.formats.jose_compact import json_int, parse_json_object
from secure_fota.formats.names import check_name
from secure_fota.limits import MAX_SEQ
from secure_fota.reasons import Reason
from secure_fota.wire import NONCE_PATTERN

__all__ = [
    "FRESHNESS_TYP",
    "FreshnessSigner",
    "FreshnessStatement",
    "open_statement",
]

FRESHNESS_TYP: Final = "fota-freshness+jwt"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_STATEMENT: Final = 2048
_INVALID = Reason.FRESHNESS_INVALID


@dataclass(frozen=True, slots=True)
class FreshnessStatement:
    device_type: str
    seq: int
    manifest_sha256: str
    nonce: str
    iat: int

    def to_json(self) -> bytes:
        import json

        return json.dumps(
            {
                "device_type": self.device_type,
                "seq": self.seq,
                "manifest_sha256": self.manifest_sha256,
                "nonce": self.nonce,
                "iat": self.iat,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()


class FreshnessSigner:
    """Signs statements with the server's online freshness key (ES256 for P-256 keys),
    prepared once: the server signs one per poll. ``iat`` comes from ``clock``."""

    def __init__(self, key: PrivateKey, *, clock: Callable[[], float] = time.time) -> None:
        self._signer = CompactSigner(key, FRESHNESS_TYP)
        self._clock = clock

    def sign(
        self,
        *,
        device_type: str,
        seq: int,
        manifest_sha256: str,
        nonce: str,
        iat: int | None = None,
    ) -> str:
        """The statement for one answer (``iat``: the clock's time unless given)."""
        statement = FreshnessStatement(
            device_type=device_type,
            seq=seq,
            manifest_sha256=manifest_sha256,
            nonce=nonce,
            iat=int(self._clock()) if iat is None else iat,
        )
        return self._signer.sign(statement.to_json())


def _field(payload: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise FormatError("freshness statement", f"{name} is missing or malformed", reason=_INVALID)
    return value


def open_statement(token: bytes | str, trusted: TrustedKeys) -> FreshnessStatement:
    """Verify a statement against the trusted freshness keys and validate its payload.

    Every failure (structure, key, signature, payload) raises :class:`FormatError` with reason
    ``freshness_invalid`` or :class:`VerificationError`.
    """
    if len(token) > _MAX_STATEMENT:
        raise FormatError("freshness statement", "too large", reason=_INVALID)
    try:
        payload, _, _ = open_signed(token, trusted, FRESHNESS_TYP, "freshness statement")
    except FormatError as exc:
        raise FormatError("freshness statement", exc.detail, reason=_INVALID) from None
    claims = parse_json_object("freshness statement", payload, reason=_INVALID)
    device_type = claims.get("device_type")
    seq = json_int(claims.get("seq"))
    iat = json_int(claims.get("iat"))
    if not isinstance(device_type, str) or seq is None or iat is None:
        raise FormatError(
            "freshness statement", "device_type, seq or iat malformed", reason=_INVALID
        )
    try:
        check_name("device_type", device_type)
    except InputError as exc:
        raise FormatError("freshness statement", str(exc), reason=_INVALID) from None
    if not 0 <= seq <= MAX_SEQ or not 0 <= iat <= 2**53 - 1:
        raise FormatError("freshness statement", "seq or iat out of range", reason=_INVALID)
    return FreshnessStatement(
        device_type=device_type,
        seq=seq,
        manifest_sha256=_field(claims, "manifest_sha256", _HEX64),
        nonce=_field(claims, "nonce", NONCE_PATTERN),
        iat=iat,
    )
