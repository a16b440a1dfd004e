"""The agency's own hotlists in the store, on SQLite and PostgreSQL: versions, deltas, HOT-2."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from alpr.common.v1.hotlist_pb2 import HotlistEntryFieldsList
from node.ed25519 import DataKey
from node.errors import AlreadyExistsError, NotFoundError, PreconditionError, ValidationError
from node.hotlists import store as store_module
from node.hotlists.codec import chunk_digest, split_column
from node.hotlists.entry import HotlistEntry, ListType
from node.hotlists.store import Changes, EntryPage, HotlistStore
from node.store import create_engine
from tests.support.clock import ManualClock

STOLEN = HotlistEntry(
    plate="7ABC123",
    state="CA",
    list_type=ListType.STOLEN_VEHICLE,
    reason="armed and dangerous",
    case_number="23-000417",
    contact="LAPD Auto Theft 213-555-0100",
)
DIGEST_SIZE = 32
PARTIAL = HotlistEntry(plate="7AB?12*", list_type=ListType.AMBER_ALERT, reason="witness saw")


class _CountingKey(DataKey):
    """The node's data key, counting the chunks of fields it decrypts (not their digests)."""

    chunks = 0

    def decrypt_many(self, ciphertexts: Iterable[bytes]) -> list[bytes]:
        plain = super().decrypt_many(ciphertexts)
        self.chunks += sum(len(value) != DIGEST_SIZE for value in plain)
        return plain


@pytest.fixture
def store(engine: Engine) -> HotlistStore:
    return HotlistStore(engine, data_key=DataKey.generate(), clock=ManualClock())


class TestLists:
    def test_succeeds_creating_and_counting(self, store: HotlistStore) -> None:
        store.create_list("stolen", "stolen vehicles")
        store.add("stolen", [STOLEN, PARTIAL])
        [info] = store.lists()
        assert (info.name, info.description, info.active_entries) == (
            "stolen",
            "stolen vehicles",
            2,
        )

    def test_fails_on_a_duplicate_name(self, store: HotlistStore) -> None:
        store.create_list("stolen")
        with pytest.raises(AlreadyExistsError):
            store.create_list("stolen")

    @pytest.mark.parametrize(
        "name", ["", " padded ", "x" * 101, "two\nlines", "tab\there", "\x1b[31mred", "bidi\u202e"]
    )
    def test_fails_on_a_bad_name(self, store: HotlistStore, name: str) -> None:
        with pytest.raises(ValidationError) as raised:
            store.create_list(name)
        assert raised.value.field == "name"
        assert store.lists() == []

    def test_fails_adding_to_a_missing_list(self, store: HotlistStore) -> None:
        with pytest.raises(NotFoundError):
            store.add("nope", [STOLEN])


class TestEntries:
    def test_hot2_only_the_plate_is_stored_in_clear(
        self, store: HotlistStore, database_url: str
    ) -> None:
        store.create_list("stolen")
        [stored] = store.add("stolen", [STOLEN])
        engine = create_engine(database_url)
        with engine.connect() as connection:
            plate, fields = connection.execute(
                text(
                    "SELECT e.plate, c.fields FROM hotlist_entry e "
                    "JOIN hotlist_chunk c ON c.id = e.chunk_id WHERE e.id = :id"
                ),
                {"id": stored.entry_id},
            ).one()
        engine.dispose()
        assert plate == "7ABC123"
        for secret in (b"armed", b"23-000417", b"Auto Theft", b"stolen_vehicle"):
            assert secret not in bytes(fields)
        assert store.get(stored.entry_id).entry == STOLEN

    def test_cap5_partial_patterns_are_kept_as_patterns(self, store: HotlistStore) -> None:
        store.create_list("amber")
        [stored] = store.add("amber", [PARTIAL])
        assert store.get(stored.entry_id).entry.is_partial

    def test_hot5_cancel_ends_an_entry_once(self, store: HotlistStore) -> None:
        store.create_list("stolen")
        [stored] = store.add("stolen", [STOLEN])
        assert store.cancel(stored.entry_id).ended_how == "cancelled"
        assert store.entries(limit=1) == EntryPage([], None)
        with pytest.raises(PreconditionError, match="already cancelled"):
            store.remove(stored.entry_id)


def pages(store: HotlistStore, list_name: str | None, limit: int) -> Iterator[EntryPage]:
    """Each page of `entries`, from the first to the last, each read as it is iterated."""
    page = store.entries(list_name, limit=limit)
    yield page
    while page.last is not None:
        page = store.entries(list_name, after=page.last, limit=limit)
        yield page


def paged_ids(store: HotlistStore, list_name: str | None, limit: int) -> list[list[str]]:
    """The ids on each page."""
    return [[s.entry_id for s in page.entries] for page in pages(store, list_name, limit)]


class TestEntryPages:
    def test_succeeds_giving_every_entry_in_force_once_oldest_first(
        self, store: HotlistStore
    ) -> None:
        store.create_list("stolen")
        store.create_list("amber")
        first = store.add("stolen", [STOLEN] * 1200)
        amber = store.add("amber", [PARTIAL] * 300)
        last = store.add("stolen", [STOLEN] * 700)
        for gone in (first[399], first[400], first[1199], amber[0], last[699]):
            store.remove(gone.entry_id)
        stolen = [s.entry_id for s in first[:399] + first[401:1199] + last[:699]]
        in_force = stolen[:1197] + [s.entry_id for s in amber[1:]] + stolen[1197:]

        pages = paged_ids(store, None, 400)
        assert [len(page) for page in pages] == [400] * 5 + [195]
        assert [i for page in pages for i in page] == in_force
        assert paged_ids(store, None, 400) == pages  # the same pages again
        pages = paged_ids(store, "stolen", 400)
        assert [len(page) for page in pages] == [400] * 4 + [296]
        assert [i for page in pages for i in page] == stolen
        assert paged_ids(store, "amber", 299) == [[s.entry_id for s in amber[1:]]]

    def test_succeeds_with_an_entry_added_or_ended_between_pages(self, store: HotlistStore) -> None:
        """A page starts after the last one's place: no entry is skipped or given twice."""
        store.create_list("stolen")
        added = store.add("stolen", [STOLEN] * 4)
        page = store.entries(limit=2)
        store.remove(added[1].entry_id)  # on the page given
        store.remove(added[2].entry_id)  # on the next
        [late] = store.add("stolen", [PARTIAL])
        rest = store.entries(after=page.last, limit=2)
        assert [s.entry_id for s in page.entries + rest.entries] == [
            added[0].entry_id,
            added[1].entry_id,
            added[3].entry_id,
            late.entry_id,
        ]
        assert rest.last is None
        assert (rest.entries[-1].list_name, rest.entries[-1].entry) == ("stolen", PARTIAL)

    @pytest.mark.parametrize(("limit", "decrypted"), [(500, [1] * 6), (750, [1, 2, 2, 1])])
    def test_hot2_decrypts_only_the_chunks_holding_each_page(
        self, engine: Engine, limit: int, decrypted: list[int]
    ) -> None:
        key = _CountingKey(DataKey.generate().key)
        store = HotlistStore(engine, data_key=key, clock=ManualClock())
        store.create_list("stolen")
        added = store.add("stolen", [STOLEN] * 3000)
        key.chunks, counts, ids = 0, [], []
        for page in pages(store, None, limit):
            counts.append(key.chunks)
            ids += [stored.entry_id for stored in page.entries]
            key.chunks = 0
        assert (counts, ids) == (decrypted, [stored.entry_id for stored in added])

    def test_fails_on_a_limit_below_one(self, store: HotlistStore) -> None:
        with pytest.raises(ValidationError, match="limit"):
            store.entries(limit=0)

    def test_fails_on_a_missing_list(self, store: HotlistStore) -> None:
        with pytest.raises(NotFoundError):
            store.entries("nope", limit=1)


class TestVersions:
    def test_succeeds_full_snapshot_then_exact_deltas(self, store: HotlistStore) -> None:
        assert store.version() == 0
        store.create_list("stolen")
        first = store.add("stolen", [STOLEN, PARTIAL])
        assert store.version() == 1
        full = store.changes_since(0)
        assert (full.version, full.plates, full.ended) == (1, ["7ABC123", "7AB?12*"], [])
        assert full.entries() == [STOLEN, PARTIAL]

        store.cancel(first[0].entry_id)
        [third] = store.add("stolen", [STOLEN])
        delta = store.changes_since(1)
        assert delta.version == 3
        assert delta.entry_ids == [third.entry_id]
        assert delta.ended == [first[0].entry_id]

        assert set(store.changes_since(0).entry_ids) == {first[1].entry_id, third.entry_id}
        assert store.changes_since(3).entry_ids == []

    def test_succeeds_sending_fields_in_chunks_of_at_most_a_thousand(
        self, store: HotlistStore
    ) -> None:
        store.create_list("stolen")
        first, partial = store.add("stolen", [STOLEN] * 600), store.add("stolen", [PARTIAL] * 300)
        last = store.add("stolen", [STOLEN] * 250)
        store.remove(partial[5].entry_id)
        changes = store.changes_since(0)
        # 600 as stored, then 299 cut without the removed entry, joined to the first;
        # 250 more would pass a thousand, so they start the next chunk.
        assert chunk_sizes(changes) == [899, 250]
        kept = first + partial[:5] + partial[6:] + last
        assert changes.entry_ids == [stored.entry_id for stored in kept]
        assert changes.entries() == [STOLEN] * 600 + [PARTIAL] * 299 + [STOLEN] * 250

    def test_succeeds_sending_chunks_whole_when_nothing_ended(self, store: HotlistStore) -> None:
        store.create_list("stolen")
        for size in (300, 300, 600):
            store.add("stolen", [STOLEN] * size)
        full = store.changes_since(0)
        assert (chunk_sizes(full), len(full.entry_ids), full.ended) == ([600, 600], 1200, [])
        delta = store.changes_since(1)
        assert (chunk_sizes(delta), delta.entries()) == ([900], [STOLEN] * 900)  # 300, 600 joined

    def test_succeeds_naming_every_chunk_before_sending_it_a_few_at_a_time(
        self, engine: Engine
    ) -> None:
        """A manifest names each chunk first; no chunk is held from naming to sending it."""
        key = _CountingKey(DataKey.generate().key)
        store = HotlistStore(engine, data_key=key, clock=ManualClock())
        store.create_list("stolen")
        store.add("stolen", [STOLEN] * 2000 + [PARTIAL] * 10)
        [gone] = store.add("stolen", [PARTIAL])
        store.remove(gone.entry_id)  # a chunk with nothing left in force: not sent
        first = store.add("stolen", [STOLEN] * 1000)[0]
        store.remove(first.entry_id)  # a full chunk with one entry ended: sent as its stored cut
        key.chunks = 0
        outgoing = store.outgoing_since(0)
        assert key.chunks == 1  # the small chunk, to name it
        chunks = list(outgoing.chunks)
        assert key.chunks == 5  # all four as they are sent: the others only then
        assert [chunk.size for chunk in chunks] == [1000, 1000, 10, 999]
        assert outgoing.digests == [
            chunk_digest(chunk.entry_ids, chunk.plates, chunk.fields) for chunk in chunks
        ]
        assert (outgoing.entry_count, outgoing.version) == (3009, 5)
        assert store.changes_since(0).chunks == chunks

    def test_succeeds_naming_a_cut_chunk_from_memory_until_more_of_it_ends(
        self, engine: Engine
    ) -> None:
        """A chunk not full, with ended entries, is cut as sent; read to name it once."""
        key = _CountingKey(DataKey.generate().key)
        store = HotlistStore(engine, data_key=key, clock=ManualClock())
        store.create_list("stolen")
        added = store.add("stolen", [STOLEN] * 999)
        store.add("stolen", [PARTIAL] * 10)
        store.remove(added[0].entry_id)
        key.chunks = 0
        first = store.outgoing_since(0)
        assert key.chunks == 2  # the cut chunk and the small one, read to name them
        list(first.chunks)
        key.chunks = 0
        assert store.outgoing_since(0).digests == first.digests
        assert key.chunks == 0  # both named from memory
        store.remove(added[1].entry_id)
        key.chunks = 0
        outgoing = store.outgoing_since(0)
        assert key.chunks == 1  # only the chunk that lost another entry, cut anew
        chunks = list(outgoing.chunks)
        assert [chunk.size for chunk in chunks] == [997, 10]
        assert outgoing.digests == [
            chunk_digest(chunk.entry_ids, chunk.plates, chunk.fields) for chunk in chunks
        ]
        assert outgoing.digests[1] == first.digests[1]

    def test_succeeds_sending_a_full_chunk_with_entries_ended_as_its_stored_cut(
        self, engine: Engine
    ) -> None:
        """Ending an entry stores its chunk as sent: no snapshot reads nor cuts it to name it."""
        key = _CountingKey(DataKey.generate().key)
        store = HotlistStore(engine, data_key=key, clock=ManualClock())
        store.create_list("stolen")
        added = store.add("stolen", [STOLEN] * 1000 + [PARTIAL] * 10)
        for stored in (added[3], added[500]):
            store.remove(stored.entry_id)
        key.chunks = 0
        outgoing = store.outgoing_since(0)
        assert key.chunks == 1  # the small chunk only, to name it
        chunks = list(outgoing.chunks)
        assert key.chunks == 3  # each chunk read once as it is sent
        in_force = [s.entry_id for i, s in enumerate(added) if i not in (3, 500)]
        assert [chunk.size for chunk in chunks] == [998, 10]
        assert [i for c in chunks for i in split_column(c.entry_ids)] == in_force
        assert outgoing.digests == [chunk_digest(c.entry_ids, c.plates, c.fields) for c in chunks]
        assert store.changes_since(0).entries() == [STOLEN] * 998 + [PARTIAL] * 10

    def test_succeeds_joining_a_chunk_more_than_half_ended_with_the_next(
        self, store: HotlistStore, engine: Engine
    ) -> None:
        store.create_list("stolen")
        added = store.add("stolen", [STOLEN] * 1000 + [PARTIAL] * 10)
        for stored in added[:501]:
            store.remove(stored.entry_id)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM hotlist_chunk_cut")).scalar() == 0
        outgoing = store.outgoing_since(0)
        chunks = list(outgoing.chunks)
        assert [chunk.size for chunk in chunks] == [509]  # 499 in force and the 10, joined
        assert outgoing.digests == [chunk_digest(c.entry_ids, c.plates, c.fields) for c in chunks]

    def test_succeeds_cutting_a_chunk_whose_stored_cut_misses_an_ended_entry(
        self, engine: Engine
    ) -> None:
        """An entry ended before cuts were stored is in no cut: its chunk is cut as it is sent."""
        key = _CountingKey(DataKey.generate().key)
        store = HotlistStore(engine, data_key=key, clock=ManualClock())
        store.create_list("stolen")
        added = store.add("stolen", [STOLEN] * 1000)
        store.remove(added[0].entry_id)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM hotlist_chunk_cut"))
        store.remove(added[1].entry_id)  # its cut leaves out slot 1 only
        key.chunks = 0
        outgoing = store.outgoing_since(0)
        assert key.chunks == 1  # read to name it
        [chunk] = list(outgoing.chunks)
        assert split_column(chunk.entry_ids) == [s.entry_id for s in added[2:]]
        assert outgoing.digests == [chunk_digest(chunk.entry_ids, chunk.plates, chunk.fields)]

    def test_succeeds_sending_what_it_named_when_an_entry_ends_meanwhile(
        self, store: HotlistStore
    ) -> None:
        store.create_list("stolen")
        added = store.add("stolen", [STOLEN] * 1000)
        store.remove(added[0].entry_id)
        outgoing = store.outgoing_since(0)  # named as the cut without slot 0
        store.remove(added[1].entry_id)  # the stored cut changes before it is sent
        [chunk] = list(outgoing.chunks)
        assert split_column(chunk.entry_ids) == [s.entry_id for s in added[1:]]
        assert outgoing.digests == [chunk_digest(chunk.entry_ids, chunk.plates, chunk.fields)]

    def test_succeeds_naming_small_chunks_joined_anew_when_one_before_them_shrinks(
        self, store: HotlistStore
    ) -> None:
        store.create_list("stolen")
        shrinking = store.add("stolen", [STOLEN] * 600)
        for _ in range(2):
            store.add("stolen", [PARTIAL] * 500)
        first = store.outgoing_since(0)
        assert [chunk.size for chunk in first.chunks] == [600, 1000]
        for stored in shrinking[:100]:
            store.remove(stored.entry_id)
        outgoing = store.outgoing_since(0)
        chunks = list(outgoing.chunks)
        assert [chunk.size for chunk in chunks] == [1000, 500]  # the 500s now join apart
        assert outgoing.digests == [
            chunk_digest(chunk.entry_ids, chunk.plates, chunk.fields) for chunk in chunks
        ]

    def test_hot2_a_chunks_digest_is_kept_sealed(self, store: HotlistStore, engine: Engine) -> None:
        """A hash of fields in clear would let whoever reads the store test guesses at them."""
        store.create_list("stolen")
        store.add("stolen", [STOLEN] * 1001)
        full, _ = store.changes_since(0).chunks
        with engine.connect() as connection:
            kept = connection.execute(text("SELECT digest FROM hotlist_chunk ORDER BY id")).all()
        assert kept[1] == (None,)  # only a full chunk is ever sent as stored
        assert kept[0][0] not in (None, chunk_digest(full.entry_ids, full.plates, full.fields))
        assert store.outgoing_since(0).digests[0] == chunk_digest(
            full.entry_ids, full.plates, full.fields
        )

    def test_hot2_a_stored_cut_keeps_fields_and_digest_sealed(
        self, store: HotlistStore, engine: Engine
    ) -> None:
        store.create_list("stolen")
        added = store.add("stolen", [STOLEN] * 1000)
        store.remove(added[0].entry_id)
        [chunk] = store.changes_since(0).chunks
        with engine.connect() as connection:
            fields, digest = connection.execute(
                text("SELECT fields, digest FROM hotlist_chunk_cut")
            ).one()
        assert STOLEN.reason.encode() in chunk.fields
        assert STOLEN.reason.encode() not in fields
        assert digest != chunk_digest(chunk.entry_ids, chunk.plates, chunk.fields)

    def test_succeeds_naming_chunks_stored_before_they_had_digests(
        self, store: HotlistStore, engine: Engine
    ) -> None:
        store.create_list("stolen")
        store.add("stolen", [STOLEN] * 1000)
        with engine.begin() as connection:
            connection.execute(text("UPDATE hotlist_chunk SET digest = NULL"))
        outgoing = store.outgoing_since(0)
        [chunk] = list(outgoing.chunks)
        assert outgoing.digests == [chunk_digest(chunk.entry_ids, chunk.plates, chunk.fields)]

    def test_succeeds_counting_entries_added_since_a_version(self, store: HotlistStore) -> None:
        store.create_list("stolen")
        assert store.added_since(0) == 0
        [first] = store.add("stolen", [STOLEN])
        store.add("stolen", [PARTIAL] * 1500)
        store.remove(first.entry_id)
        assert (store.added_since(0), store.added_since(1), store.added_since(3)) == (1501, 1500, 0)

    @pytest.mark.parametrize("version", [-1, 5])
    def test_fails_for_a_version_we_never_had(self, store: HotlistStore, version: int) -> None:
        store.create_list("stolen")
        store.add("stolen", [STOLEN])
        with pytest.raises(ValidationError) as raised:
            store.changes_since(version)
        assert raised.value.field == "since_version"


def plates(count: int, prefix: str = "7AB") -> list[HotlistEntry]:
    """`count` stolen-vehicle entries on distinct whole plates."""
    return [replace(STOLEN, plate=f"{prefix}{n:04d}") for n in range(count)]


class TestReplace:
    def test_succeeds_keeping_the_same_removing_the_gone_and_adding_the_new(
        self, store: HotlistStore
    ) -> None:
        store.create_list("stolen")
        kept, gone, changed = plates(3)
        first = store.replace("stolen", [kept, gone, changed])
        before = store.version()
        new, changed_now = plates(1, "8XY")[0], replace(changed, reason="recovered, then again")
        replaced = store.replace("stolen", [kept, changed_now, new])
        assert (replaced.version, replaced.kept) == (before + 1, 1)
        assert [s.entry for s in replaced.added] == [changed_now, new]
        assert [(r.entry_id, r.plate) for r in replaced.removed] == [
            (s.entry_id, s.entry.plate) for s in first.added[1:]
        ]
        in_force = store.entries("stolen", limit=10_000).entries
        assert (in_force[0].entry_id, in_force[0].entry) == (first.added[0].entry_id, kept)
        assert [s.entry for s in in_force] == [kept, changed_now, new]
        assert store.get(first.added[1].entry_id).ended_how == "removed"
        # A partner's next delta ends the two and sends the two added, not the one kept.
        delta = store.changes_since(before)
        assert sorted(delta.ended) == sorted(s.entry_id for s in first.added[1:])
        assert delta.entry_ids == [s.entry_id for s in replaced.added]

    def test_succeeds_changing_nothing_for_the_same_entries_again(
        self, store: HotlistStore
    ) -> None:
        """No change raises no version: partners pulling find nothing to take."""
        store.create_list("stolen")
        store.replace("stolen", plates(3))
        version = store.version()
        again = store.replace("stolen", plates(3))
        assert (again.version, again.added, again.kept, again.removed) == (version, [], 3, [])
        assert store.version() == version

    def test_succeeds_counting_a_duplicate_once_given_or_stored(self, store: HotlistStore) -> None:
        store.create_list("stolen")
        store.add("stolen", [STOLEN, STOLEN])
        replaced = store.replace("stolen", [STOLEN, STOLEN, PARTIAL, PARTIAL])
        assert (replaced.kept, len(replaced.removed), [s.entry for s in replaced.added]) == (
            1,
            1,
            [PARTIAL],
        )
        assert [s.entry for s in store.entries("stolen", limit=10_000).entries] == [STOLEN, PARTIAL]

    def test_succeeds_leaving_other_lists_and_ended_entries_alone(
        self, store: HotlistStore
    ) -> None:
        store.create_list("stolen")
        store.create_list("amber")
        [other] = store.add("amber", [STOLEN])
        [cancelled] = store.add("stolen", [STOLEN])
        store.cancel(cancelled.entry_id)
        replaced = store.replace("stolen", [PARTIAL])
        assert (replaced.kept, replaced.removed) == (0, [])
        assert [s.entry_id for s in store.entries("amber", limit=10_000).entries] == [
            other.entry_id
        ]
        assert store.get(cancelled.entry_id).ended_how == "cancelled"

    def test_succeeds_across_chunks_read_a_few_at_a_time(
        self, store: HotlistStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Removals spread over full chunks leave snapshots that send what they name."""
        monkeypatch.setattr(store_module, "CHUNKS_A_READ", 1)
        store.create_list("stolen")
        everything = plates(2500)
        store.add("stolen", everything)
        wanted = everything[::2] + plates(10, "8XY")
        replaced = store.replace("stolen", wanted)
        assert (replaced.kept, len(replaced.removed), len(replaced.added)) == (1250, 1250, 10)
        assert sorted(
            s.entry.plate for s in store.entries("stolen", limit=10_000).entries
        ) == sorted(e.plate for e in wanted)
        outgoing = store.outgoing_since(0)
        chunks = list(outgoing.chunks)
        assert outgoing.digests == [chunk_digest(c.entry_ids, c.plates, c.fields) for c in chunks]
        assert sorted(store.changes_since(0).plates) == sorted(e.plate for e in wanted)

    def test_fails_for_a_missing_list(self, store: HotlistStore) -> None:
        with pytest.raises(NotFoundError, match="nope"):
            store.replace("nope", [STOLEN])
        assert store.version() == 0


def chunk_sizes(changes: Changes) -> list[int]:
    """How many entries each chunk of `changes` holds, checked against the count it gives."""
    sizes = [len(HotlistEntryFieldsList.FromString(c.fields).fields) for c in changes.chunks]
    assert [chunk.size for chunk in changes.chunks] == sizes
    assert changes.entry_count == sum(sizes) == len(changes.entry_ids)
    return sizes
