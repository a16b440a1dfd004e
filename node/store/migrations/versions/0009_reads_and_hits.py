"""reads and hits: plate reads, the hits they raised, and the hit feed's events.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plate_read",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("plate", sa.String(length=8), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("plate_image_sha256", sa.String(length=64), nullable=False),
        sa.Column("vehicle_image_sha256", sa.String(length=64), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_plate_read_plate", "plate_read", ["plate"])
    op.create_index("ix_plate_read_captured_at", "plate_read", ["captured_at"])
    op.create_table(
        "hit",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("read_id", sa.String(length=36), nullable=False),
        sa.Column("list_id", sa.String(length=120), nullable=False),
        sa.Column("issuer_ori", sa.String(length=9), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("listed", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("retrospective", sa.Boolean(), nullable=False),
        sa.Column("disposition", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["read_id"], ["plate_read.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_hit_read_id", "hit", ["read_id"])
    op.create_index("ix_hit_entry_id", "hit", ["entry_id"])
    op.create_table(
        "hit_event",
        sa.Column("cursor", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("hit_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cursor"),
    )
    cursor = op.create_table(
        "hit_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(cursor, [{"id": 1, "last": 0}])


def downgrade() -> None:
    op.drop_table("hit_cursor")
    op.drop_table("hit_event")
    op.drop_index("ix_hit_entry_id", table_name="hit")
    op.drop_index("ix_hit_read_id", table_name="hit")
    op.drop_table("hit")
    op.drop_index("ix_plate_read_captured_at", table_name="plate_read")
    op.drop_index("ix_plate_read_plate", table_name="plate_read")
    op.drop_table("plate_read")
