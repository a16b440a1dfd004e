"""Tables of what a node shares with partners: peers (agreements and exchanges follow).

They live in `node.store` so one alembic history covers every table; the rules that
use them live in `federation`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel


class PeerRecord(SQLModel, table=True):
    """A partner agency's node as our operator registered it.

    A partner is trusted only when its TLS identity matches `spiffe_id`, its
    signatures verify under `signing_public_key`, and an agreement is in force.
    """

    __tablename__ = "peer"

    ori: str = Field(primary_key=True, max_length=9)
    name: str = Field(max_length=200)
    endpoint: str = Field(max_length=300)
    spiffe_id: str = Field(max_length=400)
    signing_public_key: bytes
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class AgreementRecord(SQLModel, table=True):
    """One term of an inter-agency agreement, as this node holds it.

    `terms` are the exact bytes both parties sign; `envelope` is the SignedEnvelope
    holding them with every signature collected so far (both, once active).
    """

    __tablename__ = "agreement"

    id: str = Field(primary_key=True, max_length=36)
    partner_ori: str = Field(foreign_key="peer.ori", index=True, max_length=9)
    we_proposed: bool
    state: str = Field(max_length=16, index=True)
    term: int
    renews_id: str | None = Field(default=None, max_length=36)
    starts_at: datetime = Field(sa_type=DateTime(timezone=True))
    sunsets_at: datetime = Field(sa_type=DateTime(timezone=True))
    terms: bytes
    envelope: bytes
    compliance_review: str = Field(default="")
    revoked_reason: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class NonCompliantAgency(SQLModel, table=True):
    """An agency on the Attorney General's SB 34 non-compliance list, as last imported (SHR-4)."""

    __tablename__ = "sb34_noncompliant"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    ori: str = Field(default="", max_length=9)
    source: str = Field(max_length=300)
    imported_at: datetime = Field(sa_type=DateTime(timezone=True))
