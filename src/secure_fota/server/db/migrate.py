"""Apply Alembic migrations under a lock, so that concurrent starts (several workers, several
hosts) cannot break each other: PostgreSQL advisory lock, MySQL/MariaDB ``GET_LOCK``, and an
exclusive file lock next to a SQLite database."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import anyio
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from secure_fota.server.errors import Unavailable

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "head_revision", "upgrade"]

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
#: arbitrary constant identifying our migration lock among PostgreSQL advisory locks
_PG_LOCK_KEY: Final = 0x5F07A_0001
_MYSQL_LOCK: Final = "secure_fota_migrations"
_LOCK_TIMEOUT: Final = 120


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _sqlite_lock_path(connection: AsyncConnection) -> Path | None:
    database = connection.engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(database).with_name(Path(database).name + ".migrate-lock")


@contextlib.asynccontextmanager
async def _lock(connection: AsyncConnection) -> AsyncIterator[None]:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        await connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
        await connection.commit()
        try:
            yield
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            await connection.commit()
    elif dialect in ("mysql", "mariadb"):
        got = await connection.scalar(
            text("SELECT GET_LOCK(:n, :t)"), {"n": _MYSQL_LOCK, "t": _LOCK_TIMEOUT}
        )
        await connection.commit()
        if got != 1:
            raise Unavailable("timed out waiting for another server's database migration")
        try:
            yield
        finally:
            await connection.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": _MYSQL_LOCK})
            await connection.commit()
    else:
        path = _sqlite_lock_path(connection)
        if path is None:
            yield
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await anyio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _upgrade(sync_connection: Any) -> None:
    config = alembic_config()
    config.attributes["connection"] = sync_connection
    command.upgrade(config, "head")


def _current(sync_connection: Any) -> str | None:
    return MigrationContext.configure(sync_connection).get_current_revision()


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema (a no-op when it already is)."""
    async with engine.connect() as connection, _lock(connection):
        await connection.run_sync(_upgrade)
        await connection.commit()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)
