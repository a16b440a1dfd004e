"""audit log: append-only events and the Merkle tree head.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# node.merkle.CompactRange().to_bytes(): size 0 as 8 bytes, no hashes. Spelled out so
# this revision stays what it was when the code it came with changes.
EMPTY_FRONTIER = bytes(8)


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", AutoString(length=64), nullable=False),
        sa.Column("actor", AutoString(length=2048), nullable=False),
        sa.Column("agency", AutoString(length=9), nullable=False),
        sa.Column("peer_ip", AutoString(length=64), nullable=False),
        sa.Column("purpose", AutoString(length=64), nullable=False),
        sa.Column("case_number", AutoString(length=64), nullable=False),
        sa.Column("details", AutoString(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_audit_event_kind", "audit_event", ["kind"])
    op.create_index("ix_audit_event_recorded_at", "audit_event", ["recorded_at"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(head, [{"id": 1, "size": 0, "frontier": EMPTY_FRONTIER}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_event_recorded_at", table_name="audit_event")
    op.drop_index("ix_audit_event_kind", table_name="audit_event")
    op.drop_table("audit_event")
