"""hotlist chunk digests: a snapshot's manifest names each own chunk before reading it.

`ix_hotlist_chunk_sent` covers the manifest's query, so it reads no chunk's row.

`size` is backfilled from the entries of each chunk; `digest` (the SHA-256 of a full
chunk's entries in clear, encrypted with the node's data key) stays empty for chunks
written before: a migration does not hold the data key, so a snapshot reads them to name
them.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NOT NULL with a default the backfill overwrites: on SQLite, making a column NOT NULL
    # afterwards rebuilds the table, which hotlist_entry's foreign key forbids.
    op.add_column(
        "hotlist_chunk", sa.Column("size", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("hotlist_chunk", sa.Column("digest", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE hotlist_chunk SET size ="
        " (SELECT count(*) FROM hotlist_entry WHERE hotlist_entry.chunk_id = hotlist_chunk.id)"
    )
    # What a manifest reads, answered from the index alone; it leads with the version,
    # so the index on the version alone is no longer needed.
    op.create_index("ix_hotlist_chunk_sent", "hotlist_chunk", ["version", "id", "size", "digest"])
    op.drop_index("ix_hotlist_chunk_version", "hotlist_chunk")


def downgrade() -> None:
    op.create_index("ix_hotlist_chunk_version", "hotlist_chunk", ["version"])
    op.drop_index("ix_hotlist_chunk_sent", "hotlist_chunk")
    op.drop_column("hotlist_chunk", "digest")
    op.drop_column("hotlist_chunk", "size")
