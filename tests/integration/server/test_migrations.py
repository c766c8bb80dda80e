"""Alembic migrations on SQLite, PostgreSQL and MariaDB: they match the models, they are
idempotent, and concurrent start-ups (several processes at once) do not break them."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from secure_fota.devtools.harness import fota_argv
from secure_fota.server.db.engine import create_engine
from secure_fota.server.db.migrate import current_revision, head_revision, upgrade
from secure_fota.server.db.models import BINARY_COLLATION, Base
from secure_fota.server.db.repository import Repository
from tests.integration.server.conftest import DATABASES, fresh_database


def _diff(sync_connection: Any) -> list[Any]:
    context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


@pytest.mark.parametrize("database", DATABASES)
def test_migrations_match_models_and_are_idempotent(database: str, tmp_path: Path):
    with fresh_database(database, tmp_path) as url:

        async def run() -> None:
            engine = create_engine(url)
            try:
                await upgrade(engine)
                await upgrade(engine)  # a second run is a no-op
                assert await current_revision(engine) == head_revision()
                async with engine.connect() as connection:
                    differences = await connection.run_sync(_diff)
                assert differences == [], differences
                assert await Repository(engine).generation() == 0
            finally:
                await engine.dispose()

        asyncio.run(run())


@pytest.mark.parametrize("database", DATABASES)
def test_concurrent_upgrades_from_several_processes(database: str, tmp_path: Path):
    with fresh_database(database, tmp_path) as url:
        env_url = url
        processes = [
            subprocess.Popen(
                fota_argv("server", "db", "upgrade", "--data-dir", str(tmp_path / "data")),
                env={"FOTA_DATABASE_URL": env_url, "PATH": "/usr/bin:/bin"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [process.communicate(timeout=120) for process in processes]
        for process, (stdout, stderr) in zip(processes, results, strict=True):
            assert process.returncode == 0, stderr
            assert f"revision {head_revision()}" in stdout

        async def check() -> None:
            engine = create_engine(url)
            try:
                assert await current_revision(engine) == head_revision()
                assert await Repository(engine).generation() == 0
            finally:
                await engine.dispose()

        asyncio.run(check())


def test_every_string_column_is_binary_on_mariadb(tmp_path: Path):
    """Names compare exactly (issue 14): MariaDB's default collations fold case and accents,
    so every table (and so every column a later revision adds) must be utf8mb4_bin."""
    with fresh_database("mariadb", tmp_path) as url:

        async def run() -> list[tuple[str, str, str]]:
            engine = create_engine(url)
            try:
                await upgrade(engine)
                async with engine.connect() as connection:
                    columns = await connection.execute(
                        text(
                            "SELECT table_name, column_name, collation_name"
                            " FROM information_schema.columns WHERE table_schema = DATABASE()"
                            " AND collation_name IS NOT NULL AND table_name != 'alembic_version'"
                        )
                    )
                    tables = await connection.execute(
                        text(
                            "SELECT table_name, '', table_collation FROM information_schema.tables"
                            " WHERE table_schema = DATABASE() AND table_name != 'alembic_version'"
                        )
                    )
                    return [tuple(row) for row in [*columns, *tables]]
            finally:
                await engine.dispose()

        found = asyncio.run(run())
    assert found
    assert [row for row in found if row[2] != BINARY_COLLATION] == []
