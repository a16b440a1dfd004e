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


class ExchangeRecord(SQLModel, table=True):
    """One exchange with a partner, from our side, with both signatures once complete (AUD-6).

    As responder we hold our receipt and, once it arrives, the partner's
    acknowledgement; as requester, the partner's receipt and our acknowledgement.
    """

    __tablename__ = "exchange"

    id: str = Field(primary_key=True, max_length=36)
    partner_ori: str = Field(max_length=9, index=True)
    we_responded: bool
    kind: str = Field(max_length=32)
    agreement_id: str = Field(max_length=36)
    request_digest: bytes
    response_digest: bytes
    receipt: bytes
    acknowledgement: bytes | None = None
    created_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    acknowledged_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class SeenNonce(SQLModel, table=True):
    """A request nonce already used by a partner: a second use is a replay."""

    __tablename__ = "seen_nonce"

    partner_ori: str = Field(primary_key=True, max_length=9)
    nonce: bytes = Field(primary_key=True)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
