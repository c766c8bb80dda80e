"""The plain records the repository takes and returns: immutable, safe to cache and to share
between requests. ORM rows never leave :mod:`secure_fota.server.db`."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Generic, TypeVar

_Item = TypeVar("_Item")

__all__ = [
    "DeviceTypeSummary",
    "NewRelease",
    "Page",
    "ReleaseInfo",
    "TokenInfo",
    "UiSessionInfo",
    "UserInfo",
]


@dataclass(frozen=True, slots=True)
class NewRelease:
    """An upload, parsed and checked: its names and its two stored blobs."""

    device_type: str
    seq: int
    fw_name: str
    manifest_sha256: str
    manifest_size: int
    binary_sha256: str
    binary_size: int


@dataclass(frozen=True, slots=True)
class ReleaseInfo(NewRelease):
    """A stored release: what was uploaded, when and by whom, and whether it is yanked."""

    uploaded_at: datetime.datetime
    uploader: str
    yanked: bool


@dataclass(frozen=True, slots=True)
class DeviceTypeSummary:
    device_type: str
    newest: int | None
    releases: int


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An uploader or admin (the password only as its Argon2id hash)."""

    name: str
    password_hash: str
    role: str
    created_at: datetime.datetime
    disabled: bool


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A bearer token (only the SHA-256 of its secret)."""

    name: str
    token_sha256: str
    role: str
    device_type: str | None
    per_device: bool
    created_at: datetime.datetime
    revoked: bool


@dataclass(frozen=True, slots=True)
class UiSessionInfo:
    """A live dashboard session and its user as the users table has them now."""

    user_name: str
    role: str
    csrf_token: str
    expires_at: datetime.datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[_Item]):
    """One page of a filtered listing: its items and how many match the filter in all."""

    items: list[_Item]
    total: int
