"""Hotlists received from partners: kept only while fresh (HOT-6), fields encrypted at rest (HOT-2).

A partner's list is usable from the moment its verified snapshot is stored until the
snapshot's `expires_at` (issued + 24 h). `find` never returns an entry of a list past
that instant, whether or not the purge job has run; `purge_expired` then deletes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from node.clock import Clock
from node.ed25519 import DataKey
from node.errors import PreconditionError
from node.hotlists.codec import decode_fields, encode_fields
from node.hotlists.entry import HotlistEntry
from node.store.hotlist_models import PartnerEntryRecord, PartnerHotlistRecord
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
class ReceivedEntry:
    """An entry of a partner's list."""

    entry_id: str
    list_name: str
    entry: HotlistEntry


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
        added: Sequence[ReceivedEntry],
        ended: Sequence[str] = (),
    ) -> None:
        """Store a verified snapshot (replacing the list) or delta (applied to the version held).

        Raises:
            PreconditionError: A delta is for another version than the one held.
        """
        now = self._clock()
        with Session(self._engine) as session:
            record = session.get(PartnerHotlistRecord, received.issuer_ori)
            if received.since_version:
                held = record.version if record and utc(record.expires_at) > now else 0
                if held != received.since_version:
                    raise PreconditionError(
                        f"the delta from {received.issuer_ori} applies to version "
                        f"{received.since_version}, we hold {held}"
                    )
            else:
                session.exec(
                    delete(PartnerEntryRecord).where(
                        col(PartnerEntryRecord.issuer_ori) == received.issuer_ori
                    )
                )
            if ended:
                session.exec(
                    delete(PartnerEntryRecord).where(
                        col(PartnerEntryRecord.issuer_ori) == received.issuer_ori,
                        col(PartnerEntryRecord.entry_id).in_(ended),
                    )
                )
            values = {
                "issuer_ori": received.issuer_ori,
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
            session.add_all(
                PartnerEntryRecord(
                    issuer_ori=received.issuer_ori,
                    entry_id=item.entry_id,
                    plate=item.entry.plate,
                    is_partial=item.entry.is_partial,
                    fields=self._key.encrypt(encode_fields(item.entry, item.list_name)),
                )
                for item in added
            )
            session.commit()

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
            found = []
            for record in session.exec(query).all():
                entry, list_name = decode_fields(record.plate, self._key.decrypt(record.fields))
                if entry.pattern.matches(plate):
                    found.append(PartnerMatch(record.issuer_ori, record.entry_id, list_name, entry))
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
                session.exec(
                    delete(PartnerEntryRecord).where(
                        col(PartnerEntryRecord.issuer_ori).in_(expired)
                    )
                )
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
