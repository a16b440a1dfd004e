"""hotlist chunk columns: each own chunk keeps its version, entry ids and plates.

A full snapshot then reads a thousand chunk rows for a million entries instead of a
million entry rows; only ended entries are read one by one. An index on `ended_at`
finds those without scanning the list.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

from collections.abc import Sequence
from itertools import groupby

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns() -> list[sa.Column[object]]:
    # Added NOT NULL with a default the backfill overwrites: on SQLite, making a column
    # NOT NULL afterwards rebuilds the table, which hotlist_entry's foreign key forbids.
    return [
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("entry_ids", sa.LargeBinary(), nullable=False, server_default=""),
        sa.Column("plates", sa.LargeBinary(), nullable=False, server_default=""),
    ]


def upgrade() -> None:
    for column in _columns():
        op.add_column("hotlist_chunk", column)
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT chunk_id, id, plate, version, ended_at IS NULL FROM hotlist_entry"
            " ORDER BY chunk_id, slot"
        )
    ).all()
    update = sa.text(
        "UPDATE hotlist_chunk SET version = :version, entry_ids = :entry_ids, plates = :plates"
        " WHERE id = :id"
    )
    for chunk_id, group in groupby(rows, key=lambda row: row[0]):
        entries = list(group)
        connection.execute(
            update,
            {
                "id": chunk_id,
                # An entry in force still has the version that added its chunk; a chunk
                # with none in force is never sent again, which version 0 says.
                "version": min((row[3] for row in entries if row[4]), default=0),
                "entry_ids": "\n".join(row[1] for row in entries).encode(),
                "plates": "\n".join(row[2] for row in entries).encode(),
            },
        )
    op.create_index("ix_hotlist_chunk_version", "hotlist_chunk", ["version"])
    op.create_index("ix_hotlist_entry_ended_at", "hotlist_entry", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_hotlist_entry_ended_at", "hotlist_entry")
    op.drop_index("ix_hotlist_chunk_version", "hotlist_chunk")
    with op.batch_alter_table("hotlist_chunk") as table:
        for column in _columns():
            table.drop_column(column.name)
