"""Hotlists received from partners: kept only while fresh (HOT-6), fields encrypted at rest (HOT-2).

A partner's list is usable from the moment its verified snapshot is stored until the
snapshot's `expires_at` (issued + 24 h). `find` never returns an entry of a list past
that instant, whether or not the purge job has run; `purge_expired` then deletes it.

A list is stored as chunks of a thousand entries: ids and plates in clear, the other
fields encrypted together with the node's data key. Plates are matched from an
in-memory index of each list, built as the list is stored or, in another process,
rebuilt from the chunks when the list it holds changed; a hit decrypts one chunk.
Entries a partner ends in a delta are kept as tombstones until its next full snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from alpr.common.v1 import hotlist_pb2
from node.clock import Clock
from node.ed25519 import DataKey
from node.errors import PreconditionError, ValidationError
from node.hotlists.codec import CHUNK_SIZE, EntryChunk, entry_from_message, split_column
from node.hotlists.entry import HotlistEntry, PlatePattern
from node.store.engine import insert_rows, table_of
from node.store.hotlist_models import PartnerChunkRecord, PartnerEndedRecord, PartnerHotlistRecord
from node.store.models import utc


@dataclass(frozen=True, kw_only=True)
class ReceivedList:
    """What a verified snapshot or delta says about the list it carries."""

    issuer_ori: str
    agreement_id: str
    version: int
    since_version: int
    issued_at: datetime
    expires_at: datetime
    digest: bytes


@dataclass(frozen=True)
class ReceivedEntries:
    """A partner's entries as a snapshot carries them, in chunks, and split for indexing.

    Attributes:
        entry_ids: The entries' ids.
        plates: Their plates or partial patterns, in the same order.
        chunks: The same entries in chunks of at most `CHUNK_SIZE`, fields decrypted:
            each is stored as it came, its fields encrypted, nothing re-serialized.
    """

    entry_ids: list[str]
    plates: list[str]
    chunks: list[EntryChunk]

    def __post_init__(self) -> None:
        """Check that the columns and chunks agree.

        Raises:
            ValueError: They hold different numbers of entries, or a chunk is too large.
        """
        sizes = [chunk.size for chunk in self.chunks]
        if not len(self.entry_ids) == len(self.plates) == sum(sizes):
            raise ValueError("entry ids, plates and field chunks differ in number")
        if any(not 0 < size <= CHUNK_SIZE for size in sizes):
            raise ValueError(f"a chunk holds 1 to {CHUNK_SIZE} entries")


@dataclass(frozen=True)
class PartnerMatch:
    """A plate found on a partner's list in force."""

    issuer_ori: str
    entry_id: str
    list_name: str
    entry: HotlistEntry


@dataclass
class _ListIndex:
    """One partner list's plates in memory, for the list version it was built from.

    A place is ``chunk * CHUNK_SIZE + slot``: one int per entry rather than a tuple in
    a list, which keeps a million-entry list to tens of megabytes.
    """

    stamp: tuple[int, datetime]
    exact: dict[str, int | list[int]] = field(default_factory=dict)
    partial: list[tuple[PlatePattern, int]] = field(default_factory=list)
    entry_ids: dict[int, list[str]] = field(default_factory=dict)
    plates: dict[int, list[str]] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)

    def add_chunk(self, chunk: int, entry_ids: list[str], plates: list[str]) -> None:
        """Index the entries of one chunk."""
        self.entry_ids[chunk] = entry_ids
        self.plates[chunk] = plates
        exact, base = self.exact, chunk * CHUNK_SIZE
        places = dict(zip(plates, range(base, base + len(plates)), strict=True))
        joined = "".join(plates)
        if (
            len(places) == len(plates)
            and places.keys().isdisjoint(exact.keys())
            and "?" not in joined
            and "*" not in joined
        ):
            # The usual chunk: whole plates, none listed before. One update in C
            # instead of a loop per entry (a third of a million-entry pull's indexing).
            exact.update(places)
            return
        for slot, plate in enumerate(plates):
            if "?" in plate or "*" in plate:
                self.partial.append((PlatePattern(plate), base + slot))
                continue
            held = exact.get(plate)
            if held is None:
                exact[plate] = base + slot
            elif isinstance(held, int):
                exact[plate] = [held, base + slot]
            else:
                held.append(base + slot)

    def lookup(self, plate: str) -> list[tuple[str, int, int]]:
        """(entry id, chunk, slot) of every entry in force that matches `plate`."""
        held = self.exact.get(plate)
        places = [] if held is None else [held] if isinstance(held, int) else list(held)
        places += [place for pattern, place in self.partial if pattern.matches(plate)]
        return self._found(places)

    def places(self, listed: str) -> list[tuple[str, int, int]]:
        """(entry id, chunk, slot) of every entry in force listed as `listed` exactly."""
        held = self.exact.get(listed)
        places = [] if held is None else [held] if isinstance(held, int) else list(held)
        places += [place for pattern, place in self.partial if pattern.text == listed]
        return self._found(places)

    def _found(self, places: list[int]) -> list[tuple[str, int, int]]:
        found = [
            (self.entry_ids[p // CHUNK_SIZE][p % CHUNK_SIZE], p // CHUNK_SIZE, p % CHUNK_SIZE)
            for p in places
        ]
        return [place for place in found if place[0] not in self.ended]


class PartnerHotlists:
    """The partner lists this node holds."""

    def __init__(self, engine: Engine, *, data_key: DataKey, clock: Clock) -> None:
        """Keep partner lists in `engine`'s database, encrypting fields with `data_key`."""
        self._engine = engine
        self._key = data_key
        self._clock = clock
        self._indexes: dict[str, _ListIndex] = {}
        self._lock = threading.Lock()

    def held_version(self, issuer_ori: str) -> int:
        """The version held of `issuer_ori`'s list, if still in force; else 0 (ask for all)."""
        with Session(self._engine) as session:
            record = session.get(PartnerHotlistRecord, issuer_ori)
            if record is None or utc(record.expires_at) <= self._clock():
                return 0
            return record.version

    def store(
        self,
        received: ReceivedList,
        columns: ReceivedEntries,
        ended: Sequence[str] = (),
    ) -> None:
        """Store a verified snapshot (replacing the list) or delta (applied to the version held).

        Raises:
            PreconditionError: A delta is for another version than the one held.
        """
        now = self._clock()
        issuer = received.issuer_ori
        with Session(self._engine) as session:
            record = session.get(PartnerHotlistRecord, issuer)
            held = record.version if record and utc(record.expires_at) > now else 0
            held_stamp = (record.version, utc(record.received_at)) if record else None
            if received.since_version and held != received.since_version:
                raise PreconditionError(
                    f"the delta from {issuer} applies to version {received.since_version}, "
                    f"we hold {held}"
                )
            values = {
                "issuer_ori": issuer,
                "version": received.version,
                "issued_at": received.issued_at,
                "expires_at": received.expires_at,
                "received_at": now,
                "agreement_id": received.agreement_id,
                "snapshot_digest": received.digest,
            }
            if record is None:
                record = PartnerHotlistRecord.model_validate(values)
            else:
                record.sqlmodel_update(values)
            session.add(record)
            session.flush()
            if not received.since_version:
                for table in (PartnerChunkRecord, PartnerEndedRecord):
                    session.exec(delete(table).where(col(table.issuer_ori) == issuer))
            first_chunk = session.exec(
                select(func.coalesce(func.max(PartnerChunkRecord.chunk) + 1, 0)).where(
                    col(PartnerChunkRecord.issuer_ori) == issuer
                )
            ).one()
            chunks = list(self._chunk_rows(issuer, columns, first_chunk))
            insert_rows(session, table_of(PartnerChunkRecord), _CHUNK_COLUMNS, chunks)
            insert_rows(
                session,
                table_of(PartnerEndedRecord),
                ("issuer_ori", "entry_id"),
                ((issuer, entry_id) for entry_id in ended),
            )
            session.commit()
            stamp = (received.version, now)
        with self._lock:
            index = self._indexes.get(issuer)
            if not received.since_version:
                index = self._indexes[issuer] = _ListIndex(stamp)
            elif index is not None and index.stamp == held_stamp:
                index.stamp = stamp
            else:
                # A delta to a list this process has not indexed: the index is built
                # whole from the chunks when first used, not from the delta alone.
                self._indexes.pop(issuer, None)
                return
            # Indexed from the columns in hand, a chunk's slice each, not by splitting the
            # joined text just made from them (half a second for a million entries).
            for row, (start, stop) in zip(chunks, _slices(columns), strict=True):
                index.add_chunk(
                    row.chunk, columns.entry_ids[start:stop], columns.plates[start:stop]
                )
            index.ended.update(ended)

    def _chunk_rows(
        self, issuer: str, columns: ReceivedEntries, first_chunk: int
    ) -> Iterable[_ChunkRow]:
        for number, chunk in enumerate(columns.chunks, first_chunk):
            yield _ChunkRow(
                issuer,
                number,
                chunk.size,
                chunk.entry_ids,
                chunk.plates,
                self._key.encrypt(chunk.fields),
            )

    def find(self, plate: str) -> list[PartnerMatch]:
        """Entries for `plate` on partner lists in force now: whole plates and partial patterns."""
        now = self._clock()
        found = []
        with Session(self._engine) as session:
            fresh = session.exec(
                select(PartnerHotlistRecord).where(col(PartnerHotlistRecord.expires_at) > now)
            ).all()
            for record in fresh:
                index = self._index(session, record)
                chunks = _ChunkReader(session, record.issuer_ori, self._key)
                for entry_id, chunk, slot in index.lookup(plate):
                    match = chunks.match(entry_id, chunk, slot)
                    if match is not None:
                        found.append(match)
        return found

    def entry(self, issuer_ori: str, entry_id: str, listed: str) -> PartnerMatch | None:
        """The entry `entry_id`, listed as `listed`, of `issuer_ori`'s list, decrypted."""
        with Session(self._engine) as session:
            record = session.get(PartnerHotlistRecord, issuer_ori)
            if record is None:
                return None
            chunks = _ChunkReader(session, issuer_ori, self._key)
            for found_id, chunk, slot in self._index(session, record).places(listed):
                if found_id == entry_id:
                    return chunks.match(entry_id, chunk, slot)
        return None

    def in_force(self) -> dict[str, tuple[int, datetime, datetime]]:
        """Each partner list held and in force now: (version, received at, expires at)."""
        now = self._clock()
        with Session(self._engine) as session:
            records = session.exec(
                select(PartnerHotlistRecord).where(col(PartnerHotlistRecord.expires_at) > now)
            ).all()
            return {
                r.issuer_ori: (r.version, utc(r.received_at), utc(r.expires_at)) for r in records
            }

    def listed(self, issuer_ori: str) -> list[tuple[str, str]]:
        """(entry id, plate or pattern) of every entry in force on `issuer_ori`'s list."""
        with Session(self._engine) as session:
            record = session.get(PartnerHotlistRecord, issuer_ori)
            if record is None:
                return []
            index = self._index(session, record)
            return [
                (entry_id, plate)
                for chunk, entry_ids in index.entry_ids.items()
                for entry_id, plate in zip(entry_ids, index.plates[chunk], strict=True)
                if entry_id not in index.ended
            ]

    def _index(self, session: Session, record: PartnerHotlistRecord) -> _ListIndex:
        """The in-memory index of a list, rebuilt from its chunks if it changed since."""
        stamp = (record.version, utc(record.received_at))
        with self._lock:
            index = self._indexes.get(record.issuer_ori)
            if index is not None and index.stamp == stamp:
                return index
            index = _ListIndex(stamp)
            table = table_of(PartnerChunkRecord)
            rows = session.connection().execute(
                sa_select(table.c.chunk, table.c.entry_ids, table.c.plates).where(
                    table.c.issuer_ori == record.issuer_ori
                )
            )
            for chunk, entry_ids, plates in rows:
                index.add_chunk(chunk, split_column(entry_ids), split_column(plates))
            index.ended.update(
                session.exec(
                    select(PartnerEndedRecord.entry_id).where(
                        col(PartnerEndedRecord.issuer_ori) == record.issuer_ori
                    )
                ).all()
            )
            self._indexes[record.issuer_ori] = index
            return index

    def purge_expired(self) -> list[str]:
        """Delete every partner list past its expiry, with its entries (HOT-6); their issuers."""
        now = self._clock()
        with Session(self._engine) as session:
            expired = list(
                session.exec(
                    select(PartnerHotlistRecord.issuer_ori).where(
                        col(PartnerHotlistRecord.expires_at) <= now
                    )
                ).all()
            )
            if expired:
                for table in (PartnerChunkRecord, PartnerEndedRecord):
                    session.exec(delete(table).where(col(table.issuer_ori).in_(expired)))
                session.exec(
                    delete(PartnerHotlistRecord).where(
                        col(PartnerHotlistRecord.issuer_ori).in_(expired)
                    )
                )
            session.commit()
        with self._lock:
            for issuer in expired:
                self._indexes.pop(issuer, None)
        return expired

    def entry_count(self, issuer_ori: str) -> int:
        """How many entries of `issuer_ori`'s list are stored and not ended."""
        with Session(self._engine) as session:
            stored = session.exec(
                select(func.coalesce(func.sum(PartnerChunkRecord.size), 0)).where(
                    col(PartnerChunkRecord.issuer_ori) == issuer_ori
                )
            ).one()
            ended = session.exec(
                select(func.count()).where(col(PartnerEndedRecord.issuer_ori) == issuer_ori)
            ).one()
            return int(stored) - int(ended)


class _ChunkRow(NamedTuple):
    issuer_ori: str
    chunk: int
    size: int
    entry_ids: bytes
    plates: bytes
    fields: bytes


_CHUNK_COLUMNS = _ChunkRow._fields


class _ChunkReader:
    """Decrypts a partner list's chunks as entries in them are asked for, each chunk once."""

    def __init__(self, session: Session, issuer_ori: str, key: DataKey) -> None:
        self._session = session
        self._issuer = issuer_ori
        self._key = key
        self._chunks: dict[int, tuple[list[str], hotlist_pb2.HotlistEntryFieldsList]] = {}

    def match(self, entry_id: str, chunk: int, slot: int) -> PartnerMatch | None:
        """The entry at (`chunk`, `slot`), or None if it is gone or fails the full checks."""
        if chunk not in self._chunks:
            row = self._session.get(PartnerChunkRecord, (self._issuer, chunk))
            if row is None:
                return None
            fields = hotlist_pb2.HotlistEntryFieldsList.FromString(self._key.decrypt(row.fields))
            self._chunks[chunk] = (split_column(row.plates), fields)
        plates, fields = self._chunks[chunk]
        message = fields.fields[slot]
        try:
            entry = entry_from_message(plates[slot], message)
        except ValidationError:
            return None  # passed the bulk checks on receipt, but not the full ones
        return PartnerMatch(self._issuer, entry_id, message.list_name, entry)


def _slices(columns: ReceivedEntries) -> Iterable[tuple[int, int]]:
    """(start, stop) of each chunk of `columns` in its columns."""
    start = 0
    for chunk in columns.chunks:
        yield start, start + chunk.size
        start += chunk.size
