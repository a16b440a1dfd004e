"""sharing: peers, agreements and the SB 34 non-compliance list.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "peer",
        sa.Column("ori", AutoString(length=9), nullable=False),
        sa.Column("name", AutoString(length=200), nullable=False),
        sa.Column("endpoint", AutoString(length=300), nullable=False),
        sa.Column("spiffe_id", AutoString(length=400), nullable=False),
        sa.Column("signing_public_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ori"),
    )
    op.create_table(
        "agreement",
        sa.Column("id", AutoString(length=36), nullable=False),
        sa.Column("partner_ori", AutoString(length=9), nullable=False),
        sa.Column("we_proposed", sa.Boolean(), nullable=False),
        sa.Column("state", AutoString(length=16), nullable=False),
        sa.Column("term", sa.Integer(), nullable=False),
        sa.Column("renews_id", AutoString(length=36), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sunsets_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("terms", sa.LargeBinary(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("compliance_review", AutoString(), nullable=False),
        sa.Column("revoked_reason", AutoString(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["partner_ori"], ["peer.ori"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_agreement_partner_ori", "agreement", ["partner_ori"])
    op.create_index("ix_agreement_state", "agreement", ["state"])
    op.create_table(
        "sb34_noncompliant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", AutoString(length=200), nullable=False),
        sa.Column("ori", AutoString(length=9), nullable=False),
        sa.Column("source", AutoString(length=300), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("sb34_noncompliant")
    op.drop_index("ix_agreement_state", table_name="agreement")
    op.drop_index("ix_agreement_partner_ori", table_name="agreement")
    op.drop_table("agreement")
    op.drop_table("peer")
