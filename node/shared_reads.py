"""Reads sent to partners, each under a reference scoped to the answer that carried it (SHR-7).

An answer to a partner's plate query lists each read under a fresh random reference, not
our read id. Our ids are stable: a partner holding them could link the reads of one car
across unrelated queries and cases, and would learn how we name our records. A reference
means something only with the exchange it came in, so a later request for a read's images
can name only reads that answer gave that partner, and one lookup here shows whether it
did, under which agreement, and for which purpose and case.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from node.clock import Clock
from node.store.capture_models import ReadRecord
from node.store.engine import table_of, write_transaction
from node.store.sharing import SharedReadRecord

REFERENCE_BYTES = 8
_INSERT_SHARED = insert(table_of(SharedReadRecord))


@dataclass(frozen=True)
class SharedRead:
    """A read as it was sent in an answer, and the read itself if we still hold it."""

    shared: SharedReadRecord
    read: ReadRecord | None


class SharedReads:
    """The file of reads sent to partners."""

    def __init__(self, engine: Engine, *, clock: Clock) -> None:
        """Keep the file in `engine`'s database."""
        self._engine = engine
        self._clock = clock

    def record(
        self,
        *,
        exchange_id: str,
        partner_ori: str,
        agreement_id: str,
        purpose: str,
        case_number: str,
        read_ids: Sequence[str],
        session: Session | None = None,
    ) -> list[str]:
        """Put on file the reads an answer sends; their references, in the same order.

        In `session`, the caller's transaction, if given (with the answer's audit event
        and receipt); in its own otherwise.
        """
        if not read_ids:
            return []
        now = self._clock()
        references = [secrets.token_hex(REFERENCE_BYTES) for _ in read_ids]
        with write_transaction(self._engine, session) as writing:
            writing.connection().execute(
                _INSERT_SHARED,
                [
                    {
                        "exchange_id": exchange_id,
                        "reference": reference,
                        "read_id": read_id,
                        "partner_ori": partner_ori,
                        "agreement_id": agreement_id,
                        "purpose": purpose,
                        "case_number": case_number,
                        "shared_at": now,
                    }
                    for reference, read_id in zip(references, read_ids, strict=True)
                ],
            )
        return references

    def find(self, exchange_id: str, references: Sequence[str]) -> dict[str, SharedRead]:
        """The reads the answer of `exchange_id` sent under `references`, by reference.

        A reference that answer did not give is missing from the result; a read deleted
        since (RET-3) comes with no read.
        """
        with Session(self._engine) as session:
            shared = session.exec(
                select(SharedReadRecord).where(
                    col(SharedReadRecord.exchange_id) == exchange_id,
                    col(SharedReadRecord.reference).in_(list(references)),
                )
            ).all()
            reads = {
                read.id: read
                for read in session.exec(
                    select(ReadRecord).where(col(ReadRecord.id).in_([s.read_id for s in shared]))
                )
            }
        return {s.reference: SharedRead(s, reads.get(s.read_id)) for s in shared}
