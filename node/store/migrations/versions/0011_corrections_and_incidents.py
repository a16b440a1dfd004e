"""corrections and incidents: corrections of misreads (CAP-4), security incidents (SEC-3).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "read_correction",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("read_id", sa.String(length=36), nullable=False),
        sa.Column("plate", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("corrected_by", sa.String(length=400), nullable=False),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["read_id"], ["plate_read.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_read_correction_read_id", "read_correction", ["read_id"])
    op.create_index("ix_read_correction_plate", "read_correction", ["plate"])
    op.create_table(
        "security_incident",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("affected_records", sa.Integer(), nullable=False),
        sa.Column("affected_persons", sa.Integer(), nullable=False),
        sa.Column("attorney_general_form", sa.Boolean(), nullable=False),
        sa.Column("recorded_by", sa.String(length=400), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("security_incident")
    op.drop_index("ix_read_correction_plate", table_name="read_correction")
    op.drop_index("ix_read_correction_read_id", table_name="read_correction")
    op.drop_table("read_correction")
