"""hotlists: the agency's own lists and the lists received from partners.

Each keeps every field but the plate encrypted, a thousand entries to a chunk (HOT-2).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hotlist",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", AutoString(length=100), nullable=False),
        sa.Column("description", AutoString(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "hotlist_chunk",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fields", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "hotlist_entry",
        sa.Column("id", AutoString(length=36), nullable=False),
        sa.Column("hotlist_id", sa.Integer(), nullable=False),
        sa.Column("plate", AutoString(length=16), nullable=False),
        sa.Column("is_partial", sa.Boolean(), nullable=False),
        sa.Column("chunk_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_how", AutoString(length=16), nullable=False),
        sa.ForeignKeyConstraint(["chunk_id"], ["hotlist_chunk.id"]),
        sa.ForeignKeyConstraint(["hotlist_id"], ["hotlist.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_hotlist_entry_hotlist_id", "hotlist_entry", ["hotlist_id"])
    op.create_index("ix_hotlist_entry_plate", "hotlist_entry", ["plate"])
    op.create_index("ix_hotlist_entry_version", "hotlist_entry", ["version"])
    op.create_table(
        "hotlist_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "partner_hotlist",
        sa.Column("issuer_ori", AutoString(length=9), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agreement_id", AutoString(length=36), nullable=False),
        sa.Column("snapshot_digest", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("issuer_ori"),
    )
    op.create_index("ix_partner_hotlist_expires_at", "partner_hotlist", ["expires_at"])
    op.create_table(
        "partner_chunk",
        sa.Column("issuer_ori", AutoString(length=9), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("entry_ids", sa.LargeBinary(), nullable=False),
        sa.Column("plates", sa.LargeBinary(), nullable=False),
        sa.Column("fields", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["issuer_ori"], ["partner_hotlist.issuer_ori"]),
        sa.PrimaryKeyConstraint("issuer_ori", "chunk"),
    )
    op.create_table(
        "partner_ended",
        sa.Column("issuer_ori", AutoString(length=9), nullable=False),
        sa.Column("entry_id", AutoString(length=36), nullable=False),
        sa.ForeignKeyConstraint(["issuer_ori"], ["partner_hotlist.issuer_ori"]),
        sa.PrimaryKeyConstraint("issuer_ori", "entry_id"),
    )


def downgrade() -> None:
    op.drop_table("partner_ended")
    op.drop_table("partner_chunk")
    op.drop_index("ix_partner_hotlist_expires_at", table_name="partner_hotlist")
    op.drop_table("partner_hotlist")
    op.drop_table("hotlist_version")
    op.drop_index("ix_hotlist_entry_version", table_name="hotlist_entry")
    op.drop_index("ix_hotlist_entry_plate", table_name="hotlist_entry")
    op.drop_index("ix_hotlist_entry_hotlist_id", table_name="hotlist_entry")
    op.drop_table("hotlist_entry")
    op.drop_table("hotlist_chunk")
    op.drop_table("hotlist")
