"""The plain records the repository takes and returns: immutable, safe to cache and to share
between requests. ORM rows never leave :mod:`secure_fota.server.db`."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Generic, TypeVar

_Item = TypeVar("_Item")

__all__ = [
    "AuditInfo",
    "DeviceInfo",
    "DeviceTypeSummary",
    "NewRelease",
    "Page",
    "ReleaseInfo",
    "RolloutInfo",
    "RolloutProgress",
    "StageProgress",
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
    #: reaches devices only through a rollout
    held: bool = False


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


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device of the inventory, and the rollout it was last offered a release by."""

    device_id: str
    device_type: str
    public_key: str | None
    key_source: str
    counter: int
    running_seq: int | None
    version: str | None
    secure_version: int | None
    first_seen: datetime.datetime
    last_seen: datetime.datetime | None
    last_event: str | None
    last_release: int | None
    last_reason: str | None
    last_detail: str | None
    last_report_at: datetime.datetime | None
    rollout_id: int | None = None
    rollout_outcome: str | None = None


@dataclass(frozen=True, slots=True)
class RolloutInfo:
    id: int
    device_type: str
    seq: int
    stages: str
    stage: int
    state: str
    max_failure_rate: float
    min_devices: int
    stage_wait: int
    silent_deadline: int
    created_by: str
    created_at: datetime.datetime
    stage_started_at: datetime.datetime
    finished_at: datetime.datetime | None
    note: str | None

    @property
    def percentages(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.stages.split(","))

    @property
    def percent(self) -> int:
        """The share of the fleet (percent) the current stage offers the release to."""
        return self.percentages[self.stage]

    @property
    def active(self) -> bool:
        return self.state in ("running", "paused")


@dataclass(frozen=True, slots=True)
class StageProgress:
    stage: int
    percent: int
    offered: int = 0
    pending: int = 0
    confirmed: int = 0
    failed: int = 0
    silent: int = 0


@dataclass(frozen=True, slots=True)
class RolloutProgress:
    rollout: RolloutInfo
    stages: tuple[StageProgress, ...]

    @property
    def offered(self) -> int:
        return sum(s.offered for s in self.stages)

    @property
    def confirmed(self) -> int:
        return sum(s.confirmed for s in self.stages)

    @property
    def failed(self) -> int:
        """Failed and silent devices: both count against the threshold."""
        return sum(s.failed + s.silent for s in self.stages)

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self.stages)


@dataclass(frozen=True, slots=True)
class AuditInfo:
    id: int
    at: datetime.datetime
    actor: str
    action: str
    target: str
    detail: str
