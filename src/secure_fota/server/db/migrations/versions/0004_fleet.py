"""Fleet operations: devices (reports, inventory), rollouts, audit log, held releases.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from secure_fota.server.db.models import TABLE_OPTIONS, NameString, UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: binary collation on MySQL/MariaDB for the new tables and their string columns
_OPTIONS: dict[str, Any] = dict(TABLE_OPTIONS)


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "devices",
        sa.Column("device_id", NameString(), nullable=False),
        sa.Column("device_type", NameString(), nullable=False),
        sa.Column("public_key", sa.String(length=200), nullable=True),
        sa.Column("key_source", sa.String(length=16), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("running_seq", sa.Integer(), nullable=True),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("secure_version", sa.Integer(), nullable=True),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=True),
        sa.Column("last_event", sa.String(length=16), nullable=True),
        sa.Column("last_release", sa.Integer(), nullable=True),
        sa.Column("last_reason", sa.String(length=64), nullable=True),
        sa.Column("last_detail", sa.String(length=200), nullable=True),
        sa.Column("last_report_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_devices")),
        **_OPTIONS,
    )
    op.create_index("ix_devices_type", "devices", ["device_type", "device_id"])
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_type", NameString(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("stages", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("max_failure_rate", sa.Float(), nullable=False),
        sa.Column("min_devices", sa.Integer(), nullable=False),
        sa.Column("stage_wait", sa.Integer(), nullable=False),
        sa.Column("silent_deadline", sa.Integer(), nullable=False),
        sa.Column("created_by", NameString(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("stage_started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("note", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
        **_OPTIONS,
    )
    op.create_index("ix_rollouts_type_state", "rollouts", ["device_type", "state"])
    op.create_table(
        "rollout_devices",
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("device_id", NameString(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("offered_at", UtcDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("outcome_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("rollout_id", "device_id", name="pk_rollout_devices"),
        **_OPTIONS,
    )
    op.create_index("ix_rollout_devices_outcome", "rollout_devices", ["rollout_id", "outcome"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", NameString(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=160), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        **_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_index("ix_rollout_devices_outcome", table_name="rollout_devices")
    op.drop_table("rollout_devices")
    op.drop_index("ix_rollouts_type_state", table_name="rollouts")
    op.drop_table("rollouts")
    op.drop_index("ix_devices_type", table_name="devices")
    op.drop_table("devices")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("held")
