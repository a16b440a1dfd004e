"""Tables of what the node's cameras saw and what it matched: reads, hits, the hit feed.

A read holds what CAP-1 asks (plate, confidence, time, place, camera, the images by
content hash, and for a plate the node found in a frame, its box there) and nothing about
the owner (CAP-3). A hit names the read and the entry
it matched. Every hit, cancellation and disposition is
also an event of the hit feed, numbered by a cursor that only grows and is assigned
under a lock, so events commit in cursor order and a client resuming after a cursor
misses none (HOT-3).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime
from sqlmodel import Field, SQLModel


class ReadRecord(SQLModel, table=True):
    """One plate read by one of the agency's cameras (CAP-1, CAP-3)."""

    __tablename__ = "plate_read"

    id: str = Field(primary_key=True, max_length=36)
    plate: str = Field(max_length=8, index=True)
    confidence: float
    captured_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    camera_id: str = Field(max_length=64)
    latitude: float | None = None
    longitude: float | None = None
    plate_image_sha256: str = Field(default="", max_length=64)
    vehicle_image_sha256: str = Field(default="", max_length=64)
    # The plate's box in the frame, in pixels (x0, y0, x1, y1): only for reads the node
    # made from a frame; a camera that reads plates itself sends none.
    box_x0: int | None = None
    box_y0: int | None = None
    box_x1: int | None = None
    box_y1: int | None = None
    committed_at: datetime = Field(sa_type=DateTime(timezone=True))
    archived_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), index=True)


class HitRecord(SQLModel, table=True):
    """A read that matched a hotlist entry in force: a lead until a disposition (HOT-4)."""

    __tablename__ = "hit"

    id: str = Field(primary_key=True, max_length=36)
    read_id: str = Field(foreign_key="plate_read.id", index=True, max_length=36)
    list_id: str = Field(max_length=120)
    issuer_ori: str = Field(max_length=9)
    entry_id: str = Field(max_length=64, index=True)
    listed: str = Field(max_length=16)
    kind: str = Field(max_length=24)
    confidence: float
    retrospective: bool = False
    disposition: str = Field(default="", max_length=40)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


class HitEventRecord(SQLModel, table=True):
    """One event of the hit feed: a hit, a cancellation or a disposition, at its cursor.

    `body` is the event as patrol clients receive it, encrypted with the node's data key:
    a hit carries the entry's reason and contact, which are hotlist fields (HOT-2).
    """

    __tablename__ = "hit_event"

    cursor: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    kind: str = Field(max_length=16)
    hit_id: str = Field(default="", max_length=36)
    entry_id: str = Field(default="", max_length=64)
    body: bytes
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


class HitCursorRecord(SQLModel, table=True):
    """The last cursor given: one row, locked by each writer until it commits."""

    __tablename__ = "hit_cursor"

    id: int = Field(default=1, primary_key=True)
    last: int = Field(default=0, sa_type=BigInteger)


class LegalHoldRecord(SQLModel, table=True):
    """Reads kept past every retention limit for a case (RET-4), until the hold is released.

    A hold covers the reads of a plate (whole or partial) seen within a window. It names
    the case, the reason, the investigator to contact and the supervisor who approved it,
    and is due for review two years after it was placed, and every two years after.
    """

    __tablename__ = "legal_hold"

    id: str = Field(primary_key=True, max_length=36)
    plate: str = Field(max_length=16)
    since: datetime = Field(sa_type=DateTime(timezone=True))
    until: datetime = Field(sa_type=DateTime(timezone=True))
    case_number: str = Field(max_length=64)
    reason: str = Field(max_length=500)
    investigator_contact: str = Field(max_length=200)
    supervisor_approval: str = Field(max_length=200)
    placed_by: str = Field(max_length=400)
    placed_at: datetime = Field(sa_type=DateTime(timezone=True))
    reviewed_at: datetime = Field(sa_type=DateTime(timezone=True))
    released_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    released_by: str = Field(default="", max_length=400)


class ReadCorrectionRecord(SQLModel, table=True):
    """A correction of a misread (CAP-4): the read itself is never altered.

    Both stay visible to those allowed to see them: the original as the camera read it,
    and each correction with who made it and when.
    """

    __tablename__ = "read_correction"

    id: str = Field(primary_key=True, max_length=36)
    read_id: str = Field(foreign_key="plate_read.id", index=True, max_length=36)
    plate: str = Field(max_length=8, index=True)
    reason: str = Field(max_length=500)
    corrected_by: str = Field(max_length=400)
    corrected_at: datetime = Field(sa_type=DateTime(timezone=True))


class IncidentRecord(SQLModel, table=True):
    """A breach of the system's data (SEC-3), with the records it affected.

    500 or more affected persons marks it for the Attorney General's form (Civil Code
    1798.29 / 1798.82).
    """

    __tablename__ = "security_incident"

    id: str = Field(primary_key=True, max_length=36)
    description: str = Field(max_length=2000)
    discovered_at: datetime = Field(sa_type=DateTime(timezone=True))
    affected_records: int
    affected_persons: int
    attorney_general_form: bool
    recorded_by: str = Field(max_length=400)
    recorded_at: datetime = Field(sa_type=DateTime(timezone=True))


class CaptureKeyRecord(SQLModel, table=True):
    """A frame or read a camera sent under its own id, and what it was answered.

    A call sent again after its acknowledgement was lost carries the same ids: each is
    found here and answered as it was the first time, so its reads are stored, and its
    hits raised, once. `digest` is what was sent under the id, so an id reused for
    something else is refused rather than answered. Kept for `KEEP_KEYS` at least, then
    pruned by the daily retention job; no foreign key, so retention may delete the reads.
    """

    __tablename__ = "capture_key"

    camera_id: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=64)
    digest: str = Field(max_length=64)
    answer: bytes
    hits: int
    taken_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
