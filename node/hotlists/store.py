"""The agency's own hotlists in its store: lists, entries, cancellations, versions and deltas.

Every change raises the hotlists' version by one, in the same transaction, so a partner
that holds version v can be sent exactly what changed since (`changes_since`). Removed
and cancelled entries stay as tombstones for that reason. Only the plate is kept in
clear; the other fields are encrypted with the node's data key (HOT-2).
"""

from __future__ import annotations

import hashlib
import sys
import threading
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, func, literal_column, tuple_, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from alpr.common.v1 import hotlist_pb2
from node.clock import Clock
from node.ed25519 import DataKey
from node.errors import AlreadyExistsError, NotFoundError, PreconditionError, ValidationError
from node.hotlists.codec import (
    CHUNK_SIZE,
    EntryChunk,
    chunk_digest,
    encode_fields,
    entry_from_message,
    frame_fields,
    join_column,
    split_column,
)
from node.hotlists.entry import HotlistEntry
from node.store.engine import fetch_tuples, insert_rows, lock_for_write, table_of
from node.store.hotlist_models import (
    HotlistChunkCutRecord,
    HotlistChunkRecord,
    HotlistEntryRecord,
    HotlistRecord,
    HotlistVersion,
)
from node.store.models import utc

MAX_LIST_NAME = 100
MAX_BATCH = 100_000
CHUNKS_A_READ = 16
"""Stored chunks read in one query as a snapshot is sent: about 3 MB of a large list."""
CUT_DIGESTS_KEPT = 100_000
"""Digests of chunks cut to send remembered: every one of a 100M-entry list, in about 22 MB."""
_ENTRY_COLUMNS = (
    "id", "hotlist_id", "plate", "is_partial", "chunk_id", "slot",
    "version", "created_at", "ended_at", "ended_how",
)  # fmt: skip
REMOVED = "removed"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class HotlistInfo:
    """One of the agency's lists, with how many entries are in force on it."""

    name: str
    description: str
    created_at: datetime
    active_entries: int


@dataclass(frozen=True)
class StoredEntry:
    """An entry as stored: its id, the list it is on, and the version that last changed it."""

    entry_id: str
    list_name: str
    entry: HotlistEntry
    version: int
    ended_how: str = ""

    @property
    def in_force(self) -> bool:
        """Whether it was neither removed nor cancelled."""
        return not self.ended_how


class EntryPlace(NamedTuple):
    """Where an entry lies in the order entries were added: its chunk, and its slot in it."""

    chunk_id: int
    slot: int


@dataclass(frozen=True)
class EntryPage:
    """A page of entries in force, and the place of the last if more follow (None at the end)."""

    entries: list[StoredEntry]
    last: EntryPlace | None


class EndedEntry(NamedTuple):
    """An entry just ended, as its change is audited: its id and plate (AUD-1)."""

    entry_id: str
    plate: str


@dataclass(frozen=True)
class Replaced:
    """What `HotlistStore.replace` did to a list.

    Attributes:
        version: The hotlists' version after it: unchanged if nothing was added or removed.
        added: The entries added, in the order given.
        kept: How many entries in force were kept as they were.
        removed: The entries removed.
    """

    version: int
    added: list[StoredEntry]
    kept: int
    removed: list[EndedEntry]


@dataclass(frozen=True)
class Changes:
    """What changed after a version, in chunks as a snapshot carries them.

    Attributes:
        version: The version the changes bring a holder to.
        chunks: The entries added, oldest first, fields decrypted: chunks as stored
            (small ones joined, ended entries left out), so a receiver can store each
            as it came.
        ended: Ids of entries removed or cancelled after the version.
    """

    version: int
    chunks: list[EntryChunk]
    ended: list[str]

    @property
    def entry_count(self) -> int:
        """How many entries were added, without splitting their ids."""
        return sum(chunk.size for chunk in self.chunks)

    @property
    def entry_ids(self) -> list[str]:
        """Ids of the entries added, oldest first."""
        return [entry_id for chunk in self.chunks for entry_id in split_column(chunk.entry_ids)]

    @property
    def plates(self) -> list[str]:
        """Their plates or partial patterns, in the same order."""
        return [plate for chunk in self.chunks for plate in split_column(chunk.plates)]

    def fields(self) -> Sequence[hotlist_pb2.HotlistEntryFields]:
        """The added entries' fields, parsed (serialized lists joined are one list)."""
        joined = b"".join(chunk.fields for chunk in self.chunks)
        return hotlist_pb2.HotlistEntryFieldsList.FromString(joined).fields

    def entries(self) -> list[HotlistEntry]:
        """The added entries, decoded and validated (for small change sets)."""
        pairs = zip(self.plates, self.fields(), strict=True)
        return [entry_from_message(plate, fields) for plate, fields in pairs]


class StreamedChanges(NamedTuple):
    """`Changes` whose chunks are read and decrypted a few at a time as they are iterated.

    Attributes:
        version: The version the changes bring a holder to.
        chunks: The entries added, as in `Changes`; iterate once.
        ended: Ids of entries removed or cancelled after the version.
    """

    version: int
    chunks: Iterator[EntryChunk]
    ended: list[str]


class _StoredChunk(NamedTuple):
    """A full chunk sent as stored, named by the digest stored with it.

    Either none of its entries ended, or (`ended` given) its cut without the entries at
    those slots is stored (`HotlistChunkCutRecord`) and sent.
    """

    chunk_id: int
    size: int
    digest: bytes
    ended: frozenset[int] = frozenset()


class _Piece(NamedTuple):
    """The entries in force of a stored chunk not sent whole: all but those at `ended`."""

    chunk_id: int
    size: int
    ended: frozenset[int]


_Part = _StoredChunk | tuple[_Piece, ...]
"""A chunk as sent: a stored one whole, or pieces of stored ones joined."""


@dataclass(frozen=True)
class OutgoingChanges:
    """What changed after a version, as a snapshot sends it: each chunk named before it is read.

    Attributes:
        version: The version the changes bring a holder to.
        ended: Ids of entries removed or cancelled after the version.
        entry_count: How many entries the chunks hold.
        digests: The `chunk_digest` of each chunk, in order.
        chunks: The chunks, in the same order, fields decrypted; a stored chunk sent
            whole is read and decrypted only as the iteration reaches it, so a snapshot
            being sent holds a few chunks at a time, not the list. Iterate once.
    """

    version: int
    ended: list[str]
    entry_count: int
    digests: list[bytes]
    chunks: Iterator[EntryChunk]

    @classmethod
    def of(cls, changes: Changes) -> OutgoingChanges:
        """`changes`, whose chunks are in hand already."""
        return cls(
            changes.version,
            changes.ended,
            changes.entry_count,
            [chunk_digest(c.entry_ids, c.plates, c.fields) for c in changes.chunks],
            iter(changes.chunks),
        )


class _Chunks:
    """Decrypts each chunk of fields once per operation."""

    def __init__(self, session: Session, key: DataKey) -> None:
        self._session = session
        self._key = key
        self._plain: dict[int, bytes] = {}
        self._parsed: dict[int, hotlist_pb2.HotlistEntryFieldsList] = {}

    def load(self, chunk_ids: Iterable[int]) -> None:
        """Decrypt these chunks, in one query and one pass."""
        wanted = sorted(set(chunk_ids) - set(self._plain))
        for chunk_id, chunk in _read_chunks(self._session, self._key, wanted).items():
            self._plain[chunk_id] = chunk.fields

    def plaintext(self, chunk_id: int) -> bytes:
        """The serialized fields list of a chunk."""
        if chunk_id not in self._plain:
            self.load([chunk_id])
        return self._plain[chunk_id]

    def fields(self, chunk_id: int) -> hotlist_pb2.HotlistEntryFieldsList:
        """The parsed fields list of a chunk."""
        if chunk_id not in self._parsed:
            self._parsed[chunk_id] = hotlist_pb2.HotlistEntryFieldsList.FromString(
                self.plaintext(chunk_id)
            )
        return self._parsed[chunk_id]


def _joined(pieces: Iterable[_StoredChunk | _Piece]) -> list[_Part]:
    """Consecutive pieces joined up to `CHUNK_SIZE` entries each; whole chunks as they are.

    Each piece holds at most `CHUNK_SIZE` entries (a stored chunk or part of one).
    """
    joined: list[_Part] = []
    run: list[_Piece] = []
    held = 0  # entries in `run`
    for piece in pieces:
        if run and (isinstance(piece, _StoredChunk) or held + piece.size > CHUNK_SIZE):
            joined.append(tuple(run))
            run, held = [], 0
        if isinstance(piece, _StoredChunk):
            joined.append(piece)
        else:
            run.append(piece)
            held += piece.size
    if run:
        joined.append(tuple(run))
    return joined


class _CutDigests:
    """The digests of chunks cut to send, by what each was cut from; the most recent kept.

    A chunk that is not a stored one sent whole (a full one more than half ended, or
    small ones joined) is read, decrypted and cut once to name it in a manifest and again
    to send it. Remembering its digest saves the first for every later snapshot that
    sends it alike: the next partner's pull, or the next full pull. A stored chunk never changes,
    so the stored chunks a part was cut from and the slots left out of each determine its
    bytes for good. Small pieces are joined in order, so one that changes can shift how
    those after it join, and those are cut anew. Kept in memory: a restart forgets them.
    """

    def __init__(self, kept: int) -> None:
        self._kept = kept
        self._digests: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()  # snapshots are built in worker threads

    @staticmethod
    def key(part: tuple[_Piece, ...]) -> bytes:
        """What `part` is cut from, hashed: each piece's chunk and the slots it leaves out."""
        hashed = hashlib.blake2b(digest_size=16)
        for piece in part:
            hashed.update(array("q", [piece.chunk_id, len(piece.ended), *sorted(piece.ended)]))
        return hashed.digest()

    def get(self, key: bytes) -> bytes | None:
        """The digest remembered for `key`, if any."""
        with self._lock:
            digest = self._digests.get(key)
            if digest is not None:
                self._digests.move_to_end(key)
            return digest

    def put(self, key: bytes, digest: bytes) -> None:
        """Remember `digest` for `key`, forgetting the least recently used past `kept`."""
        with self._lock:
            self._digests[key] = digest
            self._digests.move_to_end(key)
            while len(self._digests) > self._kept:
                self._digests.popitem(last=False)


def _size(part: _Part) -> int:
    return part.size if isinstance(part, _StoredChunk) else sum(piece.size for piece in part)


def _join(run: Sequence[EntryChunk]) -> EntryChunk:
    if len(run) == 1:
        return run[0]
    return EntryChunk(
        sum(piece.size for piece in run),
        b"\n".join(piece.entry_ids for piece in run),
        b"\n".join(piece.plates for piece in run),
        b"".join(piece.fields for piece in run),
    )


def _kept(chunk: EntryChunk, ended: frozenset[int]) -> EntryChunk:
    """`chunk` without the entries at `ended`, cut out of its bytes if any are left out.

    Each entry's fields stay serialized (`HotlistEntryFieldsFrames`): parsing a chunk's
    thousand entries into messages and serializing them again cost 1.6 s a million.
    The few entries ended are deleted from the split columns, in C, rather than the
    others picked one by one.
    """
    if not ended:
        return chunk
    ids, plates = chunk.entry_ids.split(b"\n"), chunk.plates.split(b"\n")
    frames = list(hotlist_pb2.HotlistEntryFieldsFrames.FromString(chunk.fields).fields)
    for slot in sorted(ended, reverse=True):
        del ids[slot], plates[slot], frames[slot]
    return EntryChunk(len(ids), b"\n".join(ids), b"\n".join(plates), frame_fields(frames))


def _read_chunks(session: Session, key: DataKey, chunk_ids: Sequence[int]) -> dict[int, EntryChunk]:
    """These stored chunks by id, fields decrypted, in one query per 500 and one pass.

    Raises:
        NotFoundError: One of them is gone (a chunk is never deleted: a broken store).
    """
    table = table_of(HotlistChunkRecord)
    rows = []
    for start in range(0, len(chunk_ids), 500):
        rows += fetch_tuples(
            session,
            sa_select(
                table.c.id, table.c.size, table.c.entry_ids, table.c.plates, table.c.fields
            ).where(table.c.id.in_(chunk_ids[start : start + 500])),
        )
    if len(rows) != len(set(chunk_ids)):
        raise NotFoundError("a hotlist chunk is missing from the store")
    return _opened(key, rows)


def _read_cuts(
    session: Session, key: DataKey, ended: Mapping[int, frozenset[int]]
) -> dict[int, EntryChunk]:
    """The stored cuts of these chunks, by chunk id, each if it still leaves out its `ended`.

    A cut is rewritten when another entry of its chunk ends: a snapshot named before that
    must cut the chunk itself, as it named it.
    """
    if not ended:
        return {}
    table = table_of(HotlistChunkCutRecord)
    rows = fetch_tuples(
        session,
        sa_select(
            table.c.id, table.c.ended_slots, table.c.size, table.c.entry_ids, table.c.plates,
            table.c.fields,
        ).where(table.c.id.in_(sorted(ended))),
    )  # fmt: skip
    return _opened(key, [(row[0], *row[2:]) for row in rows if _slots(row[1]) == ended[row[0]]])


def _named_cuts(
    session: Session, ended: Mapping[int, frozenset[int]]
) -> dict[int, tuple[int, bytes]]:
    """Of these full chunks, those whose stored cut leaves out exactly their `ended` slots.

    Each with the cut's size and sealed digest, read without its large columns.
    """
    table = table_of(HotlistChunkCutRecord)
    chunk_ids = sorted(ended)
    named: dict[int, tuple[int, bytes]] = {}
    for start in range(0, len(chunk_ids), 500):
        rows = fetch_tuples(
            session,
            sa_select(table.c.id, table.c.ended_slots, table.c.size, table.c.digest).where(
                table.c.id.in_(chunk_ids[start : start + 500])
            ),
        )
        for chunk_id, slots, size, sealed in rows:
            if _slots(slots) == ended[chunk_id]:
                named[chunk_id] = (size, sealed)
    return named


def _opened(
    key: DataKey, rows: Sequence[tuple[int, int, bytes, bytes, bytes]]
) -> dict[int, EntryChunk]:
    """Rows of (id, size, entry ids, plates, sealed fields) as chunks by id, in one pass."""
    plain = key.decrypt_many(row[4] for row in rows)
    return {
        row[0]: EntryChunk(row[1], row[2], row[3], fields)
        for row, fields in zip(rows, plain, strict=True)
    }


def _check_batch(entries: Sequence[HotlistEntry]) -> None:
    """Refuse a batch larger than one transaction should write, or an empty one."""
    if not 0 < len(entries) <= MAX_BATCH:
        raise ValidationError("entries", f"give 1 to {MAX_BATCH} entries at a time")


def _entry_key(plate: bytes, fields: bytes) -> bytes:
    """What identifies an entry of a list in every field: its plate and serialized fields.

    `encode_fields` serializes the same fields to the same bytes (no map fields), so an
    entry stored from the same row of a file has the same key. One stored in another
    encoding would differ and be replaced, never wrongly kept.
    """
    return plate + b"\n" + fields  # a plate holds no newline


def _slots(packed: bytes) -> frozenset[int]:
    """The slots a cut leaves out, as `HotlistChunkCutRecord.ended_slots` holds them (`_packed`)."""
    slots = array("H", packed)
    if sys.byteorder == "big":
        slots.byteswap()
    return frozenset(slots)


def _packed(slots: Iterable[int]) -> bytes:
    """`slots` as `HotlistChunkCutRecord.ended_slots` holds them: 16-bit, little-endian."""
    packed = array("H", sorted(slots))
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


class HotlistStore:
    """The agency's own hotlists."""

    def __init__(self, engine: Engine, *, data_key: DataKey, clock: Clock) -> None:
        """Keep lists in `engine`'s database, encrypting fields with `data_key`."""
        self._engine = engine
        self._key = data_key
        self._clock = clock
        self._cut_digests = _CutDigests(CUT_DIGESTS_KEPT)

    def create_list(self, name: str, description: str = "") -> HotlistInfo:
        """Make an empty list.

        The name is printed in tables and audit lines: a newline or other control
        character in it would break them, so it holds printable characters only.

        Raises:
            ValidationError: The name is empty, too long, untrimmed or not printable.
            AlreadyExistsError: A list has that name.
        """
        if not name.strip() or len(name) > MAX_LIST_NAME or name != name.strip():
            raise ValidationError("name", f"must be 1 to {MAX_LIST_NAME} characters, trimmed")
        if not name.isprintable():
            raise ValidationError(
                "name", f"{name!r} holds a control or other non-printable character"
            )
        with Session(self._engine) as session:
            if self._find_list(session, name) is not None:
                raise AlreadyExistsError(f"a hotlist named {name!r} exists")
            record = HotlistRecord(name=name, description=description, created_at=self._clock())
            session.add(record)
            session.commit()
            return HotlistInfo(name, description, utc(record.created_at), 0)

    def lists(self) -> list[HotlistInfo]:
        """Every list, by name, with its count of entries in force."""
        with Session(self._engine) as session:
            counts = dict(
                session.exec(
                    select(HotlistEntryRecord.hotlist_id, func.count())
                    .where(col(HotlistEntryRecord.ended_at).is_(None))
                    .group_by(col(HotlistEntryRecord.hotlist_id))
                ).all()
            )
            records = session.exec(select(HotlistRecord).order_by(col(HotlistRecord.name))).all()
            return [
                HotlistInfo(r.name, r.description, utc(r.created_at), counts.get(r.id or 0, 0))
                for r in records
            ]

    def add(self, list_name: str, entries: Sequence[HotlistEntry]) -> list[StoredEntry]:
        """Put `entries` on a list, in one transaction and one version.

        Raises:
            NotFoundError: No list has that name.
            ValidationError: More than `MAX_BATCH` entries at once, or none.
        """
        _check_batch(entries)
        with Session(self._engine) as session:
            version = self._next_version(session)
            stored = self._insert(session, self._require_list(session, list_name), entries, version)
            session.commit()
        return stored

    def replace(self, list_name: str, entries: Sequence[HotlistEntry]) -> Replaced:
        """Make a list hold exactly `entries`, in one transaction: readers see it before or after.

        For a full extract reissued (NCIC's, twice a day): an entry in force identical to
        one of `entries` in every field is kept as it is (same id and version, so no delta
        sends it again); the others in force are removed as `remove` removes one, so a
        partner's next delta ends them (HOT-5); those of `entries` left are added, a
        duplicate once. When nothing is added or removed the transaction is rolled back:
        the version stays and partners have nothing to pull.

        Entries are compared by `_entry_key`, one lookup each: `entries`' keys are held
        (at most `MAX_BATCH`), the list's entries read a few stored chunks at a time
        (`_in_force`), so a million-entry list is never held whole.

        Raises:
            NotFoundError: No list has that name.
            ValidationError: More than `MAX_BATCH` entries, or none.
        """
        _check_batch(entries)
        with Session(self._engine) as session:
            version = self._next_version(session)
            hotlist = self._require_list(session, list_name)
            wanted: dict[bytes, HotlistEntry] = {}
            for entry in entries:
                key = _entry_key(entry.plate.encode(), encode_fields(entry, list_name))
                wanted.setdefault(key, entry)
            distinct = len(wanted)
            removed: list[EndedEntry] = []
            ended: dict[int, set[int]] = {}
            for chunk_id, chunk, in_force in self._in_force(session, hotlist):
                ids, plates = chunk.entry_ids.split(b"\n"), chunk.plates.split(b"\n")
                frames = hotlist_pb2.HotlistEntryFieldsFrames.FromString(chunk.fields).fields
                for slot in in_force:
                    if wanted.pop(_entry_key(plates[slot], frames[slot]), None) is None:
                        ended.setdefault(chunk_id, set()).add(slot)
                        removed.append(EndedEntry(ids[slot].decode(), plates[slot].decode()))
            kept = distinct - len(wanted)
            if not wanted and not removed:
                session.rollback()
                return Replaced(version - 1, [], kept, [])
            self._remove_many(session, [r.entry_id for r in removed], ended, version)
            added = self._insert(session, hotlist, list(wanted.values()), version)
            session.commit()
        return Replaced(version, added, kept, removed)

    def remove(self, entry_id: str) -> StoredEntry:
        """Take an entry off its list (entered by mistake).

        Raises:
            NotFoundError: No such entry.
            PreconditionError: It already ended.
        """
        return self._end(entry_id, REMOVED)

    def cancel(self, entry_id: str) -> StoredEntry:
        """Cancel an entry found to be in error (HOT-5); partners learn it in their next delta.

        Raises:
            NotFoundError: No such entry.
            PreconditionError: It already ended.
        """
        return self._end(entry_id, CANCELLED)

    def get(self, entry_id: str) -> StoredEntry:
        """One entry, decrypted.

        Raises:
            NotFoundError: No such entry.
        """
        with Session(self._engine) as session:
            record = session.get(HotlistEntryRecord, entry_id)
            if record is None:
                raise NotFoundError(f"no hotlist entry {entry_id}")
            return self._stored(record, _Chunks(session, self._key))

    def entries(
        self, list_name: str | None = None, *, after: EntryPlace | None = None, limit: int
    ) -> EntryPage:
        """Up to `limit` entries in force, on one list or all, oldest first, after `after`.

        A page is found from an index of entries by place, starting at `after`, and only
        the chunks holding its entries are read and decrypted: a page deep in a list of a
        million costs what the first does, so listing it all, page by page, costs in
        proportion to its length (the list read whole for each page cost its square).

        Raises:
            ValidationError: `limit` is less than 1.
            NotFoundError: No list has that name.
        """
        if limit < 1:
            raise ValidationError("limit", f"must be at least 1, not {limit}")
        place = (col(HotlistEntryRecord.chunk_id), col(HotlistEntryRecord.slot))
        in_force: ColumnElement[bool] = col(HotlistEntryRecord.ended_at).is_(None)
        if self._engine.dialect.name == "sqlite":
            # A node's SQLite has no statistics: it would take this term for a selective
            # one, walk the index on ended_at and sort every entry in force for each page.
            # Marked unselective, it walks the index by place from `after` instead.
            in_force = func.likelihood(in_force, literal_column("0.99"))
        with Session(self._engine) as session:
            query = select(HotlistEntryRecord).where(in_force)
            if list_name is not None:
                hotlist = self._require_list(session, list_name)
                query = query.where(col(HotlistEntryRecord.hotlist_id) == hotlist.id)
            if after is not None:
                query = query.where(tuple_(*place) > tuple_(*after))
            records = session.exec(query.order_by(*place).limit(limit + 1)).all()
            shown = records[:limit]
            chunks = _Chunks(session, self._key)
            chunks.load(record.chunk_id for record in shown)
            entries = [self._stored(record, chunks) for record in shown]
        more = len(records) > limit
        return EntryPage(entries, EntryPlace(shown[-1].chunk_id, shown[-1].slot) if more else None)

    def version(self) -> int:
        """The current version of the agency's hotlists (0 before the first change)."""
        with Session(self._engine) as session:
            row = session.get(HotlistVersion, 1)
            return row.version if row else 0

    def added_since(self, version: int) -> int:
        """How many entries were added after `version`, whether in force or ended since."""
        chunk_table = table_of(HotlistChunkRecord)
        with self._engine.connect() as connection:
            added = connection.execute(
                sa_select(func.coalesce(func.sum(chunk_table.c.size), 0)).where(
                    chunk_table.c.version > version
                )
            ).scalar_one()
        return int(added)

    def changes_since(self, version: int) -> Changes:
        """Everything that changed after `version`, every chunk in hand (see `outgoing_since`).

        Raises:
            ValidationError: `version` is negative or ahead of ours.
        """
        current, chunks, ended = self.streamed_since(version)
        return Changes(current, list(chunks), ended)

    def streamed_since(self, version: int) -> StreamedChanges:
        """What `changes_since` gives, each chunk read only as the iteration reaches it.

        A reader of a large list holds a few chunks at a time, not the list. The chunks
        are those in force at the call: an entry ended meanwhile is among the changes
        after the version this returns.

        Raises:
            ValidationError: `version` is negative or ahead of ours.
        """
        current, ended, parts = self._parts_since(version)
        return StreamedChanges(current, self._sent(parts), ended)

    def outgoing_since(self, version: int) -> OutgoingChanges:
        """Everything that changed after `version`, as a snapshot sends it; from 0, all in force.

        Every chunk is named before any is sent: a full chunk none of whose entries ended
        by the digest stored with it, a full chunk with entries ended by the one stored
        with its cut (`_recut`), the others (more than half ended, small ones joined, or
        stored before chunks had digests) by the digest remembered from an earlier
        snapshot, or by reading them `CHUNKS_A_READ` at a time and hashing them. The
        chunks are then read again as they are sent, so a snapshot holds a few chunks at
        a time, never the list.

        Raises:
            ValidationError: `version` is negative or ahead of ours.
        """
        current, ended, parts = self._parts_since(version)
        cut = self._named([part for part in parts if not isinstance(part, _StoredChunk)])
        return OutgoingChanges(
            current,
            ended,
            sum(_size(part) for part in parts),
            [part.digest if isinstance(part, _StoredChunk) else next(cut) for part in parts],
            self._sent(parts),
        )

    def _named(self, cut: Sequence[tuple[_Piece, ...]]) -> Iterator[bytes]:
        """The digest of the chunk cut from each of `cut`'s parts: remembered, or made now."""
        keys = [_CutDigests.key(part) for part in cut]
        named = {i: d for i, key in enumerate(keys) if (d := self._cut_digests.get(key))}
        unknown = [i for i in range(len(cut)) if i not in named]
        for i, chunk in zip(unknown, self._sent([cut[i] for i in unknown]), strict=True):
            named[i] = chunk_digest(chunk.entry_ids, chunk.plates, chunk.fields)
            self._cut_digests.put(keys[i], named[i])
        return iter([named[i] for i in range(len(cut))])

    def _parts_since(self, version: int) -> tuple[int, list[str], list[_Part]]:
        """The version now, the ids of entries ended after `version`, and the chunks to send.

        Reads a row per entry ended after `version`, the size and digest of each chunk
        added after it (from an index, not the chunks' rows), and of each stored cut of
        one of those chunks with entries ended.

        Raises:
            ValidationError: `version` is negative or ahead of ours.
        """
        chunk_table, entry_table = table_of(HotlistChunkRecord), table_of(HotlistEntryRecord)
        with Session(self._engine) as session:
            row = session.get(HotlistVersion, 1)
            current = row.version if row else 0
            if not 0 <= version <= current:
                raise ValidationError("since_version", f"must be 0 to {current}, not {version}")
            ended_query = sa_select(
                entry_table.c.id, entry_table.c.chunk_id, entry_table.c.slot
            ).where(entry_table.c.ended_at.is_not(None))
            if version:
                ended_query = ended_query.where(entry_table.c.version > version)
            order = (entry_table.c.version, entry_table.c.chunk_id, entry_table.c.slot)
            ended_rows = fetch_tuples(session, ended_query.order_by(*order))
            added = fetch_tuples(
                session,
                sa_select(chunk_table.c.id, chunk_table.c.size, chunk_table.c.digest)
                .where(chunk_table.c.version > version)
                .order_by(chunk_table.c.version, chunk_table.c.id),
            )
            slots: dict[int, set[int]] = {}
            for _, chunk_id, slot in ended_rows:
                slots.setdefault(chunk_id, set()).add(slot)
            ended_slots = {chunk_id: frozenset(ended) for chunk_id, ended in slots.items()}
            cut = _named_cuts(
                session,
                {
                    chunk_id: ended_slots[chunk_id]
                    for chunk_id, size, _ in added
                    if size == CHUNK_SIZE and chunk_id in ended_slots
                },
            )
        whole = [
            (chunk_id, sealed)
            for chunk_id, size, sealed in added
            if sealed is not None and size == CHUNK_SIZE and chunk_id not in ended_slots
        ]
        whole += [(chunk_id, sealed) for chunk_id, (_, sealed) in cut.items()]
        digests = dict(
            zip(
                [chunk_id for chunk_id, _ in whole],
                self._key.decrypt_many(sealed for _, sealed in whole),
                strict=True,
            )
        )
        pieces: list[_StoredChunk | _Piece] = []
        for chunk_id, size, _ in added:
            gone = ended_slots.get(chunk_id, frozenset())
            if chunk_id in digests:
                kept = cut[chunk_id][0] if chunk_id in cut else size
                pieces.append(_StoredChunk(chunk_id, kept, digests[chunk_id], gone))
            elif len(gone) < size:
                pieces.append(_Piece(chunk_id, size - len(gone), gone))
        # A full snapshot replaces the list: nothing to end.
        ended = [entry_id for entry_id, _, _ in ended_rows] if version else []
        return current, ended, _joined(pieces)

    def _sent(self, parts: Sequence[_Part]) -> Iterator[EntryChunk]:
        """Each part as a chunk, read and decrypted `CHUNKS_A_READ` parts at a time.

        A chunk named by its stored cut is cut here from the chunk instead if the cut
        changed since (another entry of it ended): the snapshot sends what it named.
        """
        for start in range(0, len(parts), CHUNKS_A_READ):
            batch = parts[start : start + CHUNKS_A_READ]
            with Session(self._engine) as session:
                cuts = _read_cuts(
                    session,
                    self._key,
                    {p.chunk_id: p.ended for p in batch if isinstance(p, _StoredChunk) and p.ended},
                )
                wanted = {
                    piece.chunk_id
                    for part in batch
                    for piece in ([part] if isinstance(part, _StoredChunk) else part)
                    if piece.chunk_id not in cuts
                }
                read = _read_chunks(session, self._key, sorted(wanted))
            for part in batch:
                if isinstance(part, _StoredChunk):
                    yield cuts.get(part.chunk_id) or _kept(read[part.chunk_id], part.ended)
                else:
                    yield _join([_kept(read[piece.chunk_id], piece.ended) for piece in part])

    def _end(self, entry_id: str, how: str) -> StoredEntry:
        with Session(self._engine) as session:
            version = self._next_version(session)
            record = session.get(HotlistEntryRecord, entry_id)
            if record is None:
                raise NotFoundError(f"no hotlist entry {entry_id}")
            if record.ended_at is not None:
                raise PreconditionError(f"hotlist entry {entry_id} was already {record.ended_how}")
            record.ended_at, record.ended_how, record.version = self._clock(), how, version
            session.add(record)
            self._recut(session, record.chunk_id, {record.slot})
            session.commit()
            return self._stored(record, _Chunks(session, self._key))

    def _insert(
        self,
        session: Session,
        hotlist: HotlistRecord,
        entries: Sequence[HotlistEntry],
        version: int,
    ) -> list[StoredEntry]:
        """Store `entries` on `hotlist` at `version`, in chunks of `CHUNK_SIZE`; no commit."""
        assert hotlist.id is not None  # noqa: S101 (a stored row has its key)
        now = self._clock()
        ids = [str(uuid.uuid4()) for _ in entries]
        for start in range(0, len(entries), CHUNK_SIZE):
            part = entries[start : start + CHUNK_SIZE]
            part_ids = ids[start : start + CHUNK_SIZE]
            framed = frame_fields([encode_fields(entry, hotlist.name) for entry in part])
            joined_ids, joined_plates = join_column(part_ids), join_column(e.plate for e in part)
            chunk = HotlistChunkRecord(
                version=version,
                entry_ids=joined_ids,
                plates=joined_plates,
                fields=self._key.encrypt(framed),
                size=len(part),
                digest=self._key.encrypt(chunk_digest(joined_ids, joined_plates, framed))
                if len(part) == CHUNK_SIZE
                else None,
            )
            session.add(chunk)
            session.flush()
            insert_rows(
                session,
                table_of(HotlistEntryRecord),
                _ENTRY_COLUMNS,
                (
                    (
                        entry_id,
                        hotlist.id,
                        entry.plate,
                        entry.is_partial,
                        chunk.id,
                        slot,
                        version,
                        now,
                        None,
                        "",
                    )
                    for slot, (entry_id, entry) in enumerate(zip(part_ids, part, strict=True))
                ),
            )
        return [
            StoredEntry(entry_id, hotlist.name, entry, version)
            for entry_id, entry in zip(ids, entries, strict=True)
        ]

    def _in_force(
        self, session: Session, hotlist: HotlistRecord
    ) -> Iterator[tuple[int, EntryChunk, list[int]]]:
        """Each stored chunk of `hotlist` with entries in force, decrypted, and their slots.

        Read `CHUNKS_A_READ` chunks at a time. As `_parts_since` does, it reads the ids of
        the list's chunks and a row per ended entry, not one per entry in force.
        """
        table = table_of(HotlistEntryRecord)
        of_list = table.c.hotlist_id == hotlist.id
        chunk_ids = [
            chunk_id
            for (chunk_id,) in fetch_tuples(
                session,
                sa_select(table.c.chunk_id)
                .where(of_list, table.c.ended_at.is_(None))
                .distinct()
                .order_by(table.c.chunk_id),
            )
        ]
        ended: dict[int, set[int]] = {}
        for chunk_id, slot in fetch_tuples(
            session,
            sa_select(table.c.chunk_id, table.c.slot).where(of_list, table.c.ended_at.is_not(None)),
        ):
            ended.setdefault(chunk_id, set()).add(slot)
        for start in range(0, len(chunk_ids), CHUNKS_A_READ):
            read = _read_chunks(session, self._key, chunk_ids[start : start + CHUNKS_A_READ])
            for chunk_id, chunk in sorted(read.items()):
                gone = ended.get(chunk_id, set())
                yield chunk_id, chunk, [slot for slot in range(chunk.size) if slot not in gone]

    def _remove_many(
        self,
        session: Session,
        entry_ids: Sequence[str],
        slots: Mapping[int, set[int]],
        version: int,
    ) -> None:
        """End entries in force as `remove` ends one, at `version`; `slots` theirs by chunk."""
        now, table = self._clock(), table_of(HotlistEntryRecord)
        for start in range(0, len(entry_ids), 500):
            session.exec(
                update(table)
                .where(table.c.id.in_(entry_ids[start : start + 500]))
                .values(ended_at=now, ended_how=REMOVED, version=version)
            )
        for chunk_id, ended in slots.items():
            self._recut(session, chunk_id, ended)

    def _recut(self, session: Session, chunk_id: int, slots: Iterable[int]) -> None:
        """Store the cut of a full chunk whose entries at `slots` just ended, for snapshots.

        Kept while at least half the chunk is in force; a sparser chunk is cut as it is
        sent and joined with the pieces beside it, and has no stored cut.
        """
        chunk = _read_chunks(session, self._key, [chunk_id])[chunk_id]
        if chunk.size != CHUNK_SIZE:
            return  # sent as pieces, joined, whatever ends
        stored = session.get(HotlistChunkCutRecord, chunk_id)
        ended = {*slots, *(_slots(stored.ended_slots) if stored else ())}
        if len(ended) > CHUNK_SIZE // 2:
            if stored is not None:
                session.delete(stored)
            return
        kept = _kept(chunk, frozenset(ended))
        values = {
            "id": chunk_id,
            "ended_slots": _packed(ended),
            "size": kept.size,
            "digest": self._key.encrypt(chunk_digest(kept.entry_ids, kept.plates, kept.fields)),
            "entry_ids": kept.entry_ids,
            "plates": kept.plates,
            "fields": self._key.encrypt(kept.fields),
        }
        if stored is None:
            stored = HotlistChunkCutRecord.model_validate(values)
        else:
            stored.sqlmodel_update(values)
        session.add(stored)

    def _next_version(self, session: Session) -> int:
        """Raise the version under the write lock; first thing in the session's transaction."""
        lock_for_write(session)
        row = session.exec(
            select(HotlistVersion).where(col(HotlistVersion.id) == 1).with_for_update()
        ).one_or_none()
        row = row or HotlistVersion(id=1, version=0)
        row.version += 1
        session.add(row)
        return row.version

    @staticmethod
    def _stored(record: HotlistEntryRecord, chunks: _Chunks) -> StoredEntry:
        message = chunks.fields(record.chunk_id).fields[record.slot]
        entry = entry_from_message(record.plate, message)
        return StoredEntry(record.id, message.list_name, entry, record.version, record.ended_how)

    @staticmethod
    def _find_list(session: Session, name: str) -> HotlistRecord | None:
        return session.exec(select(HotlistRecord).where(col(HotlistRecord.name) == name)).first()

    def _require_list(self, session: Session, name: str) -> HotlistRecord:
        hotlist = self._find_list(session, name)
        if hotlist is None:
            raise NotFoundError(f"no hotlist named {name!r}")
        return hotlist
