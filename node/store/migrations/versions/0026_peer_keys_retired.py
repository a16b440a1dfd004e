"""peer keys retired: a partner's former signing keys, kept when our operator replaces one.

What the partner signed before its key was replaced still verifies under the key it was
signed with. Keys replaced before this table existed were not kept: exchanges signed
under them verify only if the key was changed back.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "peer_key_retired",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ori", sa.String(length=9), nullable=False),
        sa.Column("signing_public_key", sa.LargeBinary(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_peer_key_retired_ori", "peer_key_retired", ["ori"])


def downgrade() -> None:
    op.drop_index("ix_peer_key_retired_ori", table_name="peer_key_retired")
    op.drop_table("peer_key_retired")
