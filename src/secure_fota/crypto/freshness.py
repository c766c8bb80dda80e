"""Freshness statements: the server's nonce-bound, signed answer to "what is the newest release
of my device type?" (docs/formats.md §7).

A device sends a random nonce with its poll; the newest-manifest endpoints answer with a short
JWS, signed by the server's online freshness key (EC P-256, ES256), that states one of two
**answers** for that nonce and device type: ``newest`` (the newest release is ``seq``, whose
manifest has SHA-256 ``manifest_sha256``; on 200 and 304) or ``none`` (this device type has no
release; on 404). A device that checks it knows that what it got — a manifest, "not modified"
or "nothing" — is the server's current answer, without needing a clock. Unknown members are
refused, so a statement means exactly what its answer says. A server (or its key) that is
compromised can still freeze devices, but only until the installed manifest's ``exp``.
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
    "ANSWER_NEWEST",
    "ANSWER_NONE",
    "FRESHNESS_TYP",
    "FreshnessSigner",
    "FreshnessStatement",
    "open_statement",
    "parse_statement",
]

FRESHNESS_TYP: Final = "fota-freshness+jwt"
#: the answers a statement can give
ANSWER_NEWEST: Final = "newest"
ANSWER_NONE: Final = "none"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_STATEMENT: Final = 2048
_INVALID = Reason.FRESHNESS_INVALID
_COMMON: Final = frozenset({"answer", "device_type", "nonce", "iat", "device_id"})
_MEMBERS: Final = {
    ANSWER_NEWEST: _COMMON | {"seq", "manifest_sha256"},
    ANSWER_NONE: _COMMON,
}


@dataclass(frozen=True, slots=True)
class FreshnessStatement:
    """One statement. ``seq`` and ``manifest_sha256`` are set exactly for ``answer`` newest;
    ``device_id`` only when the server knows which device polls."""

    device_type: str
    seq: int | None
    manifest_sha256: str | None
    nonce: str
    iat: int
    answer: str = ANSWER_NEWEST
    device_id: str | None = None

    def to_json(self) -> bytes:
        import json

        payload: dict[str, Any] = {
            "answer": self.answer,
            "device_type": self.device_type,
            "nonce": self.nonce,
            "iat": self.iat,
        }
        if self.answer == ANSWER_NEWEST:
            payload |= {"seq": self.seq, "manifest_sha256": self.manifest_sha256}
        if self.device_id is not None:
            payload["device_id"] = self.device_id
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


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
        seq: int | None,
        manifest_sha256: str | None,
        nonce: str,
        iat: int | None = None,
        answer: str = ANSWER_NEWEST,
        device_id: str | None = None,
    ) -> str:
        """The statement "the newest release is ``seq``, manifest ``manifest_sha256``" for one
        poll (``iat``: the clock's time unless given); ``answer`` none: :meth:`sign_none`."""
        statement = FreshnessStatement(
            device_type=device_type,
            seq=seq,
            manifest_sha256=manifest_sha256,
            nonce=nonce,
            iat=int(self._clock()) if iat is None else iat,
            answer=answer,
            device_id=device_id,
        )
        return self._signer.sign(statement.to_json())

    def sign_none(
        self, *, device_type: str, nonce: str, iat: int | None = None, device_id: str | None = None
    ) -> str:
        """The statement "``device_type`` has no release" for one poll (an HTTP 404)."""
        return self.sign(
            device_type=device_type,
            seq=None,
            manifest_sha256=None,
            nonce=nonce,
            iat=iat,
            answer=ANSWER_NONE,
            device_id=device_id,
        )


def _field(payload: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise FormatError("freshness statement", f"{name} is missing or malformed", reason=_INVALID)
    return value


def _name(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise FormatError("freshness statement", f"{name} is missing or malformed", reason=_INVALID)
    try:
        return check_name(name, value)
    except InputError as exc:
        raise FormatError("freshness statement", str(exc), reason=_INVALID) from None


def parse_statement(payload: bytes) -> FreshnessStatement:
    """Validate a statement's payload (§7 step 1); :class:`FormatError` (``freshness_invalid``)."""
    claims = parse_json_object("freshness statement", payload, reason=_INVALID)
    answer = claims.get("answer")
    if not isinstance(answer, str) or answer not in _MEMBERS:
        raise FormatError("freshness statement", "answer is missing or unknown", reason=_INVALID)
    unknown = set(claims) - _MEMBERS[answer]
    if unknown:
        raise FormatError(
            "freshness statement",
            f"unknown members for answer {answer!r}: {', '.join(sorted(unknown))}",
            reason=_INVALID,
        )
    device_type = _name(claims, "device_type")
    device_id = _name(claims, "device_id") if "device_id" in claims else None
    iat = json_int(claims.get("iat"))
    if iat is None or not 0 <= iat <= 2**53 - 1:
        raise FormatError("freshness statement", "iat missing or out of range", reason=_INVALID)
    seq: int | None = None
    digest: str | None = None
    if answer == ANSWER_NEWEST:
        seq = json_int(claims.get("seq"))
        if seq is None or not 0 <= seq <= MAX_SEQ:
            raise FormatError("freshness statement", "seq missing or out of range", reason=_INVALID)
        digest = _field(claims, "manifest_sha256", _HEX64)
    return FreshnessStatement(
        device_type=device_type,
        seq=seq,
        manifest_sha256=digest,
        nonce=_field(claims, "nonce", NONCE_PATTERN),
        iat=iat,
        answer=answer,
        device_id=device_id,
    )


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
    return parse_statement(payload)
