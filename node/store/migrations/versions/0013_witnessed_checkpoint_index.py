"""witnessed_checkpoint: index (partner_ori, size) for the largest checkpoint held of a partner.

Every plate query and hotlist pull witnesses the partner's checkpoint against the largest
one held, so that lookup must not sort all of the partner's rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_witnessed_checkpoint_partner_ori", table_name="witnessed_checkpoint")
    op.create_index(
        "ix_witnessed_checkpoint_partner_size", "witnessed_checkpoint", ["partner_ori", "size"]
    )


def downgrade() -> None:
    op.drop_index("ix_witnessed_checkpoint_partner_size", table_name="witnessed_checkpoint")
    op.create_index("ix_witnessed_checkpoint_partner_ori", "witnessed_checkpoint", ["partner_ori"])
