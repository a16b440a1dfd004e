"""held_query.since and .until: the window of a query a partner holds, to list it (SHR-5).

An investigator lists the queries partners hold for their approver with the window they
asked (SearchService.ListHeldQueries). A query held before this revision did not keep its
window: the moment it was held stands for both ends, an empty window.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ENDS = ("since", "until")


def upgrade() -> None:
    with op.batch_alter_table("held_query") as table:
        for name in _ENDS:
            table.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE held_query SET since = held_at, until = held_at")
    with op.batch_alter_table("held_query") as table:
        for name in _ENDS:
            table.alter_column(name, nullable=False, existing_type=sa.DateTime(timezone=True))


def downgrade() -> None:
    with op.batch_alter_table("held_query") as table:
        for name in _ENDS:
            table.drop_column(name)
