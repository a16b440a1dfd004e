"""audit subtrees: the hash of every perfect subtree of the audit log, backfilled.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# RFC 9162's interior node prefix, and the rows read or written at a time. Spelled out
# (not imported from node.merkle) so this revision stays what it was when code changes.
NODE_PREFIX = b"\x01"
BATCH = 1000

EVENTS = sa.table(
    "audit_event", sa.column("seq", sa.BigInteger()), sa.column("leaf_hash", sa.LargeBinary())
)
SUBTREES = sa.table(
    "audit_subtree",
    sa.column("level", sa.Integer()),
    sa.column("index", sa.BigInteger()),
    sa.column("hash", sa.LargeBinary()),
)


def upgrade() -> None:
    op.create_table(
        "audit_subtree",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "index"),
    )
    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("audit_subtree")


def backfill(connection: sa.Connection) -> None:
    """Store the subtrees of the events already logged, as `node.audit` appending them would.

    The events are read in order of `seq` from 1, up to the first gap: a subtree over a
    missing event has no honest hash, and a proof that needs one fails as it would
    have for the missing event.
    """
    frontier: list[bytes] = []
    rows: list[dict[str, object]] = []
    result = connection.execute(
        sa.select(EVENTS.c.seq, EVENTS.c.leaf_hash)
        .order_by(EVENTS.c.seq)
        .execution_options(yield_per=BATCH)
    )
    for size, (seq, leaf) in enumerate(result):
        if seq != size + 1:
            break
        frontier.append(leaf)
        carry, level = size, 0
        while carry & 1:
            right = frontier.pop()
            frontier[-1] = hashlib.sha256(NODE_PREFIX + frontier[-1] + right).digest()
            level += 1
            rows.append({"level": level, "index": size >> level, "hash": frontier[-1]})
            carry >>= 1
        if len(rows) >= BATCH:
            connection.execute(sa.insert(SUBTREES), rows)
            rows = []
    result.close()
    if rows:
        connection.execute(sa.insert(SUBTREES), rows)
