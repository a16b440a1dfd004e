"""audit_event.purpose: up to 500 characters, as an agreement's purpose may be.

Profiles name purposes of up to 98 characters (LAPD's), and an agreement's may run to 500;
the 64 this column had refused to audit, and so to run, a query for such a purpose.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_event") as table:
        table.alter_column(
            "purpose", type_=AutoString(length=500), existing_type=AutoString(length=64)
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_event") as table:
        table.alter_column(
            "purpose", type_=AutoString(length=64), existing_type=AutoString(length=500)
        )
