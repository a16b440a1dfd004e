"""Reads sent to partners, on file under references scoped to each answer (SHR-7), both engines."""

from __future__ import annotations

import uuid

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session

from node.shared_reads import SharedReads
from node.store.capture_models import ReadRecord
from node.store.models import utc
from tests.support.clock import START, ManualClock
from tests.support.pki import LAPD

PURPOSE = "Criminal investigations or proceedings"


def stored_read(engine: Engine, plate: str) -> str:
    """A read of ours; its id."""
    read_id = str(uuid.uuid4())
    with Session(engine) as session:
        session.add(
            ReadRecord(id=read_id, plate=plate, confidence=0.9, captured_at=START,
                       camera_id="cam-1", committed_at=START)
        )  # fmt: skip
        session.commit()
    return read_id


def share(shared: SharedReads, exchange_id: str, read_ids: list[str]) -> list[str]:
    return shared.record(
        exchange_id=exchange_id, partner_ori=LAPD, agreement_id=str(uuid.uuid4()),
        purpose=PURPOSE, case_number="26-00777", read_ids=read_ids,
    )  # fmt: skip


class TestSharedReads:
    def test_shr7_each_answer_gives_fresh_references_never_our_read_ids(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        shared = SharedReads(engine, clock=clock)
        read_id = stored_read(engine, "7ABC123")
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        [in_first] = share(shared, first, [read_id])
        [in_second] = share(shared, second, [read_id])
        assert len({in_first, in_second, read_id}) == 3
        found = shared.find(first, [in_first, in_second])
        assert list(found) == [in_first]  # a reference means something only in its answer
        record, read = found[in_first].shared, found[in_first].read
        assert (record.partner_ori, record.purpose, utc(record.shared_at)) == (LAPD, PURPOSE, START)
        assert read is not None
        assert read.id == read_id

    def test_a_read_deleted_since_comes_without_its_read(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        shared = SharedReads(engine, clock=clock)
        read_id = stored_read(engine, "7ABC123")
        exchange_id = str(uuid.uuid4())
        [reference] = share(shared, exchange_id, [read_id])
        with Session(engine) as session:
            session.exec(delete(ReadRecord))
            session.commit()
        assert shared.find(exchange_id, [reference])[reference].read is None

    def test_an_answer_without_reads_puts_nothing_on_file(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        assert share(SharedReads(engine, clock=clock), str(uuid.uuid4()), []) == []
