"""Tables of what a node shares with partners: peers, agreements, exchanges, held requests.

They live in `node.store` so one alembic history covers every table; the rules that
use them live in `federation`.
"""

from __future__ import annotations

import enum
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


class RetiredPeerKey(SQLModel, table=True):
    """A signing key a partner used before its current one, and when our operator replaced it.

    What the partner signed under it before then (receipts, acknowledgements) still
    verifies under it (`alpr receipts verify`); nothing signed after does.
    """

    __tablename__ = "peer_key_retired"

    id: int | None = Field(default=None, primary_key=True)
    ori: str = Field(max_length=9, index=True)
    signing_public_key: bytes
    retired_at: datetime = Field(sa_type=DateTime(timezone=True))


class AgreementState(enum.StrEnum):
    """Where an agreement is in its life."""

    DRAFT = "draft"
    PROPOSED = "proposed"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


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
    notice_owed: bytes | None = Field(default=None)
    """Our signed revocation notice, until the partner took it (`notify_revocations`)."""
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


class OwedAcknowledgementRecord(SQLModel, table=True):
    """Our acknowledgement of an exchange we asked for, not yet given to the partner (AUD-6).

    Written with the acknowledgement, in its transaction; deleted once the partner took
    it or refused it. What is still here when a node starts (it stopped without
    delivering) is owed to the partner again: a crash loses no acknowledgement.
    """

    __tablename__ = "owed_acknowledgement"

    exchange_id: str = Field(primary_key=True, max_length=36, foreign_key="exchange.id")


class SeenNonce(SQLModel, table=True):
    """A request nonce already used by a partner: a second use is a replay."""

    __tablename__ = "seen_nonce"

    partner_ori: str = Field(primary_key=True, max_length=9)
    nonce: bytes = Field(primary_key=True)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)


class PartnerRequestRecord(SQLModel, table=True):
    """A partner's plate query held on file until the designated role decides (SHR-5, SHR-7).

    `state` is a `node.partner_requests.RequestState` value. The request is kept whatever
    the decision: the file of requests outlives it.
    """

    __tablename__ = "partner_request"

    reference: str = Field(primary_key=True, max_length=36)
    exchange_id: str = Field(max_length=36, unique=True)
    partner_ori: str = Field(max_length=9, index=True)
    agreement_id: str = Field(max_length=36)
    requesting_user: str = Field(max_length=2048)
    purpose: str = Field(max_length=500)
    case_number: str = Field(max_length=64)
    judicial_warrant: str = Field(default="", max_length=100)
    plate: str = Field(max_length=16)
    since: datetime = Field(sa_type=DateTime(timezone=True))
    until: datetime = Field(sa_type=DateTime(timezone=True))
    state: str = Field(max_length=16, index=True)
    filed_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    decided_by: str = Field(default="", max_length=2048)
    decided_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    decision_reason: str = Field(default="", max_length=500)
    collected_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    collected_exchange_id: str = Field(default="", max_length=36)


class HeldQueryRecord(SQLModel, table=True):
    """A plate query of ours that a partner holds for its approver, until we collect it.

    `exchange_id` is the exchange that asked; `reference` the partner's for the held
    query; `since` and `until` the window asked; `outcome` stays empty until the answer
    (or the denial) is collected.
    """

    __tablename__ = "held_query"

    exchange_id: str = Field(primary_key=True, max_length=36)
    partner_ori: str = Field(max_length=9)
    reference: str = Field(max_length=36, index=True)
    requesting_user: str = Field(max_length=2048)
    purpose: str = Field(max_length=500)
    case_number: str = Field(max_length=64)
    plate: str = Field(max_length=16)
    since: datetime = Field(sa_type=DateTime(timezone=True))
    until: datetime = Field(sa_type=DateTime(timezone=True))
    held_at: datetime = Field(sa_type=DateTime(timezone=True))
    outcome: str = Field(default="", max_length=32)
    closed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class SharedReadRecord(SQLModel, table=True):
    """A read we sent a partner in an answer, under the reference that answer gave it (SHR-7).

    With the answer's partner, agreement, purpose and case, it is what a later request for
    the read's images is checked against; `read_id` is ours and never leaves the node.
    """

    __tablename__ = "shared_read"

    exchange_id: str = Field(primary_key=True, max_length=36)
    reference: str = Field(primary_key=True, max_length=32)
    read_id: str = Field(max_length=36, index=True)
    partner_ori: str = Field(max_length=9)
    agreement_id: str = Field(max_length=36)
    purpose: str = Field(max_length=500)
    case_number: str = Field(max_length=64)
    shared_at: datetime = Field(sa_type=DateTime(timezone=True))
