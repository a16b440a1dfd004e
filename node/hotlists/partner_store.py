"""Hotlists received from partners: kept only while fresh (HOT-6), fields encrypted at rest (HOT-2).

A partner's list is usable from the moment its verified snapshot is stored until the
snapshot's `expires_at` (issued + 24 h). `find` never returns an entry of a list past
that instant, whether or not the purge job has run; `purge_expired` then deletes it.
Plates are stored in clear for matching; the other fields of each thousand entries are
encrypted together with the node's data key, so storing a million entries is a
thousand encryptions and reading one hit decrypts one chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from alpr.common.v1 import hotlist_pb2
from node.clock import Clock
from node.ed25519 import DataKey
from node.errors import PreconditionError, ValidationError
from node.hotlists.codec import entry_from_message
from node.hotlists.entry import HotlistEntry, PlatePattern
from node.store.engine import insert_rows, table_of
from node.store.hotlist_models import PartnerChunkRecord, PartnerEntryRecord, PartnerHotlistRecord
from node.store.models import utc

CHUNK_SIZE = 1000


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
    """A partner's entries as a snapshot carries them: aligned columns, fields still as messages."""

    entry_ids: list[str]
    plates: list[str]
    fields: list[hotlist_pb2.HotlistEntryFields]


@dataclass(frozen=True)
class PartnerMatch:
    """A plate found on a partner's list in force."""

    issuer_ori: str
    entry_id: str
    list_name: str
    entry: HotlistEntry


class PartnerHotlists:
    """The partner lists this node holds."""

    def __init__(self, engine: Engine, *, data_key: DataKey, clock: Clock) -> None:
        """Keep partner lists in `engine`'s database, encrypting fields with `data_key`."""
        self._engine = engine
        self._key = data_key
        self._clock = clock

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
                for table in (PartnerEntryRecord, PartnerChunkRecord):
                    session.exec(delete(table).where(col(table.issuer_ori) == issuer))
            if ended:
                session.exec(
                    delete(PartnerEntryRecord).where(
                        col(PartnerEntryRecord.issuer_ori) == issuer,
                        col(PartnerEntryRecord.entry_id).in_(ended),
                    )
                )
            first_chunk = session.exec(
                select(func.coalesce(func.max(PartnerChunkRecord.chunk) + 1, 0)).where(
                    col(PartnerChunkRecord.issuer_ori) == issuer
                )
            ).one()
            self._insert(session, issuer, columns, first_chunk)
            session.commit()

    def _insert(
        self, session: Session, issuer: str, columns: ReceivedEntries, first_chunk: int
    ) -> None:
        count = len(columns.entry_ids)
        chunks = (
            (
                issuer,
                first_chunk + start // CHUNK_SIZE,
                self._key.encrypt(
                    hotlist_pb2.HotlistEntryFieldsList(
                        fields=columns.fields[start : start + CHUNK_SIZE]
                    ).SerializeToString()
                ),
            )
            for start in range(0, count, CHUNK_SIZE)
        )
        insert_rows(
            session, table_of(PartnerChunkRecord), ("issuer_ori", "chunk", "fields"), chunks
        )
        entries = (
            (
                issuer,
                columns.entry_ids[i],
                plate,
                "?" in plate or "*" in plate,
                first_chunk + i // CHUNK_SIZE,
                i % CHUNK_SIZE,
            )
            for i, plate in enumerate(columns.plates)
        )
        insert_rows(
            session,
            table_of(PartnerEntryRecord),
            ("issuer_ori", "entry_id", "plate", "is_partial", "chunk", "slot"),
            entries,
        )

    def find(self, plate: str) -> list[PartnerMatch]:
        """Entries for `plate` on partner lists in force now: whole plates and partial patterns."""
        now = self._clock()
        with Session(self._engine) as session:
            fresh = select(PartnerHotlistRecord.issuer_ori).where(
                col(PartnerHotlistRecord.expires_at) > now
            )
            query = select(PartnerEntryRecord).where(
                col(PartnerEntryRecord.issuer_ori).in_(fresh),
                (col(PartnerEntryRecord.plate) == plate) | col(PartnerEntryRecord.is_partial),
            )
            candidates = [
                record
                for record in session.exec(query).all()
                if PlatePattern(record.plate).matches(plate)
            ]
            chunks: dict[tuple[str, int], hotlist_pb2.HotlistEntryFieldsList] = {}
            found = []
            for record in candidates:
                key = (record.issuer_ori, record.chunk)
                if key not in chunks:
                    chunk = session.get(PartnerChunkRecord, key)
                    if chunk is None:
                        continue
                    chunks[key] = hotlist_pb2.HotlistEntryFieldsList.FromString(
                        self._key.decrypt(chunk.fields)
                    )
                message = chunks[key].fields[record.slot]
                try:
                    entry = entry_from_message(record.plate, message)
                except ValidationError:
                    continue  # passed the bulk checks on receipt, but not the full ones
                found.append(
                    PartnerMatch(record.issuer_ori, record.entry_id, message.list_name, entry)
                )
            return found

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
                for table in (PartnerEntryRecord, PartnerChunkRecord):
                    session.exec(delete(table).where(col(table.issuer_ori).in_(expired)))
                session.exec(
                    delete(PartnerHotlistRecord).where(
                        col(PartnerHotlistRecord.issuer_ori).in_(expired)
                    )
                )
            session.commit()
            return expired

    def entry_count(self, issuer_ori: str) -> int:
        """How many entries of `issuer_ori`'s list are stored (in force or not)."""
        with Session(self._engine) as session:
            query = select(func.count()).where(col(PartnerEntryRecord.issuer_ori) == issuer_ori)
            return session.exec(query).one()
