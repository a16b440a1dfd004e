"""exchanges: receipts and acknowledgements of every exchange, and seen request nonces.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchange",
        sa.Column("id", AutoString(length=36), nullable=False),
        sa.Column("partner_ori", AutoString(length=9), nullable=False),
        sa.Column("we_responded", sa.Boolean(), nullable=False),
        sa.Column("kind", AutoString(length=32), nullable=False),
        sa.Column("agreement_id", AutoString(length=36), nullable=False),
        sa.Column("request_digest", sa.LargeBinary(), nullable=False),
        sa.Column("response_digest", sa.LargeBinary(), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=False),
        sa.Column("acknowledgement", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_exchange_partner_ori", "exchange", ["partner_ori"])
    op.create_index("ix_exchange_created_at", "exchange", ["created_at"])
    op.create_table(
        "seen_nonce",
        sa.Column("partner_ori", AutoString(length=9), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner_ori", "nonce"),
    )
    op.create_index("ix_seen_nonce_expires_at", "seen_nonce", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_seen_nonce_expires_at", table_name="seen_nonce")
    op.drop_table("seen_nonce")
    op.drop_index("ix_exchange_created_at", table_name="exchange")
    op.drop_index("ix_exchange_partner_ori", table_name="exchange")
    op.drop_table("exchange")
