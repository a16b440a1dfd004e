"""hotlist chunk cuts: a full chunk with entries ended is kept as it is sent.

A snapshot sends such a chunk as stored in `hotlist_chunk_cut`, written when an entry of
it ends, instead of reading and cutting it twice. Chunks with entries ended before this
table existed have no row: a snapshot cuts them as before.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hotlist_chunk_cut",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ended_slots", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("entry_ids", sa.LargeBinary(), nullable=False),
        sa.Column("plates", sa.LargeBinary(), nullable=False),
        sa.Column("fields", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["id"], ["hotlist_chunk.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("hotlist_chunk_cut")
