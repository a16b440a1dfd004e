"""hotlist entry order: entries are found by their place, (chunk, slot), on a list or all.

An operator lists a list's entries a page at a time, each page from where the last one
ended; without these indexes each page read, and sorted, every entry before it. The one
on (hotlist_id, chunk_id, slot) replaces that on hotlist_id alone, which it starts with.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_hotlist_entry_chunk_slot", "hotlist_entry", ["chunk_id", "slot"], unique=True
    )
    op.create_index(
        "ix_hotlist_entry_list_chunk_slot", "hotlist_entry", ["hotlist_id", "chunk_id", "slot"]
    )
    op.drop_index("ix_hotlist_entry_hotlist_id", table_name="hotlist_entry")


def downgrade() -> None:
    op.create_index("ix_hotlist_entry_hotlist_id", "hotlist_entry", ["hotlist_id"])
    op.drop_index("ix_hotlist_entry_list_chunk_slot", table_name="hotlist_entry")
    op.drop_index("ix_hotlist_entry_chunk_slot", table_name="hotlist_entry")
