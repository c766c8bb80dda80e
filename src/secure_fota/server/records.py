"""Immutable snapshots of database rows, safe to cache and share between requests."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from secure_fota.server.db.models import Release

__all__ = ["ReleaseInfo"]


@dataclass(frozen=True, slots=True)
class ReleaseInfo:
    device_type: str
    seq: int
    fw_name: str
    manifest_sha256: str
    manifest_size: int
    binary_sha256: str
    binary_size: int
    uploaded_at: datetime.datetime
    uploader: str
    yanked: bool

    @classmethod
    def from_row(cls, row: Release) -> ReleaseInfo:
        return cls(
            device_type=row.device_type,
            seq=row.seq,
            fw_name=row.fw_name,
            manifest_sha256=row.manifest_sha256,
            manifest_size=row.manifest_size,
            binary_sha256=row.binary_sha256,
            binary_size=row.binary_size,
            uploaded_at=row.uploaded_at,
            uploader=row.uploader,
            yanked=row.yanked,
        )
