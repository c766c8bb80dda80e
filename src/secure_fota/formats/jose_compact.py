"""Strict structural parsing of JOSE compact serialisations (RFC 7515 / RFC 7516).

The cryptography is left to the JOSE library; this module only checks the shape before any
key is touched: the number of parts, the base64url alphabet (no padding, no whitespace),
bounded sizes, and headers that are JSON objects without duplicate member names (parsers
disagree on duplicates, so we refuse them, as the C core does).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from secure_fota.errors import FormatError
from secure_fota.reasons import Reason

__all__ = [
    "MAX_JSON_DEPTH",
    "b64url_decode",
    "b64url_encode",
    "json_int",
    "parse_json_object",
    "split_compact",
]

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
#: deepest nesting of arrays and objects accepted in any JOSE header or claim set
MAX_JSON_DEPTH = 32
_MALFORMED = Reason.MANIFEST_MALFORMED


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(what: str, text: str, *, reason: Reason = _MALFORMED) -> bytes:
    """Decode canonical unpadded base64url.

    Refuses any other alphabet, padding, an impossible length, and non-zero unused bits in the
    last character (so that each byte string has exactly one encoding).
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise FormatError(what, "is not unpadded base64url", reason=reason)
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise FormatError(what, "is not unpadded base64url", reason=reason) from None
    if text and b64url_encode(data)[-1] != text[-1]:
        raise FormatError(what, "is not canonical base64url (unused bits set)", reason=reason)
    return data


def json_int(value: object) -> int | None:
    """A JSON integer under docs/formats.md: an integral number (``7``, ``7.0``), not a bool."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53 - 1:
        return int(value)
    if type(value) is int:
        return value
    return None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any, limit: int) -> int:
    if isinstance(value, dict | list):
        if limit == 0:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value
        return 1 + max((_depth(child, limit - 1) for child in children), default=0)
    return 0


def parse_json_object(what: str, raw: bytes, *, reason: Reason = _MALFORMED) -> dict[str, Any]:
    """Parse JSON under the rules of docs/formats.md ("JSON rules"), identical in the C core.

    Strict UTF-8; one object at the top; no duplicate member names in any object; no
    ``\\u0000`` escape anywhere; no lone surrogate escapes; at most 32 levels of nesting.
    """
    if b"\\u0000" in raw.lower():
        raise FormatError(what, "contains the escape \\u0000", reason=reason)
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # refuses lone surrogates
        _depth(value, MAX_JSON_DEPTH)
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise FormatError(what, f"is not valid JSON ({exc})", reason=reason) from None
    if not isinstance(value, dict):
        raise FormatError(what, "is not a JSON object", reason=reason)
    return value


def split_compact(what: str, token: bytes | str, parts: int) -> list[str]:
    """Split a compact serialisation into exactly ``parts`` base64url segments."""
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise FormatError(what, "contains non-ASCII bytes", reason=_MALFORMED) from None
    segments = token.split(".")
    if len(segments) != parts:
        raise FormatError(
            what, f"has {len(segments)} dot-separated parts, expected {parts}", reason=_MALFORMED
        )
    for index, segment in enumerate(segments):
        if not _B64URL.fullmatch(segment):
            raise FormatError(what, f"part {index + 1} is not base64url", reason=_MALFORMED)
    return segments
