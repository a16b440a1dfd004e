"""Tables of hotlists: the agency's own lists and the lists received from partners.

Only the plate is stored in clear, for matching; every other field is encrypted with
the node's data key (HOT-2).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index
from sqlmodel import Field, SQLModel


class HotlistRecord(SQLModel, table=True):
    """One of the agency's own hotlists."""

    __tablename__ = "hotlist"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    description: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


class HotlistChunkRecord(SQLModel, table=True):
    """Up to a thousand own entries added together: ids and plates, fields encrypted (HOT-2).

    The plaintext is a serialized `HotlistEntryFieldsList`: a snapshot of entries added
    together reuses it whole, so a million entries are a thousand rows read and a
    thousand decryptions. `version` is the one that added the chunk (0 for a chunk that
    had no entry in force when this column was added); ids and plates are joined by
    newlines, in slot order. `size` is how many entries it holds. `digest` is, for a
    full chunk, its `chunk_digest` encrypted with the data key (a plain hash of guessable
    fields would let whoever reads the store test guesses): a snapshot's manifest names
    the chunk by it before reading the chunk. It is None for a smaller chunk, and for
    one written before the column was added: those are read to be named. The index on
    (version, id, size, digest) answers a manifest's query without reading a chunk's
    row: on SQLite, columns after the large ones would walk each row's overflow pages.
    """

    __tablename__ = "hotlist_chunk"
    __table_args__ = (Index("ix_hotlist_chunk_sent", "version", "id", "size", "digest"),)

    id: int | None = Field(default=None, primary_key=True)
    version: int = Field(sa_type=BigInteger)
    entry_ids: bytes
    plates: bytes
    fields: bytes
    size: int
    digest: bytes | None = None


class HotlistChunkCutRecord(SQLModel, table=True):
    """A full own chunk some of whose entries ended, as it is sent: the entries in force only.

    Written, in the transaction that ends an entry, for a full chunk (one a snapshot sends
    as stored while nothing of it ends) that keeps at least half its entries in force: a
    snapshot then sends it as stored here, named by `digest`, instead of reading and
    cutting the chunk twice (to name it, and to send it). `ended_slots` are the slots of
    the chunk left out, as an array of 16-bit integers: a snapshot uses the row only when
    they are exactly the chunk's ended entries (an entry ended before this table existed
    is in none). Columns as in `HotlistChunkRecord`, fields and digest encrypted (HOT-2);
    the small ones first, so that naming reads no overflow page.
    """

    __tablename__ = "hotlist_chunk_cut"

    id: int = Field(primary_key=True, foreign_key="hotlist_chunk.id")
    """The chunk's."""
    ended_slots: bytes
    size: int
    digest: bytes
    entry_ids: bytes
    plates: bytes
    fields: bytes


class HotlistEntryRecord(SQLModel, table=True):
    """An entry of an own hotlist. Removed and cancelled entries stay as tombstones for deltas.

    An entry lies at (`chunk_id`, `slot`): chunks are numbered as they are added, so that
    order is the order entries were added in, and it is unique. Operators list entries a
    page at a time in it, each page starting where the last ended, on one list or all:
    the two indexes find a page without reading or sorting the entries before it.
    """

    __tablename__ = "hotlist_entry"
    __table_args__ = (
        Index("ix_hotlist_entry_chunk_slot", "chunk_id", "slot", unique=True),
        Index("ix_hotlist_entry_list_chunk_slot", "hotlist_id", "chunk_id", "slot"),
    )

    id: str = Field(primary_key=True, max_length=36)
    hotlist_id: int = Field(foreign_key="hotlist.id")
    plate: str = Field(max_length=16, index=True)
    is_partial: bool
    chunk_id: int = Field(foreign_key="hotlist_chunk.id")
    slot: int
    version: int = Field(sa_type=BigInteger, index=True)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    ended_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), index=True)
    ended_how: str = Field(default="", max_length=16)


class HotlistVersion(SQLModel, table=True):
    """The version of the agency's hotlists: one row, raised by every change."""

    __tablename__ = "hotlist_version"

    id: int = Field(default=1, primary_key=True)
    version: int = Field(sa_type=BigInteger)


class PartnerHotlistRecord(SQLModel, table=True):
    """The last snapshot received from a partner: used only until `expires_at` (HOT-6)."""

    __tablename__ = "partner_hotlist"

    issuer_ori: str = Field(primary_key=True, max_length=9)
    version: int = Field(sa_type=BigInteger)
    issued_at: datetime = Field(sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    received_at: datetime = Field(sa_type=DateTime(timezone=True))
    agreement_id: str = Field(max_length=36)
    snapshot_digest: bytes
    generation: int = Field(default=0, sa_type=BigInteger)
    """Which of the issuer's chunks make the list: those of this generation."""


class PartnerChunkRecord(SQLModel, table=True):
    """Up to a thousand entries of a partner's list: ids and plates in clear, fields encrypted.

    Plates are matched from an in-memory index built from these chunks, so a million
    received entries are a thousand rows and a thousand encryptions (HOT-2); a hit
    decrypts only the chunk that holds its entry.

    A chunk belongs to its issuer's list only while its `generation` is the list's: a full
    snapshot is written as it streams in under a new generation, invisible until the list
    takes it. So a chunk may exist before its list's record does, and has no foreign key;
    several snapshots of one list may come in at once (two processes), each in its own.
    """

    __tablename__ = "partner_chunk"

    issuer_ori: str = Field(primary_key=True, max_length=9)
    generation: int = Field(primary_key=True, sa_type=BigInteger)
    """Numbered from 0 within each generation; the key finds a generation's chunks without
    reading a row (on SQLite the generation, added last, lies past the large columns)."""
    chunk: int = Field(primary_key=True)
    size: int
    entry_ids: bytes
    plates: bytes
    fields: bytes


class PartnerEndedRecord(SQLModel, table=True):
    """An entry a partner removed or cancelled since its last full snapshot (HOT-5)."""

    __tablename__ = "partner_ended"

    issuer_ori: str = Field(
        primary_key=True, max_length=9, foreign_key="partner_hotlist.issuer_ori"
    )
    entry_id: str = Field(primary_key=True, max_length=36)
