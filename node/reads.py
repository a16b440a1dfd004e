"""Plate reads: committed, matched against every hotlist in force, hits recorded (HOT-1).

`ReadIntake.take` takes what a camera sent (frames or reads, each with the reads it
holds), stores their images by content hash, and in one transaction stores the reads,
matches each against the live index and stores the hits with their feed events. Only
then does it return, so a camera is acknowledged only for what is committed, and a hit
is stored before it is pushed. A read keeps what CAP-1 asks and nothing about the
vehicle's owner (CAP-3).

Exactly once: a camera gives each frame or read its own id (a `CameraKey`), kept in the
same transaction with what the call answered for it. A call sent again because its
acknowledgement was lost is answered from there, and nothing of it is stored or matched
twice. Ids are kept for `KEEP_KEYS` at least (`forget_keys`, run daily, prunes them);
a frame in which no plate was read leaves no id (it stored nothing that could be
doubled), so the ids never outnumber the reads.

`ReadIntake.search_back` runs the other way: entries just added to the agency's lists are
looked for among its reads of a recent window, and each read found raises a hit flagged
retrospective, stored and broadcast like any other.
"""

from __future__ import annotations

import hashlib
import math
import os
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from alpr.patrol.v1 import patrol_service_pb2 as patrol_pb2
from node.capture.headers import check_frame_size
from node.clock import Clock
from node.errors import ValidationError
from node.hits import HitFeed, NewHit, new_hit_id
from node.hotlists.entry import PlatePattern, normalize_plate
from node.hotlists.store import StoredEntry
from node.matching.canonical import Difference, spellings
from node.matching.index import Match, MatchKind
from node.matching.live import ListedEntry, LiveIndex
from node.store.capture_models import CaptureKeyRecord, HitRecord, ReadRecord
from node.store.engine import lock_for_write, table_of

MAX_READS = 100
MAX_CAMERA_ID = 64
MAX_PLATE_IMAGE = 256 * 1024
MAX_VEHICLE_IMAGE = 2 * 1024 * 1024
# The images of one call of reads, in all: with 100 reads' other fields, a full call fits
# the least message limit a node may be given (gateway.config.MIN_MESSAGE_BYTES).
MAX_CALL_IMAGE_BYTES = 2 * 1024 * 1024
MAX_KEY = 64
KEEP_KEYS = timedelta(hours=24)
EARLIEST_READ = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(hours=1)
RETROSPECTIVE_WINDOW = timedelta(hours=72)
# Whole plates are looked up by their spellings (the plate index) when there are at most
# this many in all; past that, or for a partial pattern or an edit list, the window is read.
MAX_SPELLINGS = 2000
_IN_BATCH = 500
_READS = table_of(ReadRecord)
_NO_BOX = (None, None, None, None)  # a read a camera made itself
_KEYS = table_of(CaptureKeyRecord)
_MATCH_KINDS = {
    MatchKind.EXACT: patrol_pb2.MATCH_KIND_EXACT,
    MatchKind.CONFUSABLE: patrol_pb2.MATCH_KIND_CONFUSABLE,
    MatchKind.PARTIAL: patrol_pb2.MATCH_KIND_PARTIAL,
    MatchKind.EDIT: patrol_pb2.MATCH_KIND_EDIT,
    MatchKind.PARTIAL_CONFUSABLE: patrol_pb2.MATCH_KIND_PARTIAL_CONFUSABLE,
}


def new_read_id() -> str:
    """A fresh id for a read."""
    return str(uuid.uuid4())


@dataclass(frozen=True, kw_only=True)
class NewRead:
    """A read as a camera reports it (CAP-1): no owner, no registration (CAP-3).

    `id` is the id it is stored under, chosen before the commit so that the answer to
    the call, kept with the camera's key, can name it.
    """

    plate: str
    confidence: float
    captured_at: datetime
    latitude: float | None = None
    longitude: float | None = None
    plate_image: bytes = b""
    vehicle_image: bytes = b""
    box: tuple[int, int, int, int] | None = None
    id: str = field(default_factory=new_read_id)


@dataclass(frozen=True, kw_only=True)
class CameraKey:
    """The camera's own id for a frame or read it sent.

    Attributes:
        key: The id: at most `MAX_KEY` printable characters; "" for none (then what was
            sent is taken each time it is sent).
        field: Where it is in the call (``frames[2].frame_id``), named when it is refused.
        digest: The hex SHA-256 of what was sent under it: the same id sent again with
            anything else is refused, never taken for a repeat.
    """

    key: str = ""
    field: str = ""
    digest: str = ""


@dataclass(frozen=True, kw_only=True)
class Sent:
    """A frame or read a camera sent, the reads it holds, and what its call answers for it.

    Attributes:
        key: The camera's id for it.
        reads: Its reads; none for a frame in which no plate was read.
        answer: What the call answers for it (opaque here), kept with the key to answer a
            repeat.
    """

    key: CameraKey = CameraKey()
    reads: Sequence[NewRead] = ()
    answer: bytes = b""


@dataclass(frozen=True)
class Taken:
    """What a `Sent` is answered, and how many hits its reads raised, the first time."""

    answer: bytes
    hits: int


@dataclass(frozen=True)
class Committed:
    """What a commit stored and answered.

    Attributes:
        read_ids: Each read stored, in order; none of what was taken before.
        hit_cursors: The cursors of the hits raised; none by what was taken before.
        taken: What each `Sent` is answered, in order: a repeat as it was the first time.
    """

    read_ids: list[str]
    hit_cursors: list[int] = field(default_factory=list)
    taken: list[Taken] = field(default_factory=list)


@dataclass(frozen=True)
class _Stored:
    """What one transaction of `ReadIntake.take` stored: each item's answer, reads, hits."""

    taken: list[Taken]
    read_ids: list[str]
    cursors: list[int]


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
        """Store `reads` from `camera_id` (no camera ids), match each, store the hits.

        Raises:
            ValidationError: As `check_reads` and `take` say (nothing is stored).
        """
        check_reads(reads, now=self._clock())
        return self.take(camera_id, [Sent(reads=reads)])

    def take(self, camera_id: str, sent: Sequence[Sent]) -> Committed:
        """Store the reads of `sent` from `camera_id`, match each, store the hits; all or nothing.

        What was taken before under the same camera key (its acknowledgement lost) is
        answered as it was then, and nothing of it is stored or matched again. That is
        looked up again once the write lock is held, so two calls racing with one key take
        it once; on PostgreSQL, where inserts do not wait on that lock, the loser's insert
        of the key fails, and its second try finds the winner's answer.

        Raises:
            ValidationError: The camera id, a key, a plate, a confidence, a place or an
                image is not acceptable, a key was taken for something else, or there are
                more than `MAX_READS` reads (nothing is stored).
        """
        check_camera(camera_id)
        check_keys([item.key for item in sent])
        reads = [read for item in sent for read in item.reads]
        if len(reads) > MAX_READS:
            raise ValidationError("reads", f"at most {MAX_READS} reads at a time")
        now = self._clock()
        plates = {read.id: _checked(n, read, now) for n, read in enumerate(reads)}
        earlier = self.earlier(camera_id, [item.key for item in sent])
        fresh = [n for n, item in enumerate(sent) if item.reads and item.key.key not in earlier]
        images = {
            read.id: (self._put(read.plate_image), self._put(read.vehicle_image))
            for n in fresh
            for read in sent[n].reads
        }
        stored = _Stored([], [], [])
        if fresh:
            items = [sent[n] for n in fresh]
            try:
                stored = self._store(camera_id, items, plates, images)
            except IntegrityError:  # PostgreSQL: a racing call stored one of these keys first
                stored = self._store(camera_id, items, plates, images)
        if stored.cursors:
            self._on_commit()
        now_taken = dict(zip(fresh, stored.taken, strict=True))
        return Committed(
            stored.read_ids,
            stored.cursors,
            [
                earlier.get(item.key.key) or now_taken.get(n) or Taken(item.answer, 0)
                for n, item in enumerate(sent)
            ],
        )

    def earlier(self, camera_id: str, keys: Sequence[CameraKey]) -> dict[str, Taken]:
        """What was answered before for each of `keys` that `camera_id` sent already.

        Raises:
            ValidationError: A key was taken for something else (its digest differs).
        """
        if not any(key.key for key in keys):
            return {}
        with Session(self._engine) as session:
            return _known(session, camera_id, keys)

    def forget_keys(self) -> int:
        """Forget the camera keys taken more than `KEEP_KEYS` ago; how many went."""
        with Session(self._engine) as session:
            gone = session.connection().execute(
                delete(_KEYS).where(_KEYS.c.taken_at < self._clock() - KEEP_KEYS)
            )
            session.commit()
        return int(gone.rowcount)

    def _put(self, image: bytes) -> str:
        return self._images.put(image) if image else ""

    def _store(
        self,
        camera_id: str,
        fresh: Sequence[Sent],
        plates: dict[str, str],
        images: dict[str, tuple[str, str]],
    ) -> _Stored:
        """Store what of `fresh` is not taken yet, with its keys, in one transaction."""
        self._index.refresh()
        now = self._clock()
        with Session(self._engine) as session:
            lock_for_write(session)
            known = _known(session, camera_id, [item.key for item in fresh])
            new = [item for item in fresh if item.key.key not in known]
            records = [
                ReadRecord(
                    id=read.id,
                    plate=plates[read.id],
                    confidence=read.confidence,
                    captured_at=read.captured_at,
                    camera_id=camera_id,
                    latitude=read.latitude,
                    longitude=read.longitude,
                    plate_image_sha256=images[read.id][0],
                    vehicle_image_sha256=images[read.id][1],
                    box_x0=box[0],
                    box_y0=box[1],
                    box_x1=box[2],
                    box_y1=box[3],
                    committed_at=now,
                )
                for item in new
                for read in item.reads
                for box in [read.box or _NO_BOX]
            ]
            hits = [
                hit
                for record in records
                for match in self._index.match(record.plate, now)
                if (hit := self._hit(record, match)) is not None
            ]
            read_ids = [record.id for record in records]
            raised = Counter(hit.read_id for hit in hits)
            taken = [
                known.get(item.key.key)
                or Taken(item.answer, sum(raised[read.id] for read in item.reads))
                for item in fresh
            ]
            session.add_all(records)
            session.flush()
            cursors = self._feed.record_hits(session, hits)
            session.add_all(
                CaptureKeyRecord(
                    camera_id=camera_id,
                    key=item.key.key,
                    digest=item.key.digest,
                    answer=answer.answer,
                    hits=answer.hits,
                    taken_at=now,
                )
                for item, answer in zip(fresh, taken, strict=True)
                if item.key.key and item.key.key not in known
            )
            session.commit()
        return _Stored(taken, read_ids, cursors)

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


def check_reads(reads: Sequence[NewRead], *, now: datetime) -> None:
    """Check a call of reads from a camera: their count, each one, and their images in all.

    `now` is the node's time: a read taken more than `MAX_CLOCK_AHEAD` after it is refused.

    Raises:
        ValidationError: There are none or too many, a field is not acceptable, or the
            images come to more than `MAX_CALL_IMAGE_BYTES`.
    """
    if not 0 < len(reads) <= MAX_READS:
        raise ValidationError("reads", f"send 1 to {MAX_READS} reads at a time")
    for number, read in enumerate(reads):
        _checked(number, read, now)
    images = sum(len(read.plate_image) + len(read.vehicle_image) for read in reads)
    if images > MAX_CALL_IMAGE_BYTES:
        raise ValidationError(
            "reads",
            f"hold {images} bytes of images; at most {MAX_CALL_IMAGE_BYTES} in one call"
            " (send fewer reads at a time)",
        )


def check_keys(keys: Sequence[CameraKey]) -> None:
    """Check the ids a camera gave the frames or reads of one call.

    Raises:
        ValidationError: An id is too long or not printable, or two in the call are the
            same; names the field.
    """
    seen: dict[str, str] = {}
    for key in keys:
        if not key.key:
            continue
        if len(key.key) > MAX_KEY or not key.key.isprintable():
            raise ValidationError(key.field, f"must be at most {MAX_KEY} printable characters")
        if key.key in seen:
            raise ValidationError(key.field, f"is {seen[key.key]}'s too: give each its own id")
        seen[key.key] = key.field


def _known(session: Session, camera_id: str, keys: Sequence[CameraKey]) -> dict[str, Taken]:
    """What was answered for each of `keys` that `camera_id` sent already, by key.

    Raises:
        ValidationError: A key was taken for something else (its digest differs).
    """
    wanted = {key.key: key for key in keys if key.key}
    if not wanted:
        return {}
    rows = session.exec(
        select(CaptureKeyRecord).where(
            CaptureKeyRecord.camera_id == camera_id, col(CaptureKeyRecord.key).in_(list(wanted))
        )
    ).all()
    known = {}
    for row in rows:
        key = wanted[row.key]
        if row.digest != key.digest:
            raise ValidationError(
                key.field, f"{row.key!r} was sent before with something else: give each its own id"
            )
        known[row.key] = Taken(row.answer, row.hits)
    return known


def check_captured_at(moment: datetime, where: str, now: datetime) -> None:
    """Check when a camera says it took a read or frame, `where` naming it (``reads[2]``).

    A camera whose clock was never set says 1970, and a time far ahead of `now` (the node's)
    would sort first and outlive retention.

    Raises:
        ValidationError: It has no time zone, is before `EARLIEST_READ` or more than
            `MAX_CLOCK_AHEAD` after `now`; names ``<where>.captured_at``.
    """
    field = f"{where}.captured_at"
    if moment.tzinfo is None:
        raise ValidationError(field, "must have a time zone")
    if moment < EARLIEST_READ:
        raise ValidationError(field, "is before 2000: is the camera's clock set?")
    if moment > now + MAX_CLOCK_AHEAD:
        raise ValidationError(field, "is over an hour past the node's clock: is the camera's set?")


def _checked(number: int, read: NewRead, now: datetime) -> str:
    """The read's canonical plate, once every field is checked."""
    where = f"reads[{number}]"
    plate = normalize_plate(read.plate, f"{where}.plate")
    if not (0.0 <= read.confidence <= 1.0) or math.isnan(read.confidence):
        raise ValidationError(f"{where}.confidence", "must be between 0 and 1")
    check_captured_at(read.captured_at, where, now)
    for name, value, bound in (("latitude", read.latitude, 90), ("longitude", read.longitude, 180)):
        if value is not None and not -bound <= value <= bound:
            raise ValidationError(f"{where}.{name}", f"must be within ±{bound} degrees")
    if len(read.plate_image) > MAX_PLATE_IMAGE:
        raise ValidationError(f"{where}.plate_image", f"at most {MAX_PLATE_IMAGE} bytes")
    if len(read.vehicle_image) > MAX_VEHICLE_IMAGE:
        raise ValidationError(f"{where}.vehicle_image", f"at most {MAX_VEHICLE_IMAGE} bytes")
    # Kept, shown to investigators and sent to partners as images: only what is one.
    for name, image in (("plate_image", read.plate_image), ("vehicle_image", read.vehicle_image)):
        if image:
            check_frame_size(image, f"{where}.{name}")
    return plate
