"""Corrections of misreads (CAP-4) and security incidents (SEC-3).

A misread is never fixed in place: a correction record names the plate it should have
been, why, who corrected it and when, and searches show it beside the original. An
incident records a breach with the records and persons it affected; 500 persons or more
marks it for the Attorney General's form (Civil Code 1798.29, 1798.82).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from node.clock import Clock
from node.errors import NotFoundError, ValidationError
from node.hotlists.entry import normalize_plate
from node.store.capture_models import IncidentRecord, ReadCorrectionRecord, ReadRecord
from node.store.models import utc

AG_FORM_PERSONS = 500
MAX_REASON = 500
MAX_DESCRIPTION = 2000


class Corrections:
    """Corrections of the agency's misreads; the reads themselves stay as read."""

    def __init__(self, engine: Engine, *, clock: Clock) -> None:
        """Keep corrections in `engine`'s database."""
        self._engine = engine
        self._clock = clock

    def correct(self, read_id: str, plate: str, reason: str, *, user: str) -> ReadCorrectionRecord:
        """Record that read `read_id` should have been `plate`.

        Raises:
            ValidationError: The plate is malformed, or the reason missing or too long.
            NotFoundError: No such read.
        """
        corrected = normalize_plate(plate)
        if not reason.strip() or len(reason) > MAX_REASON:
            raise ValidationError("reason", f"is required, at most {MAX_REASON} characters")
        with Session(self._engine) as session:
            read = session.get(ReadRecord, read_id)
            if read is None:
                raise NotFoundError(f"no read {read_id!r}")
            if corrected == read.plate:
                raise ValidationError("plate", "is what the camera read; nothing to correct")
            record = ReadCorrectionRecord(
                id=str(uuid.uuid4()),
                read_id=read_id,
                plate=corrected,
                reason=reason,
                corrected_by=user,
                corrected_at=self._clock(),
            )
            session.add(record)
            session.commit()
            session.refresh(record)
            record.corrected_at = utc(record.corrected_at)
            return record

    def of(self, read_ids: Collection[str]) -> dict[str, list[ReadCorrectionRecord]]:
        """The corrections of each of `read_ids` that has any, oldest first."""
        found: dict[str, list[ReadCorrectionRecord]] = {}
        if not read_ids:
            return found
        with Session(self._engine) as session:
            rows = session.exec(
                select(ReadCorrectionRecord)
                .where(col(ReadCorrectionRecord.read_id).in_(list(read_ids)))
                .order_by(col(ReadCorrectionRecord.corrected_at))
            ).all()
        for row in rows:
            row.corrected_at = utc(row.corrected_at)
            found.setdefault(row.read_id, []).append(row)
        return found


class Incidents:
    """The security incidents the agency recorded (SEC-3)."""

    def __init__(self, engine: Engine, *, clock: Clock) -> None:
        """Keep incidents in `engine`'s database."""
        self._engine = engine
        self._clock = clock

    def record(
        self,
        description: str,
        *,
        discovered_at: datetime,
        affected_records: int,
        affected_persons: int,
        user: str,
    ) -> IncidentRecord:
        """Record a breach; 500 affected persons or more marks it for the AG's form.

        Raises:
            ValidationError: A field is missing, negative, or too long.
        """
        if not description.strip() or len(description) > MAX_DESCRIPTION:
            raise ValidationError(
                "description", f"is required, at most {MAX_DESCRIPTION} characters"
            )
        if discovered_at.tzinfo is None:
            raise ValidationError("discovered_at", "must have a time zone")
        for name, value in (
            ("affected_records", affected_records),
            ("affected_persons", affected_persons),
        ):
            if value < 0:
                raise ValidationError(name, "must not be negative")
        record = IncidentRecord(
            id=str(uuid.uuid4()),
            description=description,
            discovered_at=discovered_at,
            affected_records=affected_records,
            affected_persons=affected_persons,
            attorney_general_form=affected_persons >= AG_FORM_PERSONS,
            recorded_by=user,
            recorded_at=self._clock(),
        )
        with Session(self._engine) as session:
            session.add(record)
            session.commit()
            session.refresh(record)
        return _aware(record)

    def all(self) -> list[IncidentRecord]:
        """Every incident, most recently discovered first."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(IncidentRecord).order_by(col(IncidentRecord.discovered_at).desc())
            ).all()
        return [_aware(row) for row in rows]


def _aware(record: IncidentRecord) -> IncidentRecord:
    record.discovered_at, record.recorded_at = utc(record.discovered_at), utc(record.recorded_at)
    return record
