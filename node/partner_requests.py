"""Partner requests held on file for approval (SHR-5, SHR-7), and our queries partners hold.

Responding: where the profile says ``sharing.approve_each_request``, a partner's plate
query that passed every check is filed in `PartnerRequests` as pending, naming the
requesting agency, person, purpose, case, warrant, plate and window, and the exchange
that asked. One of the profile's approver roles approves or denies it, saying why; the
partner then collects the answer (searched at that time) or the uniform denial. The
request stays on file whatever became of it.

Asking: `HeldQueries` keeps each query of ours that a partner held, by the partner's
reference, until an investigator collects its answer; each investigator lists their own.

State changes are conditional updates, so two approvers, or two collections, racing on
one request cannot both win.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from node.clock import Clock
from node.errors import NotFoundError, PreconditionError, ValidationError
from node.store.models import utc
from node.store.sharing import HeldQueryRecord, PartnerRequestRecord

MAX_DECISION_REASON = 500


class RequestState(enum.StrEnum):
    """Where a partner's request on file stands."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    COLLECTED = "collected"


@dataclass(frozen=True, kw_only=True)
class FiledRequest:
    """A partner's checked plate query, as it is put on file (SHR-5, SHR-7)."""

    exchange_id: str
    partner_ori: str
    agreement_id: str
    requesting_user: str
    purpose: str
    case_number: str
    judicial_warrant: str
    plate: str
    since: datetime
    until: datetime


class PartnerRequests:
    """The file of partners' requests waiting for, or past, approval."""

    def __init__(self, engine: Engine, *, clock: Clock) -> None:
        """Keep the file in `engine`'s database."""
        self._engine = engine
        self._clock = clock

    def file(self, request: FiledRequest) -> PartnerRequestRecord:
        """Put a partner's request on file as pending; it gets a fresh reference."""
        record = PartnerRequestRecord(
            reference=str(uuid.uuid4()),
            exchange_id=request.exchange_id,
            partner_ori=request.partner_ori,
            agreement_id=request.agreement_id,
            requesting_user=request.requesting_user,
            purpose=request.purpose,
            case_number=request.case_number,
            judicial_warrant=request.judicial_warrant,
            plate=request.plate,
            since=request.since,
            until=request.until,
            state=RequestState.PENDING,
            filed_at=self._clock(),
        )
        with Session(self._engine) as session:
            session.add(record)
            session.commit()
            session.refresh(record)
            return _aware(record)

    def pending(self) -> list[PartnerRequestRecord]:
        """The requests waiting for approval, oldest first."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(PartnerRequestRecord)
                .where(col(PartnerRequestRecord.state) == RequestState.PENDING)
                .order_by(col(PartnerRequestRecord.filed_at), col(PartnerRequestRecord.reference))
            ).all()
            return [_aware(row) for row in rows]

    def decide(
        self, reference: str, *, approve: bool, user: str, reason: str
    ) -> PartnerRequestRecord:
        """Approve or deny a pending request, recording who, when and why.

        Raises:
            ValidationError: ``reason`` is blank or longer than `MAX_DECISION_REASON`.
            NotFoundError: No request has that reference.
            PreconditionError: It was decided already.
        """
        if not reason.strip() or len(reason) > MAX_DECISION_REASON:
            raise ValidationError("reason", f"is required, at most {MAX_DECISION_REASON} long")
        state = RequestState.APPROVED if approve else RequestState.DENIED
        changed = self._move(
            reference,
            RequestState.PENDING,
            state=state,
            decided_by=user,
            decided_at=self._clock(),
            decision_reason=reason,
        )
        if not changed:
            found = self._get(reference)
            if found is None:
                raise NotFoundError(f"no partner request {reference!r}")
            raise PreconditionError(f"partner request {reference} was {found.state} already")
        return self._found(reference)

    def collect(
        self,
        reference: str,
        *,
        partner_ori: str,
        requesting_user: str,
        purpose: str,
        case_number: str,
        exchange_id: str,
    ) -> PartnerRequestRecord:
        """The request `partner_ori` collects: still pending, or approved (and collected).

        The collection comes from the person who asked, stating the request's own purpose
        and case: the approval was given for them (SHR-5). The first collection of an
        approved request marks it collected by `exchange_id`; that person may collect it
        again, for an answer can be lost on its way (a timeout, a dropped connection) and
        the approval stands. Every answer is audited and receipted as any.

        Raises:
            NotFoundError: No request of `partner_ori` has that reference.
            PreconditionError: Another person collects it, it states another purpose or
                case, or was denied.
        """
        found = self._get(reference)
        if found is None or found.partner_ori != partner_ori:
            raise NotFoundError(f"no partner request {reference!r} of {partner_ori}")
        if found.requesting_user != requesting_user:
            raise PreconditionError(f"{requesting_user} collects {reference}, asked by another")
        if (found.purpose, found.case_number) != (purpose, case_number):
            raise PreconditionError(f"collecting {reference} under another purpose or case")
        if found.state in (RequestState.PENDING, RequestState.COLLECTED):
            return found
        if not self._move(
            reference,
            RequestState.APPROVED,
            state=RequestState.COLLECTED,
            collected_at=self._clock(),
            collected_exchange_id=exchange_id,
        ):
            raise PreconditionError(f"partner request {reference} is {found.state}")
        return self._found(reference)

    def _move(self, reference: str, current: RequestState, **changes: object) -> bool:
        """Apply `changes` if the request is in state `current`; whether it was."""
        with Session(self._engine) as session:
            result = session.exec(
                update(PartnerRequestRecord)
                .where(
                    col(PartnerRequestRecord.reference) == reference,
                    col(PartnerRequestRecord.state) == current,
                )
                .values(**changes)
            )
            session.commit()
            return bool(result.rowcount)

    def _get(self, reference: str) -> PartnerRequestRecord | None:
        with Session(self._engine) as session:
            record = session.get(PartnerRequestRecord, reference)
            return None if record is None else _aware(record)

    def _found(self, reference: str) -> PartnerRequestRecord:
        record = self._get(reference)
        if record is None:  # pragma: no cover - requests are never deleted
            raise NotFoundError(f"no partner request {reference!r}")
        return record


class HeldQueries:
    """Our plate queries that partners hold for approval, until collected."""

    def __init__(self, engine: Engine, *, clock: Clock) -> None:
        """Keep them in `engine`'s database."""
        self._engine = engine
        self._clock = clock

    def keep(
        self,
        *,
        exchange_id: str,
        partner_ori: str,
        reference: str,
        requesting_user: str,
        purpose: str,
        case_number: str,
        plate: str,
        since: datetime,
        until: datetime,
    ) -> None:
        """Keep a query `partner_ori` holds under `reference`, asked for `plate` in a window."""
        with Session(self._engine) as session:
            session.add(
                HeldQueryRecord(
                    exchange_id=exchange_id,
                    partner_ori=partner_ori,
                    reference=reference,
                    requesting_user=requesting_user,
                    purpose=purpose,
                    case_number=case_number,
                    plate=plate,
                    since=since,
                    until=until,
                    held_at=self._clock(),
                )
            )
            session.commit()

    def open(self, partner_ori: str, reference: str) -> HeldQueryRecord:
        """The query `partner_ori` holds under `reference`, not collected yet.

        Raises:
            NotFoundError: No query of ours is held there under that reference.
            PreconditionError: Its answer was collected already.
        """
        with Session(self._engine) as session:
            record = session.exec(
                select(HeldQueryRecord).where(
                    col(HeldQueryRecord.partner_ori) == partner_ori,
                    col(HeldQueryRecord.reference) == reference,
                )
            ).first()
        if record is None:
            raise NotFoundError(f"{partner_ori} holds no query of ours as {reference!r}")
        if record.closed_at is not None:
            raise PreconditionError(f"the answer to {reference} was collected: {record.outcome}")
        return record

    def listed(
        self, requesting_user: str | None, *, outcomes: Collection[str]
    ) -> list[HeldQueryRecord]:
        """The held queries whose outcome is one of `outcomes` ("" while open), oldest first.

        Args:
            requesting_user: Only this investigator's queries; None for everyone's.
            outcomes: The outcomes to list; "" stands for queries not collected yet.
        """
        query = select(HeldQueryRecord).where(col(HeldQueryRecord.outcome).in_(outcomes))
        if requesting_user is not None:
            query = query.where(col(HeldQueryRecord.requesting_user) == requesting_user)
        with Session(self._engine) as session:
            rows = session.exec(
                query.order_by(col(HeldQueryRecord.held_at), col(HeldQueryRecord.exchange_id))
            ).all()
        for row in rows:
            row.since, row.until, row.held_at = utc(row.since), utc(row.until), utc(row.held_at)
            row.closed_at = None if row.closed_at is None else utc(row.closed_at)
        return list(rows)

    def close(self, exchange_id: str, outcome: str) -> None:
        """Record that the held query's answer, or its denial, was collected."""
        with Session(self._engine) as session:
            session.exec(
                update(HeldQueryRecord)
                .where(
                    col(HeldQueryRecord.exchange_id) == exchange_id,
                    col(HeldQueryRecord.closed_at).is_(None),  # the first outcome stands
                )
                .values(outcome=outcome, closed_at=self._clock())
            )
            session.commit()


def _aware(record: PartnerRequestRecord) -> PartnerRequestRecord:
    record.since, record.until, record.filed_at = (
        utc(record.since),
        utc(record.until),
        utc(record.filed_at),
    )
    for name in ("decided_at", "collected_at"):
        moment = getattr(record, name)
        if moment is not None:
            setattr(record, name, utc(moment))
    return record
