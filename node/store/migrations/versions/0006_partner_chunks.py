"""partner chunks: partner entries point into chunks of encrypted fields.

Partner lists live at most 24 hours, so the old table is dropped rather than converted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_partner_entry_plate", table_name="partner_entry")
    op.drop_table("partner_entry")
    op.execute("DELETE FROM partner_hotlist")
    op.create_table(
        "partner_entry",
        sa.Column("issuer_ori", AutoString(length=9), nullable=False),
        sa.Column("entry_id", AutoString(length=36), nullable=False),
        sa.Column("plate", AutoString(length=16), nullable=False),
        sa.Column("is_partial", sa.Boolean(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["issuer_ori"], ["partner_hotlist.issuer_ori"]),
        sa.PrimaryKeyConstraint("issuer_ori", "entry_id"),
    )
    op.create_index("ix_partner_entry_plate", "partner_entry", ["plate"])
    op.create_table(
        "partner_chunk",
        sa.Column("issuer_ori", AutoString(length=9), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("fields", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["issuer_ori"], ["partner_hotlist.issuer_ori"]),
        sa.PrimaryKeyConstraint("issuer_ori", "chunk"),
    )


def downgrade() -> None:
    op.drop_table("partner_chunk")
    op.drop_index("ix_partner_entry_plate", table_name="partner_entry")
    op.drop_table("partner_entry")
    op.execute("DELETE FROM partner_hotlist")
    op.create_table(
        "partner_entry",
        sa.Column("issuer_ori", AutoString(length=9), nullable=False),
        sa.Column("entry_id", AutoString(length=36), nullable=False),
        sa.Column("plate", AutoString(length=16), nullable=False),
        sa.Column("is_partial", sa.Boolean(), nullable=False),
        sa.Column("fields", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["issuer_ori"], ["partner_hotlist.issuer_ori"]),
        sa.PrimaryKeyConstraint("issuer_ori", "entry_id"),
    )
    op.create_index("ix_partner_entry_plate", "partner_entry", ["plate"])
