"""owed acknowledgements: ours not yet given to the partner survive a restart (AUD-6).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Acknowledgements given before this table existed are taken as delivered: the node
    # that held them delivered each within a second, or on its stop.
    op.create_table(
        "owed_acknowledgement",
        sa.Column("exchange_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["exchange_id"], ["exchange.id"]),
        sa.PrimaryKeyConstraint("exchange_id"),
    )


def downgrade() -> None:
    op.drop_table("owed_acknowledgement")
