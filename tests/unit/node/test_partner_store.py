"""Partner lists on SQLite and PostgreSQL: chunks, tombstones, expiry, other processes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from alpr.common.v1 import hotlist_pb2
from node.ed25519 import DataKey
from node.errors import PreconditionError
from node.hotlists.codec import entry_chunks, fields_message
from node.hotlists.entry import HotlistEntry, ListType
from node.hotlists.partner_store import PartnerHotlists, ReceivedEntries, ReceivedList
from tests.support.clock import START, ManualClock

LASD = "CA0190000"
KEY = DataKey.generate()


def entries(plates: list[str], first: int = 0) -> ReceivedEntries:
    fields: list[hotlist_pb2.HotlistEntryFields] = [
        fields_message(HotlistEntry(plate=p, list_type=ListType.STOLEN_VEHICLE), "stolen")
        for p in plates
    ]
    ids = [f"e-{first + i}" for i in range(len(plates))]
    return ReceivedEntries(ids, plates, entry_chunks(ids, plates, fields))


def received(version: int, since: int = 0) -> ReceivedList:
    return ReceivedList(
        issuer_ori=LASD,
        agreement_id="a-1",
        version=version,
        since_version=since,
        issued_at=START,
        expires_at=START + timedelta(hours=24),
        digest=b"d" * 32,
    )


def lists(engine: Engine, clock: ManualClock) -> PartnerHotlists:
    return PartnerHotlists(engine, data_key=KEY, clock=clock)


class TestPartnerLists:
    def test_succeeds_across_chunks_and_in_another_process(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        plates = [f"{n:07d}" for n in range(2500)] + ["8XY?4*"]
        here = lists(engine, clock)
        here.store(received(1), entries(plates))
        elsewhere = lists(engine, clock)  # no index yet: rebuilt from the chunks
        for store in (here, elsewhere):
            assert [m.entry_id for m in store.find("0002400")] == ["e-2400"]
            assert [m.entry_id for m in store.find("8XY947")] == ["e-2500"]
            assert store.find("0009999") == []
        assert here.entry_count(LASD) == 2501

    def test_hot5_a_delta_ends_and_adds_entries_everywhere(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        here, elsewhere = lists(engine, clock), lists(engine, clock)
        here.store(received(1), entries(["7ABC123", "7ABC124"]))
        assert len(elsewhere.find("7ABC123")) == 1  # builds elsewhere's index at version 1
        clock.advance(timedelta(minutes=1))
        here.store(received(2, since=1), entries(["9ZZZ999"], first=2), ended=["e-0"])
        for store in (here, elsewhere):
            assert store.find("7ABC123") == []
            assert [m.entry_id for m in store.find("9ZZZ999")] == ["e-2"]
            assert len(store.find("7ABC124")) == 1
        assert here.held_version(LASD) == 2
        assert here.entry_count(LASD) == 2

    def test_succeeds_storing_a_delta_in_a_process_that_held_no_index(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        """HOT-1: after a delta, the entries of the snapshot before it still match."""
        lists(engine, clock).store(received(1), entries(["7ABC123", "7ABC124"]))
        fresh = lists(engine, clock)  # a new process: the pull that stores the delta
        fresh.store(received(2, since=1), entries(["9ZZZ999"], first=2), ended=["e-0"])
        assert [m.entry_id for m in fresh.find("7ABC124")] == ["e-1"]
        assert [m.entry_id for m in fresh.find("9ZZZ999")] == ["e-2"]
        assert fresh.find("7ABC123") == []

    def test_fails_a_delta_for_a_version_not_held(self, engine: Engine, clock: ManualClock) -> None:
        store = lists(engine, clock)
        store.store(received(1), entries(["7ABC123"]))
        with pytest.raises(PreconditionError, match="applies to version 5"):
            store.store(received(6, since=5), entries(["7ABC124"]))

    def test_hot6_nothing_matches_at_expiry_and_the_purge_deletes_it(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        store = lists(engine, clock)
        store.store(received(1), entries(["7ABC123"]))
        clock.advance(timedelta(hours=24))
        assert store.find("7ABC123") == []
        assert store.held_version(LASD) == 0
        assert store.purge_expired() == [LASD]
        assert store.entry_count(LASD) == 0

    def test_succeeds_finding_every_entry_of_a_plate_listed_more_than_once(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        store = lists(engine, clock)
        store.store(received(1), entries(["7ABC123", "1XYZ000", "7ABC123", "7ABC123"]))
        assert sorted(m.entry_id for m in store.find("7ABC123")) == ["e-0", "e-2", "e-3"]

    def test_succeeds_finding_a_plate_a_delta_lists_again(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        store = lists(engine, clock)
        store.store(received(1), entries(["7ABC123", "1XYZ000"]))
        store.store(received(2, since=1), entries(["7ABC123"], first=2))
        assert sorted(m.entry_id for m in store.find("7ABC123")) == ["e-0", "e-2"]
        assert [m.entry_id for m in store.find("1XYZ000")] == ["e-1"]

    def test_succeeds_finding_a_plate_listed_in_several_chunks(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        plates = [f"{n:07d}" for n in range(2500)]
        for place in (5, 1500, 2400):
            plates[place] = "7ABC123"
        here = lists(engine, clock)
        here.store(received(1), entries(plates))
        elsewhere = lists(engine, clock)
        for store in (here, elsewhere):
            found = sorted(m.entry_id for m in store.find("7ABC123"))
            assert found == ["e-1500", "e-2400", "e-5"]
            assert [m.entry_id for m in store.find("0001499")] == ["e-1499"]
