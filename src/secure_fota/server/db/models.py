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
    Index,
    Integer,
    MetaData,
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
    "Base",
    "NameString",
    "Release",
    "ServerState",
    "Token",
    "UiSession",
    "User",
    "UtcDateTime",
]

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
