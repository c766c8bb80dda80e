"""HTTP conditional and range requests (RFC 9110 §13, §14), as pure functions.

Decisions: a ``Range`` header that is syntactically invalid, uses another unit or asks for
several ranges is ignored (the whole representation is sent with 200, which RFC 9110
permits); a single range that starts at or beyond the end is 416.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["ByteRange", "Unsatisfiable", "etag_matches", "if_range_allows", "parse_range"]

_SPEC: Final = re.compile(r"\s*([0-9]{0,19})\s*-\s*([0-9]{0,19})\s*")


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(Exception):
    """The range lies beyond the representation: answer 416 with ``bytes */size``."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range ``header`` asks for, or ``None`` to send everything.

    Raises :class:`Unsatisfiable` for a well-formed range outside ``0..size-1``."""
    if header is None:
        return None
    unit, eq, specs = header.partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in specs:
        return None
    match = _SPEC.fullmatch(specs)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignore the header
    if start >= size:
        raise Unsatisfiable
    return ByteRange(start, min(end, size - 1))


def _tags(header: str) -> list[str]:
    return [item.strip() for item in header.split(",") if item.strip()]


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison: ``W/"x"`` matches ``"x"``; ``*`` matches."""
    if not if_none_match:
        return False
    for tag in _tags(if_none_match):
        if tag == "*":
            return True
        if tag.removeprefix("W/") == etag:
            return True
    return False


def if_range_allows(if_range: str | None, etag: str) -> bool:
    """``If-Range`` uses the strong comparison; a date (we send no Last-Modified) never
    matches. ``True`` means the Range header applies."""
    if if_range is None:
        return True
    return if_range.strip() == etag
