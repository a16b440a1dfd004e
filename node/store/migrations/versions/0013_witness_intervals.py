"""witnessed_checkpoint: cosigned at intervals, looked up by (partner_ori, size).

A partner's log is cosigned at most once per interval; the checkpoints verified between
are kept with `cosigned` false. Every plate query and hotlist pull witnesses against the
largest checkpoint held of its partner, so that lookup walks an index on (partner_ori,
size) instead of sorting all of the partner's rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("witnessed_checkpoint") as table:
        table.add_column(
            sa.Column("cosigned", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.drop_index("ix_witnessed_checkpoint_partner_ori", table_name="witnessed_checkpoint")
    op.create_index(
        "ix_witnessed_checkpoint_partner_size", "witnessed_checkpoint", ["partner_ori", "size"]
    )


def downgrade() -> None:
    op.drop_index("ix_witnessed_checkpoint_partner_size", table_name="witnessed_checkpoint")
    op.create_index("ix_witnessed_checkpoint_partner_ori", "witnessed_checkpoint", ["partner_ori"])
    with op.batch_alter_table("witnessed_checkpoint") as table:
        table.drop_column("cosigned")
