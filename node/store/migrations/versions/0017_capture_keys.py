"""capture keys: the ids cameras give frames and reads, so a repeat is answered, not stored.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "capture_key",
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("answer", sa.LargeBinary(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("camera_id", "key"),
    )
    op.create_index("ix_capture_key_taken_at", "capture_key", ["taken_at"])


def downgrade() -> None:
    op.drop_index("ix_capture_key_taken_at", table_name="capture_key")
    op.drop_table("capture_key")
