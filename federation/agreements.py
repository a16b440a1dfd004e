"""The agreement book: drafting, proposing, accepting, revoking, renewing and expiring agreements.

States: draft -> proposed -> active -> expired or revoked. An agreement is in force
only while it is active and the clock is between its start and its sunset (SHR-3), so
flow stops at the sunset instant even before the expiry job runs. Each node keeps the
terms with both parties' signatures.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from alpr.federation.v1 import agreement_pb2
from federation.envelope import Envelope, parse_payload
from federation.errors import InvalidEnvelopeError
from federation.peers import Peer, PeerRegistry
from federation.terms import REQUIRED_CLAUSES, TERMS_TYPE, Grant, Terms
from node.clock import Clock
from node.errors import AlreadyExistsError, NotFoundError, PreconditionError, ValidationError
from node.identity import validate_ori
from node.signing import Signer
from node.store.sharing import AgreementRecord, AgreementState, NonCompliantAgency

MAX_REVIEWER = 200
MAX_REVIEW_SUMMARY = 4000
# The Attorney General's SB 34 list names tens of agencies; its columns bound the rest.
MAX_NONCOMPLIANT = 10_000
MAX_LISTED_NAME = 200
MAX_SOURCE = 300

NOTICE_TYPE = "application/vnd.alpr.revocation-notice.v1+protobuf"


class OwedNotice(NamedTuple):
    """A revocation notice of ours that its partner has not taken yet."""

    agreement_id: str
    partner_ori: str
    notice: Envelope


@dataclass(frozen=True, kw_only=True)
class ComplianceReview:
    """The review of a partner's compliance that a renewal needs (SHR-4)."""

    reviewer: str
    summary: str

    def __post_init__(self) -> None:
        """Validate.

        Raises:
            ValidationError: The reviewer or summary is empty or too long.
        """
        for field, text, most in (
            ("reviewer", self.reviewer, MAX_REVIEWER),
            ("summary", self.summary, MAX_REVIEW_SUMMARY),
        ):
            if not text.strip():
                raise ValidationError(
                    f"compliance_review.{field}", "is required for a renewal (SHR-4)"
                )
            if len(text) > most:
                raise ValidationError(
                    f"compliance_review.{field}", f"must be at most {most} characters"
                )


@dataclass(frozen=True)
class Agreement:
    """An agreement as this node holds it."""

    state: AgreementState
    we_proposed: bool
    terms: Terms
    envelope: Envelope
    revoked_reason: str
    compliance_review: str

    @property
    def id(self) -> str:
        """The agreement's id."""
        return self.terms.agreement_id

    def in_force(self, at: datetime) -> bool:
        """Whether data may flow under it at `at`."""
        return (
            self.state is AgreementState.ACTIVE
            and self.terms.starts_at <= at < self.terms.sunsets_at
        )


class AgreementBook:
    """This node's agreements with its partners, kept in its store."""

    def __init__(
        self,
        engine: Engine,
        *,
        ori: str,
        federation: str,
        signer: Signer,
        peers: PeerRegistry,
        clock: Clock,
    ) -> None:
        """Keep the agreements of agency `ori`, signing with `signer`."""
        self._engine = engine
        self._ori = ori
        self._federation = federation
        self._signer = signer
        self._peers = peers
        self._clock = clock

    # --- our side -------------------------------------------------------------------

    def create(
        self,
        *,
        partner_ori: str,
        starts_at: datetime,
        sunsets_at: datetime,
        we_grant: Iterable[Grant],
        they_grant: Iterable[Grant],
        purposes: Sequence[str],
        extra_clauses: Sequence[str] = (),
        renews: Agreement | None = None,
        review: ComplianceReview | None = None,
    ) -> Agreement:
        """Draft an agreement with a registered partner, signed by us.

        Raises:
            NotFoundError: The partner is not registered.
            PreconditionError: The partner is on the SB 34 list (SHR-4): a renewal refused
                must not be had as a new agreement.
            ValidationError: The terms are invalid (e.g. a sunset more than a year out, SHR-3).
        """
        self._refuse_if_listed(
            self._peers.require(partner_ori), "renewal" if renews else "agreement"
        )
        terms = Terms(
            agreement_id=str(uuid.uuid4()),
            federation=self._federation,
            proposer_ori=self._ori,
            accepter_ori=partner_ori,
            term=renews.terms.term + 1 if renews else 1,
            renews_agreement_id=renews.id if renews else "",
            starts_at=starts_at,
            sunsets_at=sunsets_at,
            proposer_grants=frozenset(we_grant),
            accepter_grants=frozenset(they_grant),
            purposes=tuple(purposes),
            clauses=(*REQUIRED_CLAUSES, *extra_clauses),
        )
        envelope = Envelope.sign(terms.to_bytes(), TERMS_TYPE, self._signer)
        review_text = (
            json.dumps(review.__dict__ | {"at": self._clock().isoformat()}) if review else ""
        )
        return self._insert(
            terms, envelope, AgreementState.DRAFT, we_proposed=True, review=review_text
        )

    def renew(
        self,
        agreement_id: str,
        *,
        starts_at: datetime,
        sunsets_at: datetime,
        review: ComplianceReview,
    ) -> Agreement:
        """Draft the next term of an agreement we hold, after the SHR-4 checks.

        Raises:
            NotFoundError: No such agreement.
            PreconditionError: It was revoked, or the partner is on the SB 34 list.
        """
        previous = self.require(agreement_id)
        if previous.state is AgreementState.REVOKED:
            raise PreconditionError(f"agreement {agreement_id} was revoked; make a new one")
        partner = self._peers.require(previous.terms.partner_of(self._ori))
        ours, theirs = previous.terms.grants_by(self._ori), previous.terms.grants_by(partner.ori)
        return self.create(
            partner_ori=partner.ori,
            starts_at=starts_at,
            sunsets_at=sunsets_at,
            we_grant=ours,
            they_grant=theirs,
            purposes=previous.terms.purposes,
            extra_clauses=[c for c in previous.terms.clauses if c not in REQUIRED_CLAUSES],
            renews=previous,
            review=review,
        )

    def our_draft(self, agreement_id: str) -> Agreement:
        """A draft of ours, ready to propose.

        Raises:
            NotFoundError: No such agreement.
            PreconditionError: It is not a draft of ours.
        """
        agreement = self.require(agreement_id)
        if not agreement.we_proposed or agreement.state is not AgreementState.DRAFT:
            raise PreconditionError(f"agreement {agreement_id} is {agreement.state}, not our draft")
        return agreement

    def mark_proposed(self, agreement_id: str) -> Agreement:
        """Record that the partner took our proposal.

        Raises:
            PreconditionError: It is not a draft of ours.
        """
        self.our_draft(agreement_id)
        return self._update(agreement_id, state=AgreementState.PROPOSED)

    def countersign(self, agreement_id: str) -> Envelope:
        """Our signature added to a partner's proposal; it becomes active by `activate`.

        Raises:
            PreconditionError: It is not a partner's proposal awaiting us, or the partner is
                on the SB 34 list (SHR-4), whether it proposes a first term or a renewal.
        """
        agreement = self.require(agreement_id)
        if agreement.we_proposed or agreement.state is not AgreementState.PROPOSED:
            raise PreconditionError(
                f"agreement {agreement_id} is {agreement.state}, not a proposal awaiting us"
            )
        partner = self._peers.require(agreement.terms.partner_of(self._ori))
        self._refuse_if_listed(partner, "renewal" if agreement.terms.term > 1 else "agreement")
        return agreement.envelope.add_signature(self._signer)

    def activate(self, agreement_id: str, envelope: Envelope) -> Agreement:
        """Make an agreement active once both parties' signatures over its terms verify.

        Raises:
            InvalidEnvelopeError: The envelope is not both parties' signature over these terms.
            PreconditionError: The agreement is not awaiting activation.
        """
        agreement = self.require(agreement_id)
        if agreement.state is not AgreementState.PROPOSED:
            raise PreconditionError(f"agreement {agreement_id} is {agreement.state}, not proposed")
        partner = self._peers.require(agreement.terms.partner_of(self._ori))
        verified = envelope.verify([self._signer.public_key, partner.key], 2, TERMS_TYPE)
        if verified.payload != agreement.envelope.payload:
            raise InvalidEnvelopeError("the signed terms differ from the terms proposed")
        return self._update(agreement_id, state=AgreementState.ACTIVE, envelope=envelope)

    def revoke(self, agreement_id: str, reason: str) -> Envelope:
        """Revoke an agreement at once; returns the signed notice for the partner.

        Raises:
            ValidationError: No reason is given.
            PreconditionError: It already ended.
        """
        if not reason.strip() or len(reason) > 500:
            raise ValidationError("reason", "must be 1 to 500 characters")
        agreement = self.require(agreement_id)
        if agreement.state in (AgreementState.EXPIRED, AgreementState.REVOKED):
            raise PreconditionError(f"agreement {agreement_id} is already {agreement.state}")
        notice = agreement_pb2.RevocationNotice(
            agreement_id=agreement_id, revoked_by_ori=self._ori, reason=reason
        )
        notice.revoked_at.FromDatetime(self._clock())
        signed = Envelope.sign(notice.SerializeToString(), NOTICE_TYPE, self._signer)
        self._update(
            agreement_id, state=AgreementState.REVOKED, revoked_reason=reason, notice_owed=signed
        )
        return signed

    def owed_notices(self) -> list[OwedNotice]:
        """Our revocation notices a partner has not taken yet, while they still matter.

        Past the agreement's sunset the partner stops on its own (SHR-3): not owed.
        """
        with Session(self._engine) as session:
            owed = session.exec(
                select(AgreementRecord).where(
                    col(AgreementRecord.notice_owed).is_not(None),
                    col(AgreementRecord.sunsets_at) > self._clock(),
                )
            ).all()
            return [
                OwedNotice(r.id, r.partner_ori, Envelope.from_bytes(r.notice_owed or b""))
                for r in owed
            ]

    def notice_taken(self, agreement_id: str) -> None:
        """Record that the partner took our revocation notice: no longer owed."""
        with Session(self._engine) as session:
            record = session.get(AgreementRecord, agreement_id)
            if record is not None:
                record.notice_owed = None
                session.add(record)
                session.commit()

    def expire_sunsets(self) -> list[str]:
        """Mark every active agreement past its sunset expired (SHR-3); their ids."""
        now = self._clock()
        with Session(self._engine) as session:
            query = select(AgreementRecord).where(
                col(AgreementRecord.state) == AgreementState.ACTIVE.value,
                col(AgreementRecord.sunsets_at) <= now,
            )
            expired = list(session.exec(query).all())
            for record in expired:
                record.state = AgreementState.EXPIRED.value
                record.updated_at = now
                session.add(record)
            session.commit()
            return [record.id for record in expired]

    # --- what partners send us --------------------------------------------------------

    def receive_proposal(self, envelope: Envelope, sender: Peer) -> Agreement:
        """Store a partner's signed proposal for our operator to accept.

        Raises:
            InvalidEnvelopeError: It is not signed by the sender, or not addressed to us by it.
            AlreadyExistsError: A different agreement with that id exists.
        """
        verified = envelope.verify([sender.key], 1, TERMS_TYPE)
        terms = Terms.from_bytes(verified.payload)
        if (terms.proposer_ori, terms.accepter_ori, terms.federation) != (
            sender.ori,
            self._ori,
            self._federation,
        ):
            raise InvalidEnvelopeError("the terms are not from the sender to us in our federation")
        existing = self.get(terms.agreement_id)
        if existing is not None:
            if existing.envelope.payload != verified.payload:
                raise AlreadyExistsError(f"agreement {terms.agreement_id} exists with other terms")
            return existing
        return self._insert(terms, envelope, AgreementState.PROPOSED, we_proposed=False)

    def receive_acceptance(self, envelope: Envelope, sender: Peer) -> Agreement:
        """Activate our proposal now that the partner countersigned it.

        Raises:
            InvalidEnvelopeError: The signatures or terms do not match our proposal.
            NotFoundError: We proposed no such agreement to the sender.
        """
        terms = Terms.from_bytes(envelope.verify([sender.key], 1, TERMS_TYPE).payload)
        agreement = self.require(terms.agreement_id)
        if not agreement.we_proposed or terms.accepter_ori != sender.ori:
            raise InvalidEnvelopeError("the sender is not the party this proposal was made to")
        return self.activate(agreement.id, envelope)

    def receive_revocation(self, envelope: Envelope, sender: Peer) -> Agreement:
        """Revoke an agreement because the partner did.

        Raises:
            InvalidEnvelopeError: The notice is not signed by the sender or not about its agreement.
            NotFoundError: No such agreement.
        """
        notice = parse_payload(
            agreement_pb2.RevocationNotice, envelope.verify([sender.key], 1, NOTICE_TYPE).payload
        )
        agreement = self.require(notice.agreement_id)
        if (
            notice.revoked_by_ori != sender.ori
            or agreement.terms.partner_of(self._ori) != sender.ori
        ):
            raise InvalidEnvelopeError("the notice is not the sender's about its own agreement")
        if agreement.state is AgreementState.REVOKED:
            return agreement
        reason = f"revoked by {sender.ori}: {notice.reason}"[:500]
        return self._update(agreement.id, state=AgreementState.REVOKED, revoked_reason=reason)

    # --- questions ------------------------------------------------------------------

    def in_force(self, partner_ori: str, grant: Grant, *, grantor: str) -> Agreement | None:
        """The agreement in force now under which `grantor` gives `grant` to the other party.

        Of two in force (a renewal's term begun before the old one's sunset), the one that
        sunsets last: a partner's list taken under it is used until that sunset.
        """
        now = self._clock()
        with Session(self._engine) as session:
            query = (
                select(AgreementRecord)
                .where(
                    col(AgreementRecord.partner_ori) == partner_ori,
                    col(AgreementRecord.state) == AgreementState.ACTIVE.value,
                )
                .order_by(col(AgreementRecord.sunsets_at).desc())
            )
            for record in session.exec(query).all():
                agreement = _to_agreement(record)
                if agreement.in_force(now) and grant in agreement.terms.grants_by(grantor):
                    return agreement
        return None

    def get(self, agreement_id: str) -> Agreement | None:
        """The agreement with that id, if we hold it."""
        with Session(self._engine) as session:
            record = session.get(AgreementRecord, agreement_id)
            return _to_agreement(record) if record else None

    def require(self, agreement_id: str) -> Agreement:
        """The agreement with that id.

        Raises:
            NotFoundError: We hold none.
        """
        agreement = self.get(agreement_id)
        if agreement is None:
            raise NotFoundError(f"no agreement {agreement_id}")
        return agreement

    def list(self, partner_ori: str = "") -> list[Agreement]:
        """Every agreement we hold, or those with one partner, oldest first."""
        with Session(self._engine) as session:
            query = select(AgreementRecord).order_by(col(AgreementRecord.created_at))
            if partner_ori:
                query = query.where(col(AgreementRecord.partner_ori) == partner_ori)
            return [_to_agreement(record) for record in session.exec(query).all()]

    # --- the SB 34 list ---------------------------------------------------------------

    def import_noncompliance(self, agencies: Sequence[tuple[str, str]], source: str) -> int:
        """Replace the SB 34 non-compliance list with `agencies` ((name, ORI or "") pairs).

        Raises:
            ValidationError: Naming the field: more than `MAX_NONCOMPLIANT` agencies, a
                name too long, an ORI malformed, or a source empty or too long.
        """
        if not source.strip() or len(source) > MAX_SOURCE:
            raise ValidationError("source", f"must be 1 to {MAX_SOURCE} characters")
        if len(agencies) > MAX_NONCOMPLIANT:
            raise ValidationError("agencies", f"at most {MAX_NONCOMPLIANT} in one list")
        now = self._clock()
        rows = [
            NonCompliantAgency(
                name=_listed_name(name, f"agencies[{index}].name"),
                ori=validate_ori(ori.strip().upper(), f"agencies[{index}].ori")
                if ori.strip()
                else "",
                source=source,
                imported_at=now,
            )
            for index, (name, ori) in enumerate(agencies)
            if name.strip() or ori.strip()
        ]
        with Session(self._engine) as session:
            session.exec(delete(NonCompliantAgency))
            session.add_all(rows)
            session.commit()
        return len(rows)

    def _refuse_if_listed(self, partner: Peer, what: str) -> None:
        """Refuse an agreement or renewal with a partner on the SB 34 list (SHR-4).

        Raises:
            PreconditionError: It is listed, by ORI or by name.
        """
        listed = self.noncompliance_listing(partner)
        if listed is not None:
            raise PreconditionError(
                f"{partner.ori} ({partner.name}) is on the Attorney General's SB 34 "
                f"non-compliance list ({listed}); {what} refused (SHR-4)"
            )

    def noncompliance_listing(self, peer: Peer) -> str | None:
        """How `peer` appears on the SB 34 list (by ORI or by name), or None."""
        with Session(self._engine) as session:
            for row in session.exec(select(NonCompliantAgency)).all():
                if (row.ori and row.ori == peer.ori) or row.name.casefold() == peer.name.casefold():
                    return f"as {row.name or row.ori}, imported from {row.source}"
        return None

    # --- storage ----------------------------------------------------------------------

    def _insert(
        self,
        terms: Terms,
        envelope: Envelope,
        state: AgreementState,
        *,
        we_proposed: bool,
        review: str = "",
    ) -> Agreement:
        now = self._clock()
        record = AgreementRecord(
            id=terms.agreement_id,
            partner_ori=terms.partner_of(self._ori),
            we_proposed=we_proposed,
            state=state.value,
            term=terms.term,
            renews_id=terms.renews_agreement_id or None,
            starts_at=terms.starts_at.astimezone(UTC),
            sunsets_at=terms.sunsets_at.astimezone(UTC),
            terms=envelope.payload,
            envelope=envelope.to_bytes(),
            compliance_review=review,
            created_at=now,
            updated_at=now,
        )
        with Session(self._engine) as session:
            session.add(record)
            session.commit()
            return _to_agreement(record)

    def _update(
        self,
        agreement_id: str,
        *,
        state: AgreementState,
        envelope: Envelope | None = None,
        revoked_reason: str | None = None,
        notice_owed: Envelope | None = None,
    ) -> Agreement:
        with Session(self._engine) as session:
            record = session.get(AgreementRecord, agreement_id)
            if record is None:
                raise NotFoundError(f"no agreement {agreement_id}")
            record.state = state.value
            if envelope is not None:
                record.envelope = envelope.to_bytes()
            if revoked_reason is not None:
                record.revoked_reason = revoked_reason
            if notice_owed is not None:
                record.notice_owed = notice_owed.to_bytes()
            record.updated_at = self._clock()
            session.add(record)
            session.commit()
            return _to_agreement(record)


def _to_agreement(record: AgreementRecord) -> Agreement:
    return Agreement(
        state=AgreementState(record.state),
        we_proposed=record.we_proposed,
        terms=Terms.from_bytes(record.terms),
        envelope=Envelope.from_bytes(record.envelope),
        revoked_reason=record.revoked_reason,
        compliance_review=record.compliance_review,
    )


def _listed_name(name: str, field: str) -> str:
    """An agency's name as the SB 34 list gives it, trimmed.

    Raises:
        ValidationError: Naming `field`: it is too long.
    """
    if len(name.strip()) > MAX_LISTED_NAME:
        raise ValidationError(field, f"must be at most {MAX_LISTED_NAME} characters")
    return name.strip()
