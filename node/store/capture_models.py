"""Tables of what the node's cameras saw and what it matched: reads, hits, the hit feed.

A read holds what CAP-1 asks (plate, confidence, time, place, camera, the images by
content hash) and nothing about the owner (CAP-3). A hit names the read and the entry
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
    committed_at: datetime = Field(sa_type=DateTime(timezone=True))


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
