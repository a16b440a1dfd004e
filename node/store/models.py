"""The node's tables.

Every change to a table here comes with an alembic revision in
`node/store/migrations/versions/`; a test fails when the two disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel


def utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (SQLite hands back naive ones)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class NodeIdentity(SQLModel, table=True):
    """Whose database this is: one row, written by `alpr init`.

    `alpr serve` refuses to start when its configuration names another agency or
    another signing key, so a node can never be pointed at a partner's data. Only
    the public key is kept; the private key stays in its 0600 file (SEC-2).
    """

    __tablename__ = "node_identity"

    id: int = Field(default=1, primary_key=True)
    ori: str = Field(max_length=9)
    name: str = Field(max_length=200)
    federation: str = Field(max_length=253)
    signing_public_key: bytes
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
