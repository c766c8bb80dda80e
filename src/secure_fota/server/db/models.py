"""Tables. Changing anything here needs a new Alembic revision (a test checks they match).

Names (user, token, device type, firmware name, uploader) compare exactly on every backend:
SQLite's and PostgreSQL's default collations are binary already; on MySQL/MariaDB, whose default
collations fold case and accents (``ALICE`` = ``alice``, ``Sensor`` = ``sensor``), every name column
is ``utf8mb4_bin`` (:data:`NameString`) and every table is created with :data:`TABLE_OPTIONS`, so
that new string columns are binary too. A new table must use both (a test on MariaDB checks every
string column of every table).
"""

from __future__ import annotations

import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from secure_fota.limits import MAX_NAME_LENGTH

__all__ = [
    "BINARY_COLLATION",
    "GENERATION_ROW",
    "TABLE_OPTIONS",
    "AuditEvent",
    "AuthFailure",
    "Base",
    "Device",
    "NameString",
    "Release",
    "Rollout",
    "RolloutDevice",
    "ServerState",
    "Token",
    "UiSession",
    "User",
    "UtcDateTime",
]

#: ``user:`` + a name (64) or ``client:`` + an address (an IPv6 address with scope fits)
AUTH_KEY_LENGTH: Final = 128

#: the single row of ``server_state`` whose counter changes on every visible change
GENERATION_ROW: Final = 1

#: MySQL/MariaDB collation of every string column: compares code points, no case or accent folding
BINARY_COLLATION: Final = "utf8mb4_bin"
#: table options of every table (only MySQL/MariaDB read them)
TABLE_OPTIONS: Final = {"mysql_charset": "utf8mb4", "mysql_collate": BINARY_COLLATION}


def NameString(length: int = MAX_NAME_LENGTH) -> TypeEngine[str]:  # noqa: N802 -- a column type
    """A name column: ``VARCHAR(length)``, binary-collated on MySQL/MariaDB."""
    binary = mysql.VARCHAR(length, charset="utf8mb4", collation=BINARY_COLLATION)
    return String(length).with_variant(binary, "mysql", "mariadb")


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime.datetime]):
    """Aware UTC datetimes stored as naive UTC (portable across SQLite, PostgreSQL, MySQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(
        self,
        value: datetime.datetime | None,
        dialect: Dialect,  # noqa: ARG002 -- SQLAlchemy API
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(datetime.UTC).replace(tzinfo=None)

    def process_result_value(
        self,
        value: Any,
        dialect: Dialect,  # noqa: ARG002 -- SQLAlchemy API
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite without type detection
            value = datetime.datetime.fromisoformat(value)
        result: datetime.datetime = value.replace(tzinfo=datetime.UTC)
        return result


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Release(Base):
    """One release of one device type; ``seq`` is the seed's ``id``, unique per device type."""

    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("device_type", "seq", name="uq_releases_device_type_seq"),
        Index("ix_releases_newest", "device_type", "yanked", "seq"),
        TABLE_OPTIONS,
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_type: Mapped[str] = mapped_column(NameString())
    seq: Mapped[int] = mapped_column(Integer)
    fw_name: Mapped[str] = mapped_column(NameString())
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    manifest_size: Mapped[int] = mapped_column(Integer)
    binary_sha256: Mapped[str] = mapped_column(String(64))
    binary_size: Mapped[int] = mapped_column(BigInteger)
    uploaded_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    uploader: Mapped[str] = mapped_column(NameString())
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    #: reaches devices only through a rollout (not "newest" for everyone)
    held: Mapped[bool] = mapped_column(Boolean, default=False)


class User(Base):
    """A viewer, uploader or admin who signs in with HTTP Basic or to the dashboard (Argon2id
    password hash)."""

    __tablename__ = "users"
    __table_args__ = TABLE_OPTIONS

    name: Mapped[str] = mapped_column(NameString(), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class Token(Base):
    """A bearer token (SHA-256 of a 256-bit random secret; the secret is shown once)."""

    __tablename__ = "tokens"
    __table_args__ = TABLE_OPTIONS

    name: Mapped[str] = mapped_column(NameString(), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    device_type: Mapped[str | None] = mapped_column(NameString(), nullable=True)
    per_device: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class ServerState(Base):
    """Counters shared by every worker and host; row 1's ``generation`` is bumped in the same
    transaction as every change that devices or caches must see."""

    __tablename__ = "server_state"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger)


class UiSession(Base):
    """A dashboard sign-in: the SHA-256 of the session cookie's random id (the id itself is
    only in the browser), the session's CSRF token, its user and when it ends."""

    __tablename__ = "ui_sessions"
    __table_args__ = TABLE_OPTIONS

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(NameString(), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), index=True)


class Device(Base):
    """One device that has reported: its key, what it runs, and what it said last."""

    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_type", "device_type", "device_id"),
        # the dashboard's release distribution (GROUP BY type, running release) and its device
        # list filtered by type and running release, in device_id order, from the index alone
        Index("ix_devices_type_seq", "device_type", "running_seq", "device_id"),
        TABLE_OPTIONS,
    )

    device_id: Mapped[str] = mapped_column(NameString(), primary_key=True)
    device_type: Mapped[str] = mapped_column(NameString())
    #: SPKI DER, base64url (P-256: 124 characters)
    public_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: "tofu" (registered by its first report) or "operator" (pre-registered)
    key_source: Mapped[str] = mapped_column(String(16))
    counter: Mapped[int] = mapped_column(BigInteger, default=0)
    running_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    secure_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    first_seen: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_event: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_release: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_detail: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_report_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Rollout(Base):
    """A staged rollout of one release: the share of the fleet offered it grows stage by stage
    while the stage's failure rate stays under the threshold."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_type_state", "device_type", "state"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_type: Mapped[str] = mapped_column(NameString())
    seq: Mapped[int] = mapped_column(Integer)
    #: percentages, comma-separated ("1,10,50,100")
    stages: Mapped[str] = mapped_column(String(64))
    stage: Mapped[int] = mapped_column(Integer, default=0)
    #: running, paused, aborted, completed
    state: Mapped[str] = mapped_column(String(16))
    max_failure_rate: Mapped[float] = mapped_column(Float)
    min_devices: Mapped[int] = mapped_column(Integer)
    stage_wait: Mapped[int] = mapped_column(Integer)
    silent_deadline: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(NameString())
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    stage_started_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    note: Mapped[str | None] = mapped_column(String(255), nullable=True)


class RolloutDevice(Base):
    """A device offered a rollout's release: when, in which stage, and how it ended."""

    __tablename__ = "rollout_devices"
    __table_args__ = (
        PrimaryKeyConstraint("rollout_id", "device_id", name="pk_rollout_devices"),
        Index("ix_rollout_devices_outcome", "rollout_id", "outcome"),
        TABLE_OPTIONS,
    )

    rollout_id: Mapped[int] = mapped_column(Integer)
    device_id: Mapped[str] = mapped_column(NameString())
    stage: Mapped[int] = mapped_column(Integer)
    offered_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    #: pending, confirmed, failed, silent
    outcome: Mapped[str] = mapped_column(String(16))
    outcome_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AuditEvent(Base):
    """Every change: who did what to which release, rollout, user or token, and when."""

    __tablename__ = "audit_events"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(NameString())
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(160))
    detail: Mapped[str] = mapped_column(String(255))


class AuthFailure(Base):
    """Failed sign-ins for one key (``user:NAME`` or ``client:ADDRESS``), shared by every
    worker and host: how many since ``window_start`` and, once past the limit, until when the
    key is locked (Unix milliseconds; 0: not locked)."""

    __tablename__ = "auth_failures"
    __table_args__ = TABLE_OPTIONS

    key: Mapped[str] = mapped_column(NameString(AUTH_KEY_LENGTH), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, index=True)
    failures: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[int] = mapped_column(BigInteger)
