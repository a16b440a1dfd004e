"""partner requests: plate queries held on file for approval, both ends (SHR-5, SHR-7).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "partner_request",
        sa.Column("reference", sa.String(length=36), nullable=False),
        sa.Column("exchange_id", sa.String(length=36), nullable=False),
        sa.Column("partner_ori", sa.String(length=9), nullable=False),
        sa.Column("agreement_id", sa.String(length=36), nullable=False),
        sa.Column("requesting_user", sa.String(length=2048), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("case_number", sa.String(length=64), nullable=False),
        sa.Column("judicial_warrant", sa.String(length=100), nullable=False),
        sa.Column("plate", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=2048), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(length=500), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collected_exchange_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("reference"),
        sa.UniqueConstraint("exchange_id"),
    )
    op.create_index("ix_partner_request_partner_ori", "partner_request", ["partner_ori"])
    op.create_index("ix_partner_request_state", "partner_request", ["state"])
    op.create_index("ix_partner_request_filed_at", "partner_request", ["filed_at"])
    op.create_table(
        "held_query",
        sa.Column("exchange_id", sa.String(length=36), nullable=False),
        sa.Column("partner_ori", sa.String(length=9), nullable=False),
        sa.Column("reference", sa.String(length=36), nullable=False),
        sa.Column("requesting_user", sa.String(length=2048), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("case_number", sa.String(length=64), nullable=False),
        sa.Column("plate", sa.String(length=16), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("exchange_id"),
    )
    op.create_index("ix_held_query_reference", "held_query", ["reference"])


def downgrade() -> None:
    op.drop_table("held_query")
    op.drop_table("partner_request")
