"""Validation of the names that travel between author, server and device.

Device types, firmware names and user names appear in URLs, database rows and log lines, never
in file paths. They are still held to a strict alphabet so that no layer has to escape them.
"""

from __future__ import annotations

import re

from secure_fota.errors import InputError
from secure_fota.limits import MAX_NAME_LENGTH, MAX_SEQ

__all__ = ["NAME_PATTERN", "check_name", "check_seq"]

#: letters, digits, dot, dash and underscore; starting with a letter or digit
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def check_name(field: str, value: str) -> str:
    """Return ``value`` if it is an acceptable name; else raise :class:`InputError`."""
    if not value:
        raise InputError(field, "must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InputError(field, f"is {len(value)} characters long, the limit is {MAX_NAME_LENGTH}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InputError(field, "must not contain control characters")
    if "/" in value or "\\" in value:
        raise InputError(field, "must not contain path separators")
    if ".." in value:
        raise InputError(field, "must not contain '..'")
    if not NAME_PATTERN.fullmatch(value):
        raise InputError(
            field,
            "may only use letters, digits, '.', '-' and '_', and must start with a letter or digit",
        )
    return value


def check_seq(field: str, value: object) -> int:
    """Return ``value`` as a release sequence number (1 .. 2**31-1) or raise :class:`InputError`."""
    if isinstance(value, bool):
        raise InputError(field, "must be an integer")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 20 or not _INTEGER.fullmatch(text):
            raise InputError(field, f"must be an integer, got {value[:24]!r}")
        value = int(text)
    if not isinstance(value, int):
        raise InputError(field, "must be an integer")
    if value < 1:
        raise InputError(field, f"must be positive, got {value}")
    if value > MAX_SEQ:
        raise InputError(field, f"must be at most {MAX_SEQ}, got {value}")
    return value
