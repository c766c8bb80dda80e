"""The devices' index by type and running release (the dashboard's distribution and filter).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_devices_type_seq", "devices", ["device_type", "running_seq", "device_id"])


def downgrade() -> None:
    op.drop_index("ix_devices_type_seq", table_name="devices")
