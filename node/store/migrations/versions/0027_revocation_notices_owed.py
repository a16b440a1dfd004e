"""revocation notices owed: our signed notice kept until the partner takes it.

A revocation stops all flow at once on our side; the partner, told by our notice, stops
on its own. A partner unreachable at that moment is told by the job that retries.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agreement") as batch:
        batch.add_column(sa.Column("notice_owed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agreement") as batch:
        batch.drop_column("notice_owed")
