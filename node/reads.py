"""Plate reads: committed, matched against every hotlist in force, hits recorded (HOT-1).

`ReadIntake.commit` takes a camera's reads, stores their images by content hash, and in
one transaction stores the reads, matches each against the live index and stores the
hits with their feed events. Only then does it return, so a camera is acknowledged
only for what is committed, and a hit is stored before it is pushed. A read keeps what
CAP-1 asks and nothing about the vehicle's owner (CAP-3).

`ReadIntake.search_back` runs the other way: entries just added to the agency's lists are
looked for among its reads of a recent window, and each read found raises a hit flagged
retrospective, stored and broadcast like any other.
"""

from __future__ import annotations

import hashlib
import math
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from alpr.patrol.v1 import patrol_service_pb2 as patrol_pb2
from node.clock import Clock
from node.errors import ValidationError
from node.hits import HitFeed, NewHit, new_hit_id
from node.hotlists.entry import PlatePattern, normalize_plate
from node.hotlists.store import StoredEntry
from node.matching.canonical import Difference, spellings
from node.matching.index import Match, MatchKind
from node.matching.live import ListedEntry, LiveIndex
from node.store.capture_models import HitRecord, ReadRecord
from node.store.engine import lock_for_write, table_of

MAX_READS = 100
MAX_CAMERA_ID = 64
MAX_PLATE_IMAGE = 256 * 1024
MAX_VEHICLE_IMAGE = 2 * 1024 * 1024
RETROSPECTIVE_WINDOW = timedelta(hours=72)
# Whole plates are looked up by their spellings (the plate index) when there are at most
# this many in all; past that, or for a partial pattern or an edit list, the window is read.
MAX_SPELLINGS = 2000
_IN_BATCH = 500
_READS = table_of(ReadRecord)
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

    def get(self, digest: str) -> bytes | None:
        """The image of `digest`, or None when it is no longer kept."""
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            return None


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
        retrospective: timedelta = RETROSPECTIVE_WINDOW,
    ) -> None:
        """Store in `engine` and `images`, match with `index`, record hits in `feed`.

        Args:
            engine: The node's store.
            images: Where plate and vehicle images go.
            index: The live index of every list in force.
            feed: The hit feed.
            clock: The time reads are committed, and matched, at.
            on_commit: Called after a commit that raised a hit (wakes the hit broker).
            retrospective: How far back `search_back` looks, from the time it runs.
        """
        self._engine = engine
        self._images = images
        self._index = index
        self._feed = feed
        self._clock = clock
        self._on_commit = on_commit
        self._window = retrospective

    def commit(self, camera_id: str, reads: Sequence[NewRead]) -> Committed:
        """Store `reads` from `camera_id`, match each, store the hits; all or nothing.

        Raises:
            ValidationError: The camera id, a plate, a confidence, a place or an image is
                not acceptable, or there are no reads or too many (nothing is stored).
        """
        check_camera(camera_id)
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

    def search_back(self, added: Sequence[StoredEntry]) -> list[int]:
        """Raise a retrospective hit for each recent read that matches an entry just added.

        The reads captured in the window before now are matched against an index of
        `added` alone (`LiveIndex.probe`), so a read matches as it would have live: whole,
        through confusables, a partial pattern, or one edit on a list that allows it. A
        read already hit on one of these entries (matched live after the entry went in) is
        skipped. The hits are stored with their feed events and the broker woken.

        Returns:
            The cursors of the hits raised, in order.
        """
        probe = self._index.probe(added)
        if not len(probe):
            return []
        now = self._clock()
        with Session(self._engine) as session:
            found = [
                (read_id, match)
                for read_id, plate in self._candidates(
                    session,
                    [stored.entry.plate for stored in added if stored.in_force],
                    now - self._window,
                    edits=any(held.allow_edit for held in probe.lists()),
                )
                for match in probe.match(plate, now)
            ]
        if not found:
            return []
        read_ids = sorted({read_id for read_id, _ in found})
        with Session(self._engine) as session:
            lock_for_write(session)
            reads: dict[str, ReadRecord] = {}
            done: set[tuple[str, str]] = set()
            for start in range(0, len(read_ids), _IN_BATCH):
                batch = read_ids[start : start + _IN_BATCH]
                reads.update(
                    (r.id, r)
                    for r in session.exec(select(ReadRecord).where(col(ReadRecord.id).in_(batch)))
                )
                done.update(
                    session.exec(
                        select(HitRecord.read_id, HitRecord.entry_id).where(
                            col(HitRecord.read_id).in_(batch)
                        )
                    ).all()
                )
            hits = [
                hit
                for read_id, match in found
                if (read_id, match.entry_id) not in done
                and (hit := self._hit(reads[read_id], match, retrospective=True)) is not None
            ]
            cursors = self._feed.record_hits(session, hits)
            session.commit()
        if cursors:
            self._on_commit()
        return cursors

    @staticmethod
    def _candidates(
        session: Session, listed: Sequence[str], since: datetime, *, edits: bool
    ) -> list[tuple[str, str]]:
        """Ids and plates of the reads since `since` that may match a plate of `listed`.

        When every plate is whole, on lists without edits, and their spellings are few,
        they are looked up by the plate index; otherwise every read of the window is a
        candidate. The caller's index decides which candidates match.
        """
        recent = sa_select(_READS.c.id, _READS.c.plate).where(_READS.c.captured_at >= since)
        wanted = None if edits else _all_spellings(listed)
        if wanted is None:
            return [(read_id, plate) for read_id, plate in session.connection().execute(recent)]
        plates = sorted(wanted)
        return [
            (read_id, plate)
            for start in range(0, len(plates), _IN_BATCH)
            for read_id, plate in session.connection().execute(
                recent.where(_READS.c.plate.in_(plates[start : start + _IN_BATCH]))
            )
        ]

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


def _all_spellings(listed: Sequence[str]) -> set[str] | None:
    """Every spelling of whole plates `listed`; None for a partial one or over `MAX_SPELLINGS`."""
    wanted: set[str] = set()
    for plate in listed:
        found = None if PlatePattern(plate).is_partial else spellings(plate, MAX_SPELLINGS)
        if found is None:
            return None
        wanted.update(found)
        if len(wanted) > MAX_SPELLINGS:
            return None
    return wanted


def check_camera(camera_id: str) -> None:
    """Check a camera's id as the agency names it.

    Raises:
        ValidationError: It is empty, too long or not printable.
    """
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
