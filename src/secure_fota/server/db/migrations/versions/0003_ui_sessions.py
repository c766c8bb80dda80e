"""Dashboard sessions: ui_sessions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from secure_fota.server.db.models import TABLE_OPTIONS, NameString, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    options: dict[str, Any] = dict(TABLE_OPTIONS)  # utf8mb4_bin on MySQL/MariaDB
    op.create_table(
        "ui_sessions",
        sa.Column("id_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_name", NameString(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id_sha256", name=op.f("pk_ui_sessions")),
        **options,
    )
    op.create_index(op.f("ix_ui_sessions_user_name"), "ui_sessions", ["user_name"])
    op.create_index(op.f("ix_ui_sessions_expires_at"), "ui_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ui_sessions_expires_at"), table_name="ui_sessions")
    op.drop_index(op.f("ix_ui_sessions_user_name"), table_name="ui_sessions")
    op.drop_table("ui_sessions")
