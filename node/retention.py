"""Retention of the agency's reads, and legal holds (RET-1…RET-4).

The profile says how long reads stay visible (`read_period`, RET-1), whether they are
then archived, flagged and hidden from data users (RET-2), and when they are deleted for
good (`hard_limit`, RET-3). `RetentionKeeper.run` applies it: each read whose period
has passed is archived, or deleted when the profile keeps no archive; each past the hard
limit is deleted with its images and its hits. A read under a legal hold is skipped by
both (RET-4). Audit records are not reads: no purge touches them (AUD-2).

A hold covers the reads of one plate (whole or partial) seen in a window, for a case,
with the reason, the investigator to contact and the supervising approval; it is due
for review two years after it was placed or last reviewed, and a released hold lets the
reads go at the next run.

Periods are calendar periods (`Period.add_to`): the database is asked for reads older
than the period's shortest span, and each is then checked exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from node.audit import AuditLog
from node.clock import Clock
from node.errors import NotFoundError, PreconditionError, ValidationError
from node.hotlists.entry import PlatePattern
from node.profile import Period, Retention
from node.reads import ImageStore
from node.store.capture_models import (
    HitEventRecord,
    HitRecord,
    LegalHoldRecord,
    ReadCorrectionRecord,
    ReadRecord,
)
from node.store.models import utc
from node.store.sharing import SharedReadRecord

REVIEW_EVERY = Period(years=2)
BATCH = 1000
MAX_TEXT = {"reason": 500, "investigator_contact": 200, "supervisor_approval": 200}


@dataclass(frozen=True)
class RetentionRun:
    """What one run did: reads archived, deleted, and kept only by a hold."""

    archived: int
    deleted: int
    held: int


@dataclass(frozen=True, kw_only=True)
class NewHold:
    """A legal hold to place (RET-4)."""

    plate: str
    since: datetime
    until: datetime
    case_number: str
    reason: str
    investigator_contact: str
    supervisor_approval: str


class LegalHolds:
    """The legal holds placed on the agency's reads."""

    def __init__(self, engine: Engine, *, clock: Clock) -> None:
        """Keep holds in `engine`'s database."""
        self._engine = engine
        self._clock = clock

    def place(self, hold: NewHold, *, user: str) -> LegalHoldRecord:
        """Place a hold; every field is required (RET-4).

        Raises:
            ValidationError: A field is missing, too long, or the window empty or naive.
        """
        pattern = PlatePattern.parse(hold.plate)
        if hold.since.tzinfo is None or hold.until.tzinfo is None or hold.since >= hold.until:
            raise ValidationError("until", "the window needs aware bounds, since before until")
        texts = {"case_number": hold.case_number, "reason": hold.reason,
                 "investigator_contact": hold.investigator_contact,
                 "supervisor_approval": hold.supervisor_approval}  # fmt: skip
        for name, value in texts.items():
            if not value.strip() or len(value) > MAX_TEXT.get(name, 64):
                raise ValidationError(name, f"is required, at most {MAX_TEXT.get(name, 64)} long")
        now = self._clock()
        record = LegalHoldRecord(
            id=str(uuid.uuid4()),
            plate=pattern.text,
            since=hold.since,
            until=hold.until,
            case_number=hold.case_number,
            reason=hold.reason,
            investigator_contact=hold.investigator_contact,
            supervisor_approval=hold.supervisor_approval,
            placed_by=user,
            placed_at=now,
            reviewed_at=now,
        )
        with Session(self._engine) as session:
            session.add(record)
            session.commit()
            session.refresh(record)
            return _aware(record)

    def release(self, hold_id: str, *, user: str) -> LegalHoldRecord:
        """Release a hold: its reads go at the next retention run.

        Raises:
            NotFoundError: No such hold.
            PreconditionError: It was released already.
        """
        return self._change(hold_id, released_at=self._clock(), released_by=user)

    def review(self, hold_id: str) -> LegalHoldRecord:
        """Record the hold's review: the next is due two years on.

        Raises:
            NotFoundError: No such hold.
            PreconditionError: It was released already.
        """
        return self._change(hold_id, reviewed_at=self._clock())

    def active(self) -> list[LegalHoldRecord]:
        """The holds not released, oldest first."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(LegalHoldRecord)
                .where(col(LegalHoldRecord.released_at).is_(None))
                .order_by(col(LegalHoldRecord.placed_at))
            ).all()
            return [_aware(row) for row in rows]

    def due_for_review(self) -> list[LegalHoldRecord]:
        """The holds whose two-year review is due (RET-4)."""
        now = self._clock()
        return [hold for hold in self.active() if REVIEW_EVERY.add_to(hold.reviewed_at) <= now]

    def _change(self, hold_id: str, **changes: object) -> LegalHoldRecord:
        with Session(self._engine) as session:
            record = session.get(LegalHoldRecord, hold_id)
            if record is None:
                raise NotFoundError(f"no legal hold {hold_id!r}")
            if record.released_at is not None:
                raise PreconditionError(f"legal hold {hold_id} was released already")
            for name, value in changes.items():
                setattr(record, name, value)
            session.add(record)
            session.commit()
            session.refresh(record)
            return _aware(record)


def holds_cover(holds: Sequence[LegalHoldRecord], read: ReadRecord) -> bool:
    """Whether any of `holds` keeps `read`."""
    seen = utc(read.captured_at)
    return any(
        hold.since <= seen < hold.until and PlatePattern(hold.plate).matches(read.plate)
        for hold in holds
    )


class RetentionKeeper:
    """Applies the profile's retention to the agency's reads, sparing held ones."""

    def __init__(
        self,
        engine: Engine,
        *,
        retention: Retention,
        holds: LegalHolds,
        images: ImageStore,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        """Keep `engine`'s reads by `retention`, except what `holds` keep."""
        self._engine = engine
        self._retention = retention
        self._holds = holds
        self._images = images
        self._audit = audit
        self._clock = clock

    def run(self, *, actor: str, agency: str) -> RetentionRun:
        """Archive and delete what the profile says is due; audited as ``retention.run``."""
        now = self._clock()
        holds = self._holds.active()
        retention = self._retention
        # Deleting first: a read past both limits is not archived on its way out.
        deleted, held_delete = self._apply(retention.delete_after, now, holds, archive=False)
        archived = held_archive = 0
        if retention.archive:
            archived, held_archive = self._apply(retention.read_period, now, holds, archive=True)
        run = RetentionRun(archived, deleted, max(held_archive, held_delete))
        self._audit.append(
            "retention.run",
            actor=actor,
            agency=agency,
            details={
                "archived": run.archived,
                "deleted": run.deleted,
                "held": run.held,
                "holds_due_for_review": len(self._holds.due_for_review()),
            },
        )
        return run

    def _apply(
        self, period: Period, now: datetime, holds: list[LegalHoldRecord], *, archive: bool
    ) -> tuple[int, int]:
        """Archive (or delete) every read past `period`; (how many, how many held)."""
        candidates_before = now - period.shortest
        done = held = 0
        after = ""
        while True:
            with Session(self._engine) as session:
                query = select(ReadRecord).where(
                    col(ReadRecord.captured_at) <= candidates_before, col(ReadRecord.id) > after
                )
                if archive:
                    query = query.where(col(ReadRecord.archived_at).is_(None))
                batch = session.exec(query.order_by(col(ReadRecord.id)).limit(BATCH)).all()
            if not batch:
                return done, held
            after = batch[-1].id
            due = [r for r in batch if period.add_to(utc(r.captured_at)) <= now]
            kept = [r for r in due if holds_cover(holds, r)]
            going = [r for r in due if r not in kept]
            held += len(kept)
            done += len(going)
            if going:
                (self._archive if archive else self._delete)(going, now)

    def _archive(self, reads: list[ReadRecord], now: datetime) -> None:
        with Session(self._engine) as session:
            session.exec(
                update(ReadRecord)
                .where(col(ReadRecord.id).in_([r.id for r in reads]))
                .values(archived_at=now)
            )
            session.commit()

    def _delete(self, reads: list[ReadRecord], now: datetime) -> None:
        """Delete reads with their hits, hit events and corrections, then unused images.

        What was sent of them to partners (`shared_read`) goes too: their images can no
        longer be asked for, and the audit log keeps the disclosures.
        """
        ids = [r.id for r in reads]
        with Session(self._engine) as session:
            hit_ids = list(
                session.exec(select(HitRecord.id).where(col(HitRecord.read_id).in_(ids)))
            )
            if hit_ids:
                session.exec(delete(HitEventRecord).where(col(HitEventRecord.hit_id).in_(hit_ids)))
                session.exec(delete(HitRecord).where(col(HitRecord.id).in_(hit_ids)))
            session.exec(
                delete(ReadCorrectionRecord).where(col(ReadCorrectionRecord.read_id).in_(ids))
            )
            session.exec(delete(SharedReadRecord).where(col(SharedReadRecord.read_id).in_(ids)))
            session.exec(delete(ReadRecord).where(col(ReadRecord.id).in_(ids)))
            session.commit()
            images = {d for r in reads for d in (r.plate_image_sha256, r.vehicle_image_sha256) if d}
            still_used = set(
                session.exec(
                    select(ReadRecord.plate_image_sha256).where(
                        col(ReadRecord.plate_image_sha256).in_(images)
                    )
                )
            ) | set(
                session.exec(
                    select(ReadRecord.vehicle_image_sha256).where(
                        col(ReadRecord.vehicle_image_sha256).in_(images)
                    )
                )
            )
        for digest in images - still_used:
            self._images.path(digest).unlink(missing_ok=True)


def _aware(record: LegalHoldRecord) -> LegalHoldRecord:
    record.since, record.until = utc(record.since), utc(record.until)
    record.placed_at, record.reviewed_at = utc(record.placed_at), utc(record.reviewed_at)
    if record.released_at is not None:
        record.released_at = utc(record.released_at)
    return record
