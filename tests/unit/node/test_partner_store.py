"""Partner lists on SQLite and PostgreSQL: chunks, tombstones, expiry, other processes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from alpr.common.v1 import hotlist_pb2
from node.ed25519 import DataKey
from node.errors import PreconditionError
from node.hotlists import partner_store
from node.hotlists.codec import CHUNK_SIZE, entry_chunks, fields_message
from node.hotlists.entry import HotlistEntry, ListType
from node.hotlists.partner_store import (
    STAGED_A_TRANSACTION,
    STAGING_LIMIT,
    IncomingList,
    PartnerHotlists,
    ReceivedEntries,
    ReceivedList,
)
from tests.support.clock import START, ManualClock
from tests.support.in_force import agreement_in_force

LASD = "CA0190000"
KEY = DataKey.generate()


def entries(plates: list[str], first: int = 0) -> ReceivedEntries:
    fields: list[hotlist_pb2.HotlistEntryFields] = [
        fields_message(HotlistEntry(plate=p, list_type=ListType.STOLEN_VEHICLE), "stolen")
        for p in plates
    ]
    ids = [f"e-{first + i}" for i in range(len(plates))]
    return ReceivedEntries.of(entry_chunks(ids, plates, fields))


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


@pytest.fixture(autouse=True)
def in_force(engine: Engine) -> None:
    """The agreement `received` lists come under, in force."""
    agreement_in_force(engine, LASD)


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

    @pytest.mark.parametrize("ended", ["revoked", "expired"])
    def test_shr2_nothing_matches_once_its_agreement_ended_and_the_purge_deletes_it(
        self, engine: Engine, clock: ManualClock, ended: str
    ) -> None:
        store = lists(engine, clock)
        store.store(received(1), entries(["7ABC123"]))
        with engine.begin() as connection:
            connection.execute(text("UPDATE agreement SET state = :ended"), {"ended": ended})
        assert (store.find("7ABC123"), store.in_force(), store.held_version(LASD)) == ([], {}, 0)
        assert store.purge_expired() == [LASD]
        assert store.entry_count(LASD) == 0

    def test_shr3_nothing_matches_past_the_agreements_sunset(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        agreement_in_force(engine, LASD, "a-2", sunsets_at=START + timedelta(hours=1))
        store = lists(engine, clock)
        store.store(replace(received(1), agreement_id="a-2"), entries(["7ABC123"]))
        clock.advance(timedelta(hours=1) - timedelta(seconds=1))
        assert len(store.find("7ABC123")) == 1
        clock.advance(timedelta(seconds=1))
        assert store.find("7ABC123") == []
        assert store.purge_expired() == [LASD]

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


class TestChanges:
    """The deltas taken, for the match index to patch its copy of a list with (HOT-1)."""

    def test_succeeds_chaining_the_deltas_taken_since_a_list(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        store = lists(engine, clock)
        store.store(received(1), entries(["7ABC123", "7ABC124"]))
        [full] = store.in_force().values()
        clock.advance(timedelta(minutes=1))
        store.store(received(2, since=1), entries(["9ZZZ999"], first=2), ended=["e-0"])
        clock.advance(timedelta(minutes=1))
        store.store(received(3, since=2), entries(["8XY?4*"], first=3))
        [now] = store.in_force().values()
        changes = store.changes_since(LASD, full.stamp)
        assert changes is not None
        assert [(c.added(), c.ended) for c in changes] == [
            ((["e-2"], ["9ZZZ999"]), ["e-0"]),
            ((["e-3"], ["8XY?4*"]), []),
        ]
        assert (changes[0].before, changes[-1].after) == (full.stamp, now.stamp)
        assert store.changes_since(LASD, changes[1].before) == changes[1:]
        assert store.changes_since(LASD, now.stamp) is None  # nothing since: no chain
        store.store(received(4), entries(["7ABC123"]))  # a full snapshot: read it whole
        assert store.changes_since(LASD, now.stamp) is None

    def test_succeeds_forgetting_deltas_past_what_is_kept(
        self, engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(partner_store, "KEPT_CHANGE_ENTRIES", 2)
        store = lists(engine, clock)
        store.store(received(1), entries(["7ABC123"]))
        [full] = store.in_force().values()
        store.store(received(2, since=1), entries(["7ABC124"], first=1))
        store.store(received(3, since=2), entries(["7ABC125", "7ABC126"], first=2))
        assert store.changes_since(LASD, full.stamp) is None  # the first was forgotten
        assert lists(engine, clock).changes_since(LASD, full.stamp) is None  # another process


def chunk_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM partner_chunk")).scalar_one())


def stage(incoming: IncomingList, columns: ReceivedEntries) -> None:
    """Add `columns` to `incoming` and write what it hands back, as a pull does."""
    batch = incoming.add(columns)
    if batch is not None:
        incoming.write(batch)


# More chunks than one transaction writes: a snapshot in several batches.
MANY = [f"{n:07d}" for n in range(CHUNK_SIZE * (STAGED_A_TRANSACTION + 1) + 1)]
MANY_CHUNKS = STAGED_A_TRANSACTION + 2


class TestSnapshotComingIn:
    """A full snapshot is written as it streams in and used only once all of it is taken."""

    def test_hot7_succeeds_using_a_snapshot_only_once_taken(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        here = lists(engine, clock)
        here.store(received(1), entries(["7ABC123"]))
        incoming = here.receiving(received(2))
        stage(incoming, entries(MANY, first=1))
        assert chunk_rows(engine) == 1 + MANY_CHUNKS  # written, not yet taken
        elsewhere = lists(engine, clock)  # builds its index from the chunks stored
        for store in (here, elsewhere):
            assert [m.entry_id for m in store.find("7ABC123")] == ["e-0"]
            assert store.find(MANY[5]) == []
            assert store.entry_count(LASD) == 1
        incoming.commit()
        assert chunk_rows(engine) == MANY_CHUNKS
        for store in (here, lists(engine, clock)):
            assert store.find("7ABC123") == []
            assert [m.entry_id for m in store.find(MANY[-1])] == [f"e-{len(MANY)}"]
            assert store.entry_count(LASD) == len(MANY)
            assert store.held_version(LASD) == 2

    def test_succeeds_discarding_a_snapshot_not_taken(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        store = lists(engine, clock)
        store.store(received(1), entries(["7ABC123"]))
        incoming = store.receiving(received(2))
        stage(incoming, entries(MANY, first=1))
        incoming.discard()
        assert chunk_rows(engine) == 1
        assert [m.entry_id for m in store.find("7ABC123")] == ["e-0"]
        assert store.held_version(LASD) == 1

    def test_succeeds_taking_two_snapshots_of_a_list_coming_in_at_once(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        here, there = lists(engine, clock), lists(engine, clock)  # two processes
        here.store(received(1), entries(["7ABC123"]))
        first, second = here.receiving(received(2)), there.receiving(received(3))
        stage(first, entries(MANY, first=1))
        stage(second, entries(["1XYZ000"], first=1))
        first.commit()
        assert [m.entry_id for m in there.find(MANY[0])] == ["e-1"]
        second.commit()
        assert chunk_rows(engine) == 1
        for store in (here, there):
            assert store.find(MANY[0]) == []
            assert [m.entry_id for m in store.find("1XYZ000")] == ["e-1"]
            assert store.held_version(LASD) == 3

    def test_succeeds_storing_a_snapshot_of_several_batches_at_once(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        store = lists(engine, clock)
        store.store(received(1), entries(MANY))
        assert chunk_rows(engine) == MANY_CHUNKS
        assert store.entry_count(LASD) == len(MANY)
        assert [m.entry_id for m in lists(engine, clock).find(MANY[-1])] == [f"e-{len(MANY) - 1}"]

    def test_succeeds_discarding_nothing_of_a_snapshot_taken(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        """A discard racing the commit (a pull cancelled as it ends) leaves the list whole."""
        store = lists(engine, clock)
        incoming = store.receiving(received(1))
        stage(incoming, entries(MANY))
        incoming.commit()
        incoming.discard()
        assert chunk_rows(engine) == MANY_CHUNKS
        assert [m.entry_id for m in lists(engine, clock).find(MANY[0])] == ["e-0"]

    def test_hot6_the_purge_deletes_what_a_dead_pull_staged_once_it_is_stale(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        store = lists(engine, clock)
        stage(store.receiving(received(1)), entries(MANY))  # a first pull, then the process died
        clock.advance(STAGING_LIMIT)
        assert store.purge_expired() == []
        assert chunk_rows(engine) == MANY_CHUNKS  # perhaps still coming in
        clock.advance(timedelta(seconds=1))
        assert store.purge_expired() == []
        assert chunk_rows(engine) == 0

    def test_fails_taking_a_snapshot_whose_chunks_the_purge_took(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        store = lists(engine, clock)
        incoming = store.receiving(received(1))
        stage(incoming, entries(MANY))
        clock.advance(STAGING_LIMIT + timedelta(seconds=1))
        store.purge_expired()
        with pytest.raises(PreconditionError, match="removed while it was received"):
            incoming.commit()
        assert store.find(MANY[0]) == []
        assert store.held_version(LASD) == 0

    def test_hot6_a_snapshot_coming_in_for_an_expired_list_outlives_its_purge(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        store = lists(engine, clock)
        store.store(received(1), entries(["7ABC123"]))
        clock.advance(timedelta(hours=24))
        incoming = store.receiving(replace(received(2), expires_at=clock() + timedelta(hours=24)))
        stage(incoming, entries(MANY, first=1))
        assert store.purge_expired() == [LASD]
        assert chunk_rows(engine) == MANY_CHUNKS  # the expired list's chunk went
        incoming.commit()
        assert [m.entry_id for m in store.find(MANY[0])] == ["e-1"]
        assert store.entry_count(LASD) == len(MANY)
