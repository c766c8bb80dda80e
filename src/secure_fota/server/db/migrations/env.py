"""Alembic environment: run by :mod:`secure_fota.server.db.migrate` on a live connection
(``config.attributes["connection"]``), or offline to print SQL (``alembic ... --sql``)."""

from __future__ import annotations

from alembic import context

from secure_fota.server.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "migrations run through `fota server db upgrade` (secure_fota.server.db.migrate)"
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
