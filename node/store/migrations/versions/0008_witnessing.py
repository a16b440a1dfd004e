"""witnessing: partners' cosignatures on our checkpoints, theirs we witnessed, alarms.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_cosignature",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("witness_ori", sa.String(length=9), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_cosignature_witness_ori", "audit_cosignature", ["witness_ori"])
    op.create_table(
        "witnessed_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_ori", sa.String(length=9), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.Column("witnessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_witnessed_checkpoint_partner_ori", "witnessed_checkpoint", ["partner_ori"])
    op.create_table(
        "log_alarm",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_ori", sa.String(length=9), nullable=False),
        sa.Column("our_log", sa.Boolean(), nullable=False),
        sa.Column("held", sa.LargeBinary(), nullable=False),
        sa.Column("offered", sa.LargeBinary(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_log_alarm_partner_ori", "log_alarm", ["partner_ori"])


def downgrade() -> None:
    op.drop_index("ix_log_alarm_partner_ori", table_name="log_alarm")
    op.drop_table("log_alarm")
    op.drop_index("ix_witnessed_checkpoint_partner_ori", table_name="witnessed_checkpoint")
    op.drop_table("witnessed_checkpoint")
    op.drop_index("ix_audit_cosignature_witness_ori", table_name="audit_cosignature")
    op.drop_table("audit_cosignature")
