"""partner chunk generations: a full snapshot is written as it streams in, used once whole.

A partner's chunks belong to its list while their `generation` is the list's; a snapshot
coming in is written under a new one, so nothing matches it before it has all come and
the list takes it in one short transaction. Chunks may so exist before their list's
record does: their foreign key to it goes, and their key becomes (issuer, generation,
chunk), so that two snapshots of one list can come in at once. On SQLite that rebuilds the
table, which no other table references. Every chunk held now is of generation 0, as is
every list.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Names SQLite's unnamed keys, so that a batch can drop them (PostgreSQL names its own).
NAMING = {
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "%(table_name)s_pkey",
}
SQLITE_NAME = "fk_partner_chunk_issuer_ori_partner_hotlist"
PRIMARY_KEY = "partner_chunk_pkey"


def upgrade() -> None:
    for table in ("partner_hotlist", "partner_chunk"):
        op.add_column(
            table, sa.Column("generation", sa.BigInteger(), nullable=False, server_default="0")
        )
    _rekey(("issuer_ori", "generation", "chunk"), drop_foreign_key=True)


def downgrade() -> None:
    # Chunks of no list (a snapshot half received) cannot keep a foreign key to one.
    op.execute(
        "DELETE FROM partner_chunk WHERE NOT EXISTS (SELECT 1 FROM partner_hotlist h"
        " WHERE h.issuer_ori = partner_chunk.issuer_ori"
        " AND h.generation = partner_chunk.generation)"
    )
    _rekey(("issuer_ori", "chunk"), drop_foreign_key=False)
    with op.batch_alter_table("partner_chunk", naming_convention=NAMING) as batch:
        batch.create_foreign_key(SQLITE_NAME, "partner_hotlist", ["issuer_ori"], ["issuer_ori"])
        batch.drop_column("generation")
    op.drop_column("partner_hotlist", "generation")


def _rekey(columns: Sequence[str], *, drop_foreign_key: bool) -> None:
    """Give partner_chunk the primary key `columns` (on SQLite, by rebuilding the table)."""
    inspector = sa.inspect(op.get_bind())
    foreign_keys = inspector.get_foreign_keys("partner_chunk") if drop_foreign_key else []
    with op.batch_alter_table("partner_chunk", naming_convention=NAMING) as batch:
        for foreign_key in foreign_keys:
            batch.drop_constraint(foreign_key["name"] or SQLITE_NAME, type_="foreignkey")
        batch.drop_constraint(PRIMARY_KEY, type_="primary")
        batch.create_primary_key(PRIMARY_KEY, list(columns))
