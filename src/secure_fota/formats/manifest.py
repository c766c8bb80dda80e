"""The manifest's claim set: what a release says about itself, validated on construction.

A manifest is a JSON object signed (JWS) and then encrypted (JWE) for the fleet; the
envelope lives in :mod:`secure_fota.crypto.manifest`. This module only knows the claims,
their types and their bounds (see ``docs/formats.md``), identically to the C core.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Final

from secure_fota.errors import FormatError, InputError
from secure_fota.formats.encrypted_image import HEADER_SIZE
from secure_fota.formats.jose_compact import json_int
from secure_fota.formats.names import check_name
from secure_fota.formats.secure_boot import Scheme
from secure_fota.limits import MAX_DESC_STRING, MAX_IMAGE_SIZE, MAX_SEQ
from secure_fota.reasons import Reason

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_TYP",
    "ManifestClaims",
]

#: the ``fmt`` claim of the format described in docs/formats.md
MANIFEST_FORMAT: Final = 1
#: the JWS ``typ`` header of a manifest (explicit typing, RFC 8725 §3.11)
MANIFEST_TYP: Final = "fota-manifest+jwt"
#: JSON integers a C double holds exactly
_MAX_JSON_INT: Final = 2**53 - 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_INVALID = Reason.INVALID_CLAIMS


def _bad(message: str, reason: Reason = _INVALID) -> FormatError:
    return FormatError("manifest claims", message, reason=reason)


def _int(claims: dict[str, Any], name: str, low: int, high: int) -> int:
    """An integer claim: a JSON number with an integral value (so ``7``, ``7.0`` and ``7e0``
    are all 7, as for the C core, whose JSON parser cannot tell them apart)."""
    value = json_int(claims.get(name))
    if value is None:
        raise _bad(f"{name} must be an integer")
    if not low <= value <= high:
        raise _bad(f"{name} is {value}, outside {low}..{high}")
    return value


def _text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string")
    if len(value.encode("utf-8")) >= MAX_DESC_STRING:
        raise _bad(f"{name} is longer than {MAX_DESC_STRING - 1} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise _bad(f"{name} contains control characters")
    return value


def _name(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string")
    try:
        return check_name(name, value)
    except InputError as exc:
        raise _bad(str(exc)) from None


def _hex(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _bad(f"{name} must be 64 lowercase hex digits")
    return value


@dataclass(frozen=True, slots=True)
class ManifestClaims:
    """The claims of manifest format 1. Construct with :meth:`from_dict` to validate."""

    fw_name: str
    device_type: str
    seq: int
    version: str
    project: str
    idf_ver: str
    secure_version: int
    chip_id: int
    app_elf_sha256: str
    image_size: int
    image_sha256: str
    enc_size: int
    enc_sha256: str
    secure_boot: Scheme
    iat: int
    exp: int | None = None
    fmt: int = MANIFEST_FORMAT

    @classmethod
    def from_dict(cls, claims: dict[str, Any]) -> ManifestClaims:
        """Validate a decoded claim set; unknown members are ignored (forward compatible)."""
        fmt = _int(claims, "fmt", 0, _MAX_JSON_INT)
        if fmt != MANIFEST_FORMAT:
            raise _bad(
                f"format {fmt} is not supported (this reader knows {MANIFEST_FORMAT})",
                Reason.UNSUPPORTED_FORMAT,
            )
        scheme_text = claims.get("secure_boot")
        try:
            scheme = Scheme(str(scheme_text)) if isinstance(scheme_text, str) else None
        except ValueError:
            scheme = None
        if scheme is None:
            raise _bad(f"secure_boot {scheme_text!r} is not a known scheme") from None
        image_size = _int(claims, "image_size", 1, MAX_IMAGE_SIZE)
        enc_size = _int(claims, "enc_size", 1, MAX_IMAGE_SIZE + HEADER_SIZE)
        if enc_size != image_size + HEADER_SIZE:
            raise _bad(f"enc_size {enc_size} is not image_size + {HEADER_SIZE}")
        iat = _int(claims, "iat", 0, _MAX_JSON_INT)
        exp: int | None = None
        if "exp" in claims:
            exp = _int(claims, "exp", 0, _MAX_JSON_INT)
            if exp <= iat:
                raise _bad(f"exp {exp} is not after iat {iat}")
        return cls(
            fmt=fmt,
            fw_name=_name(claims, "fw_name"),
            device_type=_name(claims, "device_type"),
            seq=_int(claims, "seq", 1, MAX_SEQ),
            version=_text(claims, "version"),
            project=_text(claims, "project"),
            idf_ver=_text(claims, "idf_ver"),
            secure_version=_int(claims, "secure_version", 0, 0xFFFFFFFF),
            chip_id=_int(claims, "chip_id", 0, 0xFFFF),
            app_elf_sha256=_hex(claims, "app_elf_sha256"),
            image_size=image_size,
            image_sha256=_hex(claims, "image_sha256"),
            enc_size=enc_size,
            enc_sha256=_hex(claims, "enc_sha256"),
            secure_boot=scheme,
            iat=iat,
            exp=exp,
        )

    def to_dict(self) -> dict[str, Any]:
        """The claims as a JSON-ready dict (``exp`` left out when unset)."""
        result = asdict(self)
        result["secure_boot"] = self.secure_boot.value
        if self.exp is None:
            del result["exp"]
        return result

    def to_json(self) -> bytes:
        """Compact, key-sorted JSON: the bytes the JWS signs."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
