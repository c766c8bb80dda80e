"""Sign-in failures shared by every worker: auth_failures.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from secure_fota.server.db.models import AUTH_KEY_LENGTH, TABLE_OPTIONS, NameString

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    options: dict[str, Any] = dict(TABLE_OPTIONS)  # utf8mb4_bin on MySQL/MariaDB
    op.create_table(
        "auth_failures",
        sa.Column("key", NameString(AUTH_KEY_LENGTH), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_auth_failures")),
        **options,
    )
    op.create_index(op.f("ix_auth_failures_window_start"), "auth_failures", ["window_start"])


def downgrade() -> None:
    op.drop_index(op.f("ix_auth_failures_window_start"), table_name="auth_failures")
    op.drop_table("auth_failures")
