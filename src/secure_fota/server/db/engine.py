"""Engine construction for SQLite (WAL, BEGIN IMMEDIATE), PostgreSQL (asyncpg) and
MySQL/MariaDB (aiomysql), with pre-ping so that a database outage heals without a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from secure_fota.errors import ConfigError

__all__ = ["create_engine", "normalise_url", "sqlite_path"]

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
    "mariadb+aiomysql": "mysql+aiomysql",
}
_SUPPORTED = {"sqlite+aiosqlite", "postgresql+asyncpg", "mysql+aiomysql"}


def normalise_url(text: str) -> URL:
    """Parse a database URL and pick our async driver for it."""
    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigError("database_url is not a valid SQLAlchemy URL") from None
    driver = _DRIVERS.get(url.drivername, url.drivername)
    if driver not in _SUPPORTED:
        raise ConfigError(
            f"database_url: unsupported database {url.drivername!r} "
            "(use sqlite://, postgresql:// or mysql:// / mariadb://)"
        )
    url = url.set(drivername=driver)
    if driver.startswith("mysql") and "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


def sqlite_path(text: str) -> Path | None:
    """The database file of a SQLite URL (None: another database, or in memory)."""
    url = normalise_url(text)
    database = url.database
    if not url.drivername.startswith("sqlite") or not database or database == ":memory:":
        return None
    if database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(database)


def create_engine(text: str, *, pool_size: int = 10, connect_timeout: float = 5.0) -> AsyncEngine:
    url = normalise_url(text)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.drivername.startswith("sqlite"):
        options["connect_args"] = {"timeout": 30}
        engine = create_async_engine(url, **options)
        _sqlite_events(engine)
        return engine
    options.update(pool_size=pool_size, max_overflow=pool_size, pool_timeout=connect_timeout)
    options["pool_recycle"] = 1800
    if url.drivername.startswith("postgresql"):
        options["connect_args"] = {"timeout": connect_timeout, "command_timeout": 30}
    else:
        options["connect_args"] = {"connect_timeout": int(max(1, connect_timeout))}
    return create_async_engine(url, **options)


def _sqlite_events(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control from the driver, so that BEGIN IMMEDIATE below is ours
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        # writers queue on the lock instead of failing with SQLITE_BUSY on upgrade
        connection.exec_driver_sql("BEGIN IMMEDIATE")
