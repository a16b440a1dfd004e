"""shared reads: each read sent to a partner, under its reference in that answer (SHR-7).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shared_read",
        sa.Column("exchange_id", sa.String(length=36), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("read_id", sa.String(length=36), nullable=False),
        sa.Column("partner_ori", sa.String(length=9), nullable=False),
        sa.Column("agreement_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("case_number", sa.String(length=64), nullable=False),
        sa.Column("shared_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("exchange_id", "reference"),
    )
    op.create_index("ix_shared_read_read_id", "shared_read", ["read_id"])


def downgrade() -> None:
    op.drop_table("shared_read")
