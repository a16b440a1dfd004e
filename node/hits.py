"""The hit feed: every hit, cancellation and disposition, in cursor order (HOT-3…HOT-5).

Events are written in the same transaction as what they report (a hit with its read,
a disposition with the hit it settles), so a hit is stored before it is pushed and
nothing acknowledged is lost. Each takes the next cursor from a one-row counter locked
until the transaction commits: events therefore commit in cursor order, and a client
that asks for everything after the last cursor it saw gets exactly what it missed, in
every process serving the agency. An event's body is the message patrol clients
receive, encrypted with the node's data key (a hit carries hotlist fields, HOT-2).

On PostgreSQL the same transaction sends a NOTIFY on `FEED_CHANNEL`, which the server
delivers at commit to every process serving the agency (`node.hit_notices`), so their
streams hear of it at once.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from alpr.patrol.v1 import patrol_service_pb2 as patrol_pb2
from node.clock import Clock
from node.ed25519 import DataKey
from node.errors import NotFoundError, ValidationError
from node.store.capture_models import HitCursorRecord, HitEventRecord, HitRecord
from node.store.engine import lock_for_write, table_of
from node.store.models import utc

MAX_NOTE = 500
MAX_PAGE = 500
_IDS_A_QUERY = 500  # entry ids an IN list holds, well under any database's bound
_CURSOR = table_of(HitCursorRecord)
_LOCK_CURSOR = sa_select(_CURSOR.c.last).where(_CURSOR.c.id == 1).with_for_update()
_SET_CURSOR = update(_CURSOR).where(_CURSOR.c.id == 1).values(last=bindparam("new_last"))
_INSERT_EVENT = insert(table_of(HitEventRecord))
FEED_CHANNEL = "alpr_hit_feed"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class FeedEventKind(enum.StrEnum):
    """What a feed event reports."""

    HIT = "hit"
    CANCELLATION = "cancellation"
    DISPOSITION = "disposition"


Message = patrol_pb2.Hit | patrol_pb2.Cancellation | patrol_pb2.DispositionRecorded


@dataclass(frozen=True)
class FeedEvent:
    """One event of the feed, decrypted: its cursor and the message patrol clients get."""

    cursor: int
    kind: FeedEventKind
    message: Message


@dataclass(frozen=True)
class NewHit:
    """A hit to record: the read, the entry it matched, and what a patrol client is shown."""

    read_id: str
    list_id: str
    issuer_ori: str
    entry_id: str
    listed: str
    kind: str
    confidence: float
    retrospective: bool
    message: patrol_pb2.Hit


class HitFeed:
    """Hits and the feed of events about them, in the node's store."""

    def __init__(self, engine: Engine, *, data_key: DataKey, clock: Clock) -> None:
        """Keep the feed in `engine`'s database, bodies encrypted with `data_key`."""
        self._engine = engine
        self._key = data_key
        self._clock = clock

    def record_hits(self, session: Session, hits: Sequence[NewHit]) -> list[int]:
        """Store `hits` and their feed events in the caller's transaction; their cursors.

        The caller took the write lock (`lock_for_write`) first and commits after.
        """
        now = self._clock()
        for hit in hits:
            session.add(
                HitRecord(
                    id=hit.message.hit_id,
                    read_id=hit.read_id,
                    list_id=hit.list_id,
                    issuer_ori=hit.issuer_ori,
                    entry_id=hit.entry_id,
                    listed=hit.listed,
                    kind=hit.kind,
                    confidence=hit.confidence,
                    retrospective=hit.retrospective,
                    created_at=now,
                )
            )
        session.flush()
        return self._append(
            session, [(FeedEventKind.HIT, h.message.hit_id, h.entry_id, h.message) for h in hits]
        )

    def record_disposition(
        self, hit_id: str, disposition: patrol_pb2.Disposition.ValueType, note: str, user: str
    ) -> int:
        """Settle a hit with what the officer found (HOT-4); the event's cursor.

        Raises:
            ValidationError: The disposition is unspecified or the note too long.
            NotFoundError: There is no such hit.
        """
        if disposition == patrol_pb2.DISPOSITION_UNSPECIFIED or (
            disposition not in patrol_pb2.Disposition.values()
        ):
            raise ValidationError("disposition", "must be one of the Disposition values")
        if len(note) > MAX_NOTE:
            raise ValidationError("note", f"must be at most {MAX_NOTE} characters")
        with Session(self._engine) as session:
            lock_for_write(session)
            hit = session.get(HitRecord, hit_id)
            if hit is None:
                raise NotFoundError(f"no hit {hit_id!r}")
            hit.disposition = patrol_pb2.Disposition.Name(disposition)
            session.add(hit)
            message = patrol_pb2.DispositionRecorded(
                hit_id=hit_id, disposition=disposition, note=note, recorded_by=user
            )
            message.recorded_at.FromDatetime(self._clock())
            [cursor] = self._append(
                session, [(FeedEventKind.DISPOSITION, hit_id, hit.entry_id, message)]
            )
            session.commit()
            return cursor

    def record_cancellation(self, entry_id: str, list_name: str) -> int:
        """Tell every unit an entry was cancelled, naming its hits so far (HOT-5); the cursor."""
        [cursor] = self._cancel({entry_id: list_name}, every=True)
        return cursor

    def record_withdrawn(self, ended: Mapping[str, str]) -> list[int]:
        """Tell every unit of each entry `ended` (id -> list name) that raised hits; cursors.

        An entry taken off its list (removed as entered by mistake, or gone from a reissued
        extract: the car recovered) is cancelled to the units that may be acting on its
        hits, as a cancelled entry is (HOT-5). One that raised no hit needs no word: units
        hold hits, not lists.
        """
        return self._cancel(ended, every=False)

    def _cancel(self, ended: Mapping[str, str], *, every: bool) -> list[int]:
        """A cancellation naming its hits so far for each entry `ended`, or those with hits."""
        ids = list(ended)
        hit_ids: dict[str, list[str]] = {entry_id: [] for entry_id in ids} if every else {}
        with Session(self._engine) as session:
            lock_for_write(session)
            for start in range(0, len(ids), _IDS_A_QUERY):
                found = session.exec(
                    select(HitRecord.entry_id, HitRecord.id)
                    .where(col(HitRecord.entry_id).in_(ids[start : start + _IDS_A_QUERY]))
                    .order_by(col(HitRecord.created_at))
                ).all()
                for entry_id, hit_id in found:
                    hit_ids.setdefault(entry_id, []).append(hit_id)
            events: list[tuple[FeedEventKind, str, str, Message]] = [
                (
                    FeedEventKind.CANCELLATION,
                    "",
                    entry_id,
                    patrol_pb2.Cancellation(
                        entry_id=entry_id, list_name=ended[entry_id], hit_ids=hits
                    ),
                )
                for entry_id, hits in hit_ids.items()
            ]
            cursors = self._append(session, events)
            session.commit()
            return cursors

    def hit(self, hit_id: str) -> HitRecord:
        """One hit as stored.

        Raises:
            NotFoundError: There is no such hit.
        """
        with Session(self._engine) as session:
            found = session.get(HitRecord, hit_id)
            if found is None:
                raise NotFoundError(f"no hit {hit_id!r}")
            found.created_at = utc(found.created_at)
            return found

    def last_cursor(self) -> int:
        """The cursor of the last event committed (0 before the first)."""
        with self._engine.connect() as connection:
            return int(connection.execute(sa_select(_CURSOR.c.last)).scalar_one())

    def after(self, cursor: int, limit: int = MAX_PAGE) -> list[FeedEvent]:
        """Up to `limit` events after `cursor`, in order.

        Raises:
            ValidationError: `cursor` is negative.
        """
        if cursor < 0:
            raise ValidationError("after_cursor", "must not be negative")
        with Session(self._engine) as session:
            rows = session.exec(
                select(HitEventRecord)
                .where(col(HitEventRecord.cursor) > cursor)
                .order_by(col(HitEventRecord.cursor))
                .limit(min(limit, MAX_PAGE))
            ).all()
            return [self._decoded(row) for row in rows]

    def _decoded(self, row: HitEventRecord) -> FeedEvent:
        kind = FeedEventKind(row.kind)
        body = self._key.decrypt(row.body)
        message: Message
        match kind:
            case FeedEventKind.HIT:
                message = patrol_pb2.Hit.FromString(body)
            case FeedEventKind.CANCELLATION:
                message = patrol_pb2.Cancellation.FromString(body)
            case FeedEventKind.DISPOSITION:
                message = patrol_pb2.DispositionRecorded.FromString(body)
        return FeedEvent(row.cursor, kind, message)

    def _append(
        self, session: Session, events: Sequence[tuple[FeedEventKind, str, str, Message]]
    ) -> list[int]:
        """Give `events` the next cursors and add them to the caller's transaction."""
        if not events:
            return []
        connection: Connection = session.connection()
        last = int(connection.execute(_LOCK_CURSOR).scalar_one())
        cursors = list(range(last + 1, last + 1 + len(events)))
        connection.execute(_SET_CURSOR, {"new_last": cursors[-1]})
        now = self._clock()
        connection.execute(
            _INSERT_EVENT,
            [
                {
                    "cursor": cursor,
                    "kind": kind.value,
                    "hit_id": hit_id,
                    "entry_id": entry_id,
                    "body": self._key.encrypt(message.SerializeToString()),
                    "created_at": now,
                }
                for cursor, (kind, hit_id, entry_id, message) in zip(cursors, events, strict=True)
            ],
        )
        if connection.dialect.name == "postgresql":
            # Delivered at commit, and only if it commits; the payload is the last cursor.
            connection.execute(_NOTIFY, {"channel": FEED_CHANNEL, "payload": str(cursors[-1])})
        return cursors


def new_hit_id() -> str:
    """A fresh hit id."""
    return str(uuid.uuid4())
