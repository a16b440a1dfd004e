"""Plate reads: committed, matched against every hotlist in force, hits recorded (HOT-1).

`ReadIntake.commit` takes a camera's reads, stores their images by content hash, and in
one transaction stores the reads, matches each against the live index and stores the
hits with their feed events. Only then does it return, so a camera is acknowledged
only for what is committed, and a hit is stored before it is pushed. A read keeps what
CAP-1 asks and nothing about the vehicle's owner (CAP-3).
"""

from __future__ import annotations

import hashlib
import math
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from alpr.patrol.v1 import patrol_service_pb2 as patrol_pb2
from node.clock import Clock
from node.errors import ValidationError
from node.hits import HitFeed, NewHit, new_hit_id
from node.hotlists.entry import normalize_plate
from node.matching.canonical import Difference
from node.matching.index import Match, MatchKind
from node.matching.live import ListedEntry, LiveIndex
from node.store.capture_models import ReadRecord
from node.store.engine import lock_for_write

MAX_READS = 100
MAX_CAMERA_ID = 64
MAX_PLATE_IMAGE = 256 * 1024
MAX_VEHICLE_IMAGE = 2 * 1024 * 1024
_MATCH_KINDS = {
    MatchKind.EXACT: patrol_pb2.MATCH_KIND_EXACT,
    MatchKind.CONFUSABLE: patrol_pb2.MATCH_KIND_CONFUSABLE,
    MatchKind.PARTIAL: patrol_pb2.MATCH_KIND_PARTIAL,
    MatchKind.EDIT: patrol_pb2.MATCH_KIND_EDIT,
    MatchKind.PARTIAL_CONFUSABLE: patrol_pb2.MATCH_KIND_PARTIAL_CONFUSABLE,
}


@dataclass(frozen=True, kw_only=True)
class NewRead:
    """A read as a camera reports it (CAP-1): no owner, no registration (CAP-3)."""

    plate: str
    confidence: float
    captured_at: datetime
    latitude: float | None = None
    longitude: float | None = None
    plate_image: bytes = b""
    vehicle_image: bytes = b""


@dataclass(frozen=True)
class Committed:
    """What a commit stored: each read's id, in order, and the cursors of the hits raised."""

    read_ids: list[str]
    hit_cursors: list[int] = field(default_factory=list)


class ImageStore:
    """Images on disk by the SHA-256 of their bytes: the same image is stored once."""

    def __init__(self, directory: Path) -> None:
        """Keep images under `directory`."""
        self._directory = directory

    def put(self, data: bytes) -> str:
        """Store `data` (written and synced before returning); its hex SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            with partial.open("wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(path)
        return digest

    def path(self, digest: str) -> Path:
        """Where the image of `digest` is kept."""
        return self._directory / digest[:2] / f"{digest}.jpg"


class ReadIntake:
    """Commits reads and the hits they raise."""

    def __init__(
        self,
        engine: Engine,
        *,
        images: ImageStore,
        index: LiveIndex,
        feed: HitFeed,
        clock: Clock,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        """Store in `engine` and `images`, match with `index`, record hits in `feed`.

        Args:
            engine: The node's store.
            images: Where plate and vehicle images go.
            index: The live index of every list in force.
            feed: The hit feed.
            clock: The time reads are committed, and matched, at.
            on_commit: Called after a commit that raised a hit (wakes the hit broker).
        """
        self._engine = engine
        self._images = images
        self._index = index
        self._feed = feed
        self._clock = clock
        self._on_commit = on_commit

    def commit(self, camera_id: str, reads: Sequence[NewRead]) -> Committed:
        """Store `reads` from `camera_id`, match each, store the hits; all or nothing.

        Raises:
            ValidationError: The camera id, a plate, a confidence, a place or an image is
                not acceptable, or there are no reads or too many (nothing is stored).
        """
        _check_camera(camera_id)
        if not 0 < len(reads) <= MAX_READS:
            raise ValidationError("reads", f"send 1 to {MAX_READS} reads at a time")
        plates = [_checked(n, read) for n, read in enumerate(reads)]
        self._index.refresh()
        now = self._clock()
        records = [
            ReadRecord(
                id=str(uuid.uuid4()),
                plate=plate,
                confidence=read.confidence,
                captured_at=read.captured_at,
                camera_id=camera_id,
                latitude=read.latitude,
                longitude=read.longitude,
                plate_image_sha256=self._images.put(read.plate_image) if read.plate_image else "",
                vehicle_image_sha256=(
                    self._images.put(read.vehicle_image) if read.vehicle_image else ""
                ),
                committed_at=now,
            )
            for plate, read in zip(plates, reads, strict=True)
        ]
        hits = [
            hit
            for record in records
            for match in self._index.match(record.plate, now)
            if (hit := self._hit(record, match)) is not None
        ]
        read_ids = [record.id for record in records]
        with Session(self._engine) as session:
            lock_for_write(session)
            session.add_all(records)
            session.flush()
            cursors = self._feed.record_hits(session, hits)
            session.commit()
        if cursors:
            self._on_commit()
        return Committed(read_ids, cursors)

    def _hit(self, read: ReadRecord, match: Match, *, retrospective: bool = False) -> NewHit | None:
        listed = self._index.listed(match)
        if listed is None:
            return None
        message = hit_message(read, match, listed, retrospective=retrospective)
        return NewHit(
            read_id=read.id,
            list_id=match.list_id,
            issuer_ori=listed.issuer_ori,
            entry_id=match.entry_id,
            listed=match.listed,
            kind=match.kind.value,
            confidence=match.confidence,
            retrospective=retrospective,
            message=message,
        )


def hit_message(
    read: ReadRecord, match: Match, listed: ListedEntry, *, retrospective: bool
) -> patrol_pb2.Hit:
    """What a patrol client is shown of a hit."""
    message = patrol_pb2.Hit(
        hit_id=new_hit_id(),
        plate=read.plate,
        listed=match.listed,
        list_name=listed.list_name,
        issuer_ori=listed.issuer_ori,
        entry_id=match.entry_id,
        list_type=listed.entry.list_type.value,
        reason=listed.entry.reason,
        contact=listed.entry.contact,
        kind=_MATCH_KINDS[match.kind],
        confidence=match.confidence,
        differences=[_describe(d) for d in match.differences],
        camera_id=read.camera_id,
        latitude=read.latitude or 0.0,
        longitude=read.longitude or 0.0,
        plate_image_sha256=read.plate_image_sha256,
        read_confidence=read.confidence,
        retrospective=retrospective,
    )
    message.seen_at.FromDatetime(read.captured_at)
    return message


def _describe(difference: Difference) -> str:
    position = difference.position + 1
    if not difference.read:
        return f"{position}: read lacks {difference.listed}"
    if not difference.listed:
        return f"{position}: read has extra {difference.read}"
    return f"{position}: read {difference.read}, listed {difference.listed}"


def _check_camera(camera_id: str) -> None:
    if not 0 < len(camera_id) <= MAX_CAMERA_ID or not camera_id.isprintable():
        raise ValidationError("camera_id", f"must be 1 to {MAX_CAMERA_ID} printable characters")


def _checked(number: int, read: NewRead) -> str:
    """The read's canonical plate, once every field is checked."""
    where = f"reads[{number}]"
    plate = normalize_plate(read.plate, f"{where}.plate")
    if not (0.0 <= read.confidence <= 1.0) or math.isnan(read.confidence):
        raise ValidationError(f"{where}.confidence", "must be between 0 and 1")
    if read.captured_at.tzinfo is None:
        raise ValidationError(f"{where}.captured_at", "must have a time zone")
    for name, value, bound in (("latitude", read.latitude, 90), ("longitude", read.longitude, 180)):
        if value is not None and not -bound <= value <= bound:
            raise ValidationError(f"{where}.{name}", f"must be within ±{bound} degrees")
    if len(read.plate_image) > MAX_PLATE_IMAGE:
        raise ValidationError(f"{where}.plate_image", f"at most {MAX_PLATE_IMAGE} bytes")
    if len(read.vehicle_image) > MAX_VEHICLE_IMAGE:
        raise ValidationError(f"{where}.vehicle_image", f"at most {MAX_VEHICLE_IMAGE} bytes")
    return plate
