"""Names compare exactly on MySQL/MariaDB: every table and string column becomes utf8mb4_bin.

MySQL's and MariaDB's default collations fold case and accents, so that ``ALICE`` signed in as
``alice`` (with a lock-out counter of its own) and device types ``Sensor`` and ``sensor`` were
one. SQLite and PostgreSQL compare exactly already: there this revision changes nothing.
Converting to a binary collation cannot fail on existing rows (values that were equal before
may only become different, never the reverse).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

from secure_fota.server.db.models import BINARY_COLLATION

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TABLES = ("releases", "users", "tokens", "server_state")


def _convert(collation: str | None) -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    clause = "CHARACTER SET utf8mb4" + (f" COLLATE {collation}" if collation else "")
    for table in _TABLES:
        # also the table's default, so that columns added later are binary as well
        op.execute(f"ALTER TABLE {table} CONVERT TO {clause}")


def upgrade() -> None:
    _convert(BINARY_COLLATION)


def downgrade() -> None:
    # back to the character set's default collation (case-insensitive); fails if two names
    # now differ only in case, which is the point of the upgrade
    _convert(None)
