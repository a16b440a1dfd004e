"""Hotlists received from partners: kept only while fresh (HOT-6), fields encrypted at rest (HOT-2).

A partner's list is usable from the moment its verified snapshot is stored until the
snapshot's `expires_at` (issued + 24 h, and no later than its agreement's sunset), and
only while the agreement it came under is in force (SHR-2): revoked, its lists stop at
once on both sides. `find` never returns an entry of a list past either, whether or not
the purge job has run; `purge_expired` then deletes it.

A list is stored as chunks of a thousand entries: ids and plates in clear, the other
fields encrypted together with the node's data key. Plates are matched from an
in-memory index of each list, built as the list is stored or, in another process,
rebuilt from the chunks when the list it holds changed; a hit decrypts one chunk.
Entries a partner ends in a delta are kept as tombstones until its next full snapshot.

A full snapshot is written as it streams in (`IncomingList`), a few chunks a
transaction, under a new generation that the list's record does not name yet: nothing
matches those chunks, and no writer waits on a long transaction, until every chunk has
come and the list takes the generation in one short transaction. A delta is held and
written in that last transaction (deltas are small).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import compress, pairwise
from typing import NamedTuple

from sqlalchemy import and_, func, not_
from sqlalchemy import delete as sa_delete
from sqlalchemy import exists as sa_exists
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.dml import Delete
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, delete, select

from alpr.common.v1 import hotlist_pb2
from node.clock import Clock
from node.ed25519 import DataKey
from node.errors import PreconditionError, ValidationError
from node.hotlists.codec import (
    CHUNK_SIZE,
    EntryChunk,
    column_item,
    column_length,
    entry_from_message,
    split_column,
)
from node.hotlists.entry import HotlistEntry, PlatePattern
from node.store.engine import insert_rows, table_of, write_transaction
from node.store.hotlist_models import PartnerChunkRecord, PartnerEndedRecord, PartnerHotlistRecord
from node.store.models import utc
from node.store.sharing import AgreementRecord, AgreementState

# Chunks of a full snapshot written a transaction: about 1.6 MB (fields encrypted).
STAGED_A_TRANSACTION = 16
# Entries added or ended by the deltas remembered per partner for the match index to
# patch its copy with: past that, it reads the list whole instead.
KEPT_CHANGE_ENTRIES = 250_000
# Chunks staged longer ago are a dead pull's: twice the longest a pull may stream (an
# hour, federation.client.HOTLIST_TIMEOUT_SECONDS).
STAGING_LIMIT = timedelta(hours=2)


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
    """A partner's entries as a snapshot carries them: in chunks, each chunk's plates split.

    Entry ids stay joined as they came until one is asked for: split, a million-entry
    list's ids cost half a second and 80 MB more to receive, for the few a hit names.

    Attributes:
        chunks: The entries in chunks of at most `CHUNK_SIZE`, fields decrypted: each is
            stored as it came, its fields encrypted, nothing re-serialized.
        chunk_plates: Each chunk's plates or partial patterns, split, for indexing.
    """

    chunks: list[EntryChunk]
    chunk_plates: list[list[str]]

    def __post_init__(self) -> None:
        """Check that the chunks and their columns agree.

        Raises:
            ValueError: A chunk's ids, plates and size differ, or a chunk is too large.
        """
        if len(self.chunks) != len(self.chunk_plates):
            raise ValueError("chunks and their plates differ in number")
        for chunk, plates in zip(self.chunks, self.chunk_plates, strict=True):
            if not chunk.size == len(plates) == column_length(chunk.entry_ids):
                raise ValueError("entry ids, plates and field chunks differ in number")
            if not 0 < chunk.size <= CHUNK_SIZE:
                raise ValueError(f"a chunk holds 1 to {CHUNK_SIZE} entries")

    @classmethod
    def of(cls, chunks: list[EntryChunk]) -> ReceivedEntries:
        """The entries of `chunks`, their plates split here."""
        return cls(chunks, [split_column(chunk.plates) for chunk in chunks])

    @classmethod
    def joined(cls, parts: Sequence[ReceivedEntries]) -> ReceivedEntries:
        """The entries of `parts`, one after another."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            [chunk for part in parts for chunk in part.chunks],
            [plates for part in parts for plates in part.chunk_plates],
        )

    @property
    def entry_ids(self) -> list[str]:
        """Every entry's id, in order (split for the asking)."""
        return [entry_id for chunk in self.chunks for entry_id in split_column(chunk.entry_ids)]

    @property
    def plates(self) -> list[str]:
        """Every entry's plate or partial pattern, in order."""
        return [plate for plates in self.chunk_plates for plate in plates]


_NONE = ReceivedEntries([], [])
ListStamp = tuple[int, datetime, int]
"""A list's version, when it was received and its generation: what an index was built from."""


def _usable(now: datetime) -> ColumnElement[bool]:
    """Where a partner list may be used at `now`: in its life and under its agreement.

    Within its life (HOT-6), and under the agreement it came under, in force (SHR-2,
    SHR-3): a revocation, on either side, stops it at once, not when its 24 hours run out.
    """
    agreement = table_of(AgreementRecord)
    under_agreement = sa_exists().where(
        agreement.c.id == col(PartnerHotlistRecord.agreement_id),
        agreement.c.state == AgreementState.ACTIVE.value,
        agreement.c.starts_at <= now,
        agreement.c.sunsets_at > now,
    )
    return and_(col(PartnerHotlistRecord.expires_at) > now, under_agreement)


def _usable_version(session: Session, issuer_ori: str, now: datetime) -> int:
    """The version of `issuer_ori`'s list held, if usable `now`; else 0 (ask for all)."""
    version = session.exec(
        select(PartnerHotlistRecord.version).where(
            col(PartnerHotlistRecord.issuer_ori) == issuer_ori, _usable(now)
        )
    ).first()
    return version or 0


def _stamp_of(record: PartnerHotlistRecord) -> ListStamp:
    return record.version, utc(record.received_at), record.generation


class ListChange(NamedTuple):
    """A delta a partner's list took: the list it applied to, and what it added and ended.

    Attributes:
        before: The stamp of the list it applied to.
        after: The stamp of the list it made.
        columns: Each chunk it added: its entry ids as joined, and its plates (the very
            objects the list's index holds, so remembering them costs next to nothing).
        ended: The ids of the entries it ended.
    """

    before: ListStamp
    after: ListStamp
    columns: list[tuple[bytes, list[str]]]
    ended: list[str]

    @property
    def size(self) -> int:
        """How many entries it added and ended."""
        return sum(len(plates) for _, plates in self.columns) + len(self.ended)

    def added(self) -> tuple[list[str], list[str]]:
        """The entries it added, as columns: their ids, and their plates or patterns."""
        ids: list[str] = []
        plates: list[str] = []
        for joined, listed in self.columns:
            ids += split_column(joined)
            plates += listed
        return ids, plates


class InForce(NamedTuple):
    """A partner list held and in force: its stamp, and when it expires."""

    stamp: ListStamp
    expires_at: datetime


class Taken(NamedTuple):
    """What `IncomingList.take` made of a list, for `IncomingList.use` once committed.

    Attributes:
        replaced: The stamp of the list it replaced, if any.
        now: The stamp of the list now.
        first_chunk: The number given to the first chunk of the delta it wrote.
        delta: The delta's entries (none for a full snapshot).
        ended: The entries it tombstoned.
    """

    replaced: ListStamp | None
    now: ListStamp
    first_chunk: int
    delta: ReceivedEntries
    ended: Sequence[str]


@dataclass(frozen=True)
class PartnerMatch:
    """A plate found on a partner's list in force."""

    issuer_ori: str
    entry_id: str
    list_name: str
    entry: HotlistEntry


@dataclass
class _ListIndex:
    """One partner list's entries in memory, for the list version it was built from.

    Each chunk's entry ids as joined, as stored (`column_item` finds the one a hit needs),
    its plates, and the few partial patterns, parsed. A place is
    ``chunk * CHUNK_SIZE + slot``.

    There is no dict by plate. Reads are matched by the node's match index, which is
    built from these columns, and an entry is found here by scanning the plates in C:
    milliseconds for a million. A dict filled on every pull was a fifth of a
    million-entry pull's time and some 80 MB.
    """

    stamp: ListStamp
    entry_ids: dict[int, bytes] = field(default_factory=dict)
    plates: dict[int, list[str]] = field(default_factory=dict)
    partial: list[tuple[PlatePattern, int]] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)

    def add_chunk(self, chunk: int, entry_ids: bytes, plates: list[str]) -> None:
        """Hold the entries of one chunk, whose ids `join_column` joined."""
        self.entry_ids[chunk] = entry_ids
        self.plates[chunk] = plates
        joined = "".join(plates)
        if "?" in joined or "*" in joined:
            base = chunk * CHUNK_SIZE
            self.partial += [
                (PlatePattern(plate), base + slot)
                for slot, plate in enumerate(plates)
                if "?" in plate or "*" in plate
            ]

    def lookup(self, plate: str) -> list[tuple[str, int, int]]:
        """(entry id, chunk, slot) of every entry in force that matches `plate`."""
        places = self._listed_as(plate)
        places += [place for pattern, place in self.partial if pattern.matches(plate)]
        return self._found(places)

    def places(self, listed: str) -> list[tuple[str, int, int]]:
        """(entry id, chunk, slot) of every entry in force listed as `listed` exactly."""
        return self._found(self._listed_as(listed))

    def _listed_as(self, text: str) -> list[int]:
        places = []
        for chunk, plates in list(self.plates.items()):  # a delta taken may add chunks
            if text in plates:
                base = chunk * CHUNK_SIZE
                places += [base + slot for slot, plate in enumerate(plates) if plate == text]
        return places

    def _found(self, places: list[int]) -> list[tuple[str, int, int]]:
        found = [
            (column_item(self.entry_ids[p // CHUNK_SIZE], p % CHUNK_SIZE), *divmod(p, CHUNK_SIZE))
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
        self._changes: dict[str, list[ListChange]] = {}  # the latest deltas taken, per issuer
        self._lock = threading.Lock()

    def held_version(self, issuer_ori: str) -> int:
        """The version held of `issuer_ori`'s list, if still in force; else 0 (ask for all)."""
        with Session(self._engine) as session:
            return _usable_version(session, issuer_ori, self._clock())

    def receiving(self, received: ReceivedList) -> IncomingList:
        """A verified snapshot or delta to write as its entries come, then `commit`."""
        return IncomingList(self, received)

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
        incoming = self.receiving(received)
        batch = incoming.add(columns)
        if batch is not None:
            incoming.write(batch)
        incoming.commit(ended)

    def _chunk_rows(
        self, issuer: str, columns: ReceivedEntries, first_chunk: int, generation: int
    ) -> list[_ChunkRow]:
        return [
            _ChunkRow(
                issuer,
                number,
                chunk.size,
                chunk.entry_ids,
                chunk.plates,
                self._key.encrypt(chunk.fields),
                generation,
            )
            for number, chunk in enumerate(columns.chunks, first_chunk)
        ]

    def _take(
        self,
        received: ReceivedList,
        *,
        generation: int | None,
        delta: ReceivedEntries,
        ended: Sequence[str],
        staged: int,
        session: Session,
    ) -> Taken:
        """Make `received` the list held, in the caller's write transaction `session`.

        A full snapshot (`generation` given) takes the `staged` chunks written under
        `generation` and drops the list it replaces; a delta adds its chunks to the list
        held.

        Raises:
            PreconditionError: A delta is for another version than the one held, or the
                chunks staged are no longer all there (the list was purged meanwhile).
                Raised before anything is written: the transaction may go on.
        """
        now = self._clock()
        issuer = received.issuer_ori
        # Locked before it is read (the transaction took the write lock first): two
        # pulls of one delta that commit at once (from two processes) must not both
        # find the version it applies to.
        record = session.get(PartnerHotlistRecord, issuer, with_for_update=True)
        held = _usable_version(session, issuer, now) if record else 0
        held_stamp = _stamp_of(record) if record else None
        if received.since_version and held != received.since_version:
            raise PreconditionError(
                f"the delta from {issuer} applies to version {received.since_version}, "
                f"we hold {held}"
            )
        if generation is not None:
            if _count(session, issuer, generation) != staged:
                raise PreconditionError(
                    f"the snapshot from {issuer} was removed while it was received"
                )
            if record is not None:
                # Only the list replaced: another snapshot of it may be coming in.
                session.exec(_chunks_of(issuer, record.generation))
            session.exec(
                delete(PartnerEndedRecord).where(col(PartnerEndedRecord.issuer_ori) == issuer)
            )
        else:
            generation = record.generation if record else 0
        values = {
            "issuer_ori": issuer,
            "version": received.version,
            "issued_at": received.issued_at,
            "expires_at": received.expires_at,
            "received_at": now,
            "agreement_id": received.agreement_id,
            "snapshot_digest": received.digest,
            "generation": generation,
        }
        if record is None:
            record = PartnerHotlistRecord.model_validate(values)
        else:
            record.sqlmodel_update(values)
        session.add(record)
        session.flush()
        first_chunk = _next_chunk(session, issuer, generation)
        rows = self._chunk_rows(issuer, delta, first_chunk, generation)
        insert_rows(session, table_of(PartnerChunkRecord), _CHUNK_COLUMNS, rows)
        insert_rows(
            session,
            table_of(PartnerEndedRecord),
            ("issuer_ori", "entry_id"),
            ((issuer, entry_id) for entry_id in ended),
        )
        return Taken(held_stamp, (received.version, now, generation), first_chunk, delta, ended)

    def _index_taken(
        self,
        issuer: str,
        taken: Taken,
        staged: _ListIndex | None,
    ) -> None:
        """Index what `_take` made the list: the `staged` index, or its delta on the one held.

        A delta is also remembered as a `ListChange`, for the node's match index to patch
        its copy of the list with (`changes_since`).
        """
        delta, ended = taken.delta, taken.ended
        with self._lock:
            if staged is not None:
                self._changes.pop(issuer, None)
            elif taken.replaced is not None:
                columns = [
                    (chunk.entry_ids, plates)
                    for chunk, plates in zip(delta.chunks, delta.chunk_plates, strict=True)
                ]
                self._remember(issuer, ListChange(taken.replaced, taken.now, columns, list(ended)))
            index = staged or self._indexes.get(issuer)
            if staged is None and (index is None or index.stamp != taken.replaced):
                # A delta to a list this process has not indexed: the index is built
                # whole from the chunks when first used, not from the delta alone.
                self._indexes.pop(issuer, None)
                return
            assert index is not None  # noqa: S101 (staged, or held and checked just above)
            index.stamp = taken.now
            _index_chunks(index, taken.first_chunk, delta)
            index.ended.update(ended)
            self._indexes[issuer] = index

    def _remember(self, issuer: str, change: ListChange) -> None:
        """Keep `change` after those before it, while they add `KEPT_CHANGE_ENTRIES` at most."""
        kept = [*self._changes.get(issuer, []), change]
        while kept and sum(one.size for one in kept) > KEPT_CHANGE_ENTRIES:
            kept.pop(0)
        self._changes[issuer] = kept

    def changes_since(self, issuer_ori: str, stamp: ListStamp) -> list[ListChange] | None:
        """The deltas that made `issuer_ori`'s list from the one of `stamp`, in order.

        None when they are not all remembered (a full snapshot came since, or too many
        deltas, or this process did not take them): the list must then be read whole.
        """
        with self._lock:
            kept = self._changes.get(issuer_ori, [])
        starts = [i for i, change in enumerate(kept) if change.before == stamp]
        if not starts:
            return None
        chain = kept[starts[-1] :]
        linked = all(a.after == b.before for a, b in pairwise(chain))
        return chain if linked else None

    def find(self, plate: str) -> list[PartnerMatch]:
        """Entries for `plate` on partner lists in force now: whole plates and partial patterns."""
        now = self._clock()
        found = []
        with Session(self._engine) as session:
            fresh = session.exec(select(PartnerHotlistRecord).where(_usable(now))).all()
            for record in fresh:
                index = self._index(session, record)
                chunks = _ChunkReader(session, record, self._key)
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
            chunks = _ChunkReader(session, record, self._key)
            for found_id, chunk, slot in self._index(session, record).places(listed):
                if found_id == entry_id:
                    return chunks.match(entry_id, chunk, slot)
        return None

    def in_force(self) -> dict[str, InForce]:
        """Each partner list held and in force now, by issuer."""
        now = self._clock()
        with Session(self._engine) as session:
            records = session.exec(select(PartnerHotlistRecord).where(_usable(now))).all()
            return {r.issuer_ori: InForce(_stamp_of(r), utc(r.expires_at)) for r in records}

    def listed(self, issuer_ori: str) -> tuple[list[str], list[str]]:
        """Every entry in force on `issuer_ori`'s list, as columns: ids, plates or patterns.

        Columns, not a tuple per entry: a million-entry list is read whole into the
        match index after every full snapshot.
        """
        ids: list[str] = []
        plates: list[str] = []
        with Session(self._engine) as session:
            record = session.get(PartnerHotlistRecord, issuer_ori)
            if record is None:
                return ids, plates
            index = self._index(session, record)
        with self._lock:  # a delta taken meanwhile patches the index in place
            chunks = [(index.entry_ids[c], index.plates[c]) for c in index.entry_ids]
            ended = set(index.ended)
        for entry_ids, listed in chunks:
            ids += split_column(entry_ids)
            plates += listed
        if ended:
            kept = [entry_id not in ended for entry_id in ids]
            ids, plates = list(compress(ids, kept)), list(compress(plates, kept))
        return ids, plates

    def _index(self, session: Session, record: PartnerHotlistRecord) -> _ListIndex:
        """The in-memory index of a list, rebuilt from its chunks if it changed since."""
        stamp = _stamp_of(record)
        with self._lock:
            index = self._indexes.get(record.issuer_ori)
            if index is not None and index.stamp == stamp:
                return index
            index = _ListIndex(stamp)
            table = table_of(PartnerChunkRecord)
            rows = session.connection().execute(
                sa_select(table.c.chunk, table.c.entry_ids, table.c.plates).where(
                    table.c.issuer_ori == record.issuer_ori,
                    table.c.generation == record.generation,
                )
            )
            for chunk, entry_ids, plates in rows:
                index.add_chunk(chunk, entry_ids, split_column(plates))
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
        """Delete every partner list no longer usable, with its entries; their issuers.

        Those past their expiry (HOT-6), and those whose agreement is no longer in force:
        revoked, expired or past its sunset (SHR-2, SHR-3).

        Also deletes chunks staged more than `STAGING_LIMIT` ago for no list: a pull that
        died. A snapshot still coming in for an expired list is left to come.
        """
        now = self._clock()
        with Session(self._engine) as session:
            expired = session.exec(select(PartnerHotlistRecord).where(not_(_usable(now)))).all()
            issuers = []
            for record in expired:
                issuer = record.issuer_ori
                gone = session.exec(  # unless a snapshot of it was taken since it was read
                    delete(PartnerHotlistRecord).where(
                        col(PartnerHotlistRecord.issuer_ori) == issuer,
                        col(PartnerHotlistRecord.generation) == record.generation,
                    )
                )
                if gone.rowcount:
                    session.exec(_chunks_of(issuer, record.generation))
                    session.exec(
                        delete(PartnerEndedRecord).where(
                            col(PartnerEndedRecord.issuer_ori) == issuer
                        )
                    )
                    issuers.append(issuer)
            chunk, hotlist = table_of(PartnerChunkRecord), table_of(PartnerHotlistRecord)
            session.execute(
                sa_delete(chunk).where(
                    chunk.c.generation < _generation_at(now - STAGING_LIMIT),
                    ~sa_exists().where(
                        hotlist.c.issuer_ori == chunk.c.issuer_ori,
                        hotlist.c.generation == chunk.c.generation,
                    ),
                )
            )
            session.commit()
        with self._lock:
            for issuer in issuers:
                self._indexes.pop(issuer, None)
                self._changes.pop(issuer, None)
        return issuers

    def entry_count(self, issuer_ori: str) -> int:
        """How many entries of `issuer_ori`'s list are stored and not ended."""
        with Session(self._engine) as session:
            record = session.get(PartnerHotlistRecord, issuer_ori)
            if record is None:
                return 0
            stored = session.exec(
                select(func.coalesce(func.sum(PartnerChunkRecord.size), 0)).where(
                    col(PartnerChunkRecord.issuer_ori) == issuer_ori,
                    col(PartnerChunkRecord.generation) == record.generation,
                )
            ).one()
            ended = session.exec(
                select(func.count()).where(col(PartnerEndedRecord.issuer_ori) == issuer_ori)
            ).one()
            return int(stored) - int(ended)


class IncomingList:
    """A partner's verified snapshot or delta, written as its entries come, used once taken.

    A full snapshot's entries are indexed as they are added, and written in batches of
    `STAGED_A_TRANSACTION` chunks under a new generation (`add` hands each batch back, to
    `write` in another thread while the next chunks are opened, and `rest` the last);
    `take` makes that generation the list's, in the caller's transaction, and `use`
    matches it once committed (`commit` does all three). If the pull fails, `discard`
    deletes them; if the process dies first, the next full snapshot of the same issuer
    or, `STAGING_LIMIT` later, the purge does. A delta is held until `take` writes it.
    """

    def __init__(self, lists: PartnerHotlists, received: ReceivedList) -> None:
        """Receive `received` into `lists`."""
        self._lists = lists
        self._received = received
        self._held: list[ReceivedEntries] = []  # a delta's entries
        self._generation = None if received.since_version else _new_generation(lists._clock())
        self._index = _ListIndex((received.version, received.issued_at, 0))
        self._waiting: list[tuple[int, ReceivedEntries]] = []  # indexed, not yet written
        self._added = 0  # a snapshot's chunks added, and numbered
        self._staged = 0  # of which written

    def add(self, entries: ReceivedEntries) -> StagedBatch | None:
        """Take the list's next entries, from one thread at a time.

        Returns a batch of a full snapshot's chunks for `write`, once enough wait.
        """
        if self._generation is None:
            self._held.append(entries)
            return None
        first, self._added = self._added, self._added + len(entries.chunks)
        _index_chunks(self._index, first, entries)
        self._waiting.append((first, entries))
        if sum(len(part.chunks) for _, part in self._waiting) < STAGED_A_TRANSACTION:
            return None
        return self._batch()

    def write(self, batch: StagedBatch) -> None:
        """Write a batch `add` handed back, its fields encrypted, in a transaction of its own."""
        assert self._generation is not None  # noqa: S101 (only full snapshots hand back batches)
        issuer, lists = self._received.issuer_ori, self._lists
        rows = [
            row
            for first, entries in batch.parts
            for row in lists._chunk_rows(issuer, entries, first, self._generation)
        ]
        with Session(lists._engine) as session:
            insert_rows(session, table_of(PartnerChunkRecord), _CHUNK_COLUMNS, rows)
            session.commit()
        self._staged += len(rows)

    def rest(self) -> StagedBatch | None:
        """A full snapshot's chunks added and not yet handed back, to `write` before `take`."""
        if self._generation is None or not self._waiting:
            return None
        return self._batch()

    def take(self, session: Session, ended: Sequence[str] = ()) -> Taken:
        """Make the list received the one held, with `ended` entries tombstoned, in `session`.

        `session` is the caller's write transaction, so that what else records the
        exchange (its audit event and acknowledgement) commits with the list, or nothing
        does. Call it once every batch handed back, and the `rest`, is written; then,
        once the transaction committed, `use` what it returns.

        Raises:
            PreconditionError: A delta is for another version than the one held, or the
                snapshot's chunks are not all written (the purge took them meanwhile).
                Nothing is written then: the transaction may go on.
        """
        return self._lists._take(
            self._received,
            generation=self._generation,
            delta=ReceivedEntries.joined(self._held) if self._held else _NONE,
            ended=ended,
            staged=self._added,
            session=session,
        )

    def use(self, taken: Taken) -> None:
        """Match the list `take` made the one held, once its transaction committed."""
        staged = self._index if self._generation is not None else None
        self._lists._index_taken(self._received.issuer_ori, taken, staged)

    def commit(self, ended: Sequence[str] = ()) -> None:
        """Write the `rest`, `take` the list in a transaction of its own, and `use` it.

        Raises:
            PreconditionError: As `take`.
        """
        if (batch := self.rest()) is not None:
            self.write(batch)
        with write_transaction(self._lists._engine) as session:
            taken = self.take(session, ended)
        self.use(taken)

    def discard(self) -> None:
        """Delete what was written of a snapshot, unless the list took it (then nothing)."""
        if self._generation is None:
            return
        issuer, hotlist = self._received.issuer_ori, table_of(PartnerHotlistRecord)
        taken = sa_exists().where(
            hotlist.c.issuer_ori == issuer, hotlist.c.generation == self._generation
        )
        with Session(self._lists._engine) as session:
            session.exec(_chunks_of(issuer, self._generation).where(~taken))
            session.commit()

    def _batch(self) -> StagedBatch:
        batch, self._waiting = StagedBatch(self._waiting), []
        return batch


@dataclass(frozen=True)
class StagedBatch:
    """Chunks of a full snapshot to write together.

    Attributes:
        parts: Entries as added, each with the number its first chunk was given.
    """

    parts: list[tuple[int, ReceivedEntries]]


class _ChunkRow(NamedTuple):
    issuer_ori: str
    chunk: int
    size: int
    entry_ids: bytes
    plates: bytes
    fields: bytes
    generation: int


_CHUNK_COLUMNS = _ChunkRow._fields


class _ChunkReader:
    """Decrypts a partner list's chunks as entries in them are asked for, each chunk once."""

    def __init__(self, session: Session, record: PartnerHotlistRecord, key: DataKey) -> None:
        self._session = session
        self._issuer = record.issuer_ori
        self._generation = record.generation
        self._key = key
        self._chunks: dict[int, tuple[list[str], hotlist_pb2.HotlistEntryFieldsList]] = {}

    def match(self, entry_id: str, chunk: int, slot: int) -> PartnerMatch | None:
        """The entry at (`chunk`, `slot`), or None if it is gone or fails the full checks."""
        if chunk not in self._chunks:
            row = self._session.exec(
                select(PartnerChunkRecord).where(
                    col(PartnerChunkRecord.issuer_ori) == self._issuer,
                    col(PartnerChunkRecord.generation) == self._generation,
                    col(PartnerChunkRecord.chunk) == chunk,
                )
            ).first()
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


def _index_chunks(index: _ListIndex, first_chunk: int, columns: ReceivedEntries) -> None:
    """Index the chunks of `columns`, numbered from `first_chunk`, with the plates in hand."""
    for number, (chunk, plates) in enumerate(
        zip(columns.chunks, columns.chunk_plates, strict=True), first_chunk
    ):
        index.add_chunk(number, chunk.entry_ids, plates)


def _next_chunk(session: Session, issuer: str, generation: int) -> int:
    """The number after every chunk of `issuer`'s of `generation`."""
    return session.exec(
        select(func.coalesce(func.max(PartnerChunkRecord.chunk) + 1, 0)).where(
            col(PartnerChunkRecord.issuer_ori) == issuer,
            col(PartnerChunkRecord.generation) == generation,
        )
    ).one()


def _chunks_of(issuer: str, generation: int) -> Delete:
    """Deleting `issuer`'s chunks of `generation`."""
    return delete(PartnerChunkRecord).where(
        col(PartnerChunkRecord.issuer_ori) == issuer,
        col(PartnerChunkRecord.generation) == generation,
    )


def _count(session: Session, issuer: str, generation: int) -> int:
    """How many chunks of `issuer` are of `generation`."""
    return session.exec(
        select(func.count()).where(
            col(PartnerChunkRecord.issuer_ori) == issuer,
            col(PartnerChunkRecord.generation) == generation,
        )
    ).one()


_TIME_BITS = 20


def _generation_at(moment: datetime, tail: int = 0) -> int:
    """A generation made at `moment`: its millisecond since the epoch, then `tail`.

    Ordered by time, so the purge tells a snapshot staged long ago (its pull died) from one
    still coming in; the random tail keeps two made in the same millisecond apart. A
    signed 64-bit column holds them until the year 2248.
    """
    return int(moment.timestamp() * 1000) << _TIME_BITS | tail


def _new_generation(now: datetime) -> int:
    return _generation_at(now, secrets.randbits(_TIME_BITS))
