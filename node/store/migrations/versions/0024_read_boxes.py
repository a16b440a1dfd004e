"""read boxes: where in its frame a read's plate was found (CAP-1).

A read the node found in a frame keeps the detector's box, in the frame's pixels; a read a
camera made itself and sent has none, nor has any read stored before.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOX = ("box_x0", "box_y0", "box_x1", "box_y1")


def upgrade() -> None:
    for name in BOX:
        op.add_column("plate_read", sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    # In place, not in batch: a batch copy would rebuild plate_read, which hit's foreign key
    # names. SQLite drops a column in place since 3.35 (2021).
    for name in reversed(BOX):
        op.drop_column("plate_read", name)
