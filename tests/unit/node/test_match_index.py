"""The match index: exact, confusable, edit and partial matches, patching, expiry (HOT-6)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from node.errors import NotFoundError, ValidationError
from node.hotlists.entry import PlatePattern
from node.matching import (
    CONFIDENCE,
    CONFUSABLE_CLASSES,
    Difference,
    EntryColumns,
    IndexedEntry,
    IndexedList,
    Match,
    MatchIndex,
    MatchKind,
    canonical,
)
from node.matching import index as match_index
from node.matching.canonical import spellings
from node.matching.index import MIN_EDIT_PLATE
from tests.support.clock import START

DAY = timedelta(hours=24)
STOLEN = IndexedList(list_id="own:stolen", name="stolen vehicles")
AMBER = IndexedList(list_id="own:amber", name="amber alerts", allow_edit=True)
PARTNER = IndexedList(list_id="CA0190000", name="partner", expires_at=START + DAY)


def index_of(*lists: tuple[IndexedList, list[tuple[str, str]]]) -> MatchIndex:
    index = MatchIndex()
    for info, entries in lists:
        index.put_list(info, [IndexedEntry(entry_id, plate) for entry_id, plate in entries])
    return index


def found(index: MatchIndex, plate: str, when: timedelta = timedelta(0)) -> list[tuple[str, str]]:
    """(entry id, kind) of every match, best first."""
    return [(m.entry_id, m.kind.value) for m in index.match(plate, START + when)]


class TestExact:
    def test_hot1_succeeds_on_every_list_in_force(self) -> None:
        index = index_of(
            (STOLEN, [("s1", "7ABC123"), ("s2", "8XYZ999")]),
            (PARTNER, [("p1", "7ABC123")]),
        )
        matches = index.match("7ABC123", START)
        assert [(m.list_id, m.list_name, m.entry_id) for m in matches] == [
            ("CA0190000", "partner", "p1"),
            ("own:stolen", "stolen vehicles", "s1"),
        ]
        assert {(m.listed, m.kind, m.confidence, m.differences) for m in matches} == {
            ("7ABC123", MatchKind.EXACT, 1.0, ())
        }

    def test_succeeds_finding_nothing_for_an_unlisted_plate(self) -> None:
        assert found(index_of((STOLEN, [("s1", "7ABC123")])), "7ABC124") == []

    @pytest.mark.parametrize(
        "read", ["", "7abc123", "7ABC-123", "7ABC12?", "7ABC123XY", "7\u0661BC123"]
    )
    def test_fails_to_match_what_is_not_a_plate(self, read: str) -> None:
        index = index_of((STOLEN, [("s1", "7ABC123"), ("s2", "7A?C*")]), (AMBER, []))
        assert found(index, read) == []

    def test_fails_on_a_naive_reference_time(self) -> None:
        with pytest.raises(ValidationError, match="reference_time"):
            MatchIndex().match("7ABC123", START.replace(tzinfo=None))


class TestConfusable:
    def test_succeeds_naming_what_differed(self) -> None:
        [match] = index_of((STOLEN, [("s1", "7ABC123")])).match("7A8C123", START)
        assert match == Match(
            list_id="own:stolen",
            list_name="stolen vehicles",
            entry_id="s1",
            listed="7ABC123",
            kind=MatchKind.CONFUSABLE,
            confidence=CONFIDENCE[MatchKind.CONFUSABLE],
            differences=(Difference(2, "8", "B"),),
        )
        assert match.confidence < CONFIDENCE[MatchKind.EXACT]

    @pytest.mark.parametrize("chars", CONFUSABLE_CLASSES)
    def test_succeeds_for_every_pair_of_each_class(self, chars: str) -> None:
        for listed in chars:
            index = index_of((STOLEN, [("s1", f"AB{listed}12")]))
            for read in chars:
                kind = "exact" if read == listed else "confusable"
                assert found(index, f"AB{read}12") == [("s1", kind)]

    def test_succeeds_with_several_differences_and_exact_first(self) -> None:
        index = index_of((STOLEN, [("s1", "8OS1"), ("s2", "B0S1")]))
        assert found(index, "B0S1") == [("s2", "exact"), ("s1", "confusable")]
        [_, confusable] = index.match("B0S1", START)
        assert confusable.differences == (Difference(0, "B", "8"), Difference(1, "0", "O"))

    def test_fails_on_a_character_outside_the_classes(self) -> None:
        assert found(index_of((STOLEN, [("s1", "7ABC123")])), "7AXC123") == []

    def test_hot1_spellings_are_every_read_that_matches_a_whole_plate(self) -> None:
        index = index_of((STOLEN, [("s1", "B0X5")]))
        written = spellings("B0X5", limit=100)
        assert written is not None
        assert len(written) == 2 * 4 * 2
        assert all(found(index, read)[0][0] == "s1" for read in written)
        assert spellings("B0X5", limit=15) is None


class TestEdit:
    @pytest.mark.parametrize(
        ("read", "difference"),
        [
            ("7ABX123", Difference(3, "X", "C")),
            ("7ABCX123", Difference(4, "X", "")),
            ("7ABC1234", Difference(7, "4", "")),
            ("X7ABC123", Difference(0, "X", "")),
            ("7AC123", Difference(2, "", "B")),
            ("7ABC12", Difference(6, "", "3")),
        ],
    )
    def test_succeeds_one_edit_away_on_a_list_that_allows_it(
        self, read: str, difference: Difference
    ) -> None:
        [match] = index_of((AMBER, [("a1", "7ABC123")])).match(read, START)
        assert (match.kind, match.differences) == (MatchKind.EDIT, (difference,))
        assert match.confidence < CONFIDENCE[MatchKind.CONFUSABLE]

    def test_succeeds_with_confusables_besides_the_edit(self) -> None:
        [match] = index_of((AMBER, [("a1", "7ABC123")])).match("7A8C1234", START)
        assert match.kind is MatchKind.EDIT
        assert match.differences == (Difference(2, "8", "B"), Difference(7, "4", ""))

    def test_fails_on_a_list_that_does_not_allow_it(self) -> None:
        index = index_of((STOLEN, [("s1", "7ABC123")]), (AMBER, [("a1", "9XYZ000")]))
        for read in ("7ABX123", "7ABCX123", "7AC123"):
            assert found(index, read) == []

    @pytest.mark.parametrize("read", ["7ABXY23", "7AXC12", "7ACB123", "ABC123X"])
    def test_fails_two_edits_away(self, read: str) -> None:
        assert found(index_of((AMBER, [("a1", "7ABC123")])), read) == []

    @pytest.mark.parametrize("read", ["ABX", "AB", "XABC", "AXC"])
    def test_fails_on_a_plate_too_short_for_edits(self, read: str) -> None:
        assert found(index_of((AMBER, [("a1", "ABC"), ("a2", "ABCD")])), read) == []


class TestPartial:
    @pytest.mark.parametrize(
        ("pattern", "read"),
        [
            ("7AB?12*", "7ABX12"),
            ("7AB?12*", "7ABX12345"[:8]),
            ("*C123", "7ABC123"),
            ("7?B?1?3", "7ABC123"),
            ("7A?C*", "7AXC"),
            ("A*B", "AXYZB"),
            ("*ABC*", "XABCY"),
            ("*A*B*", "XAYBZ"),
            ("*AB?1", "XXABZ1"),
            ("*A?B", "7AXB"),
        ],
    )
    def test_cap5_succeeds_on_a_partial_plate(self, pattern: str, read: str) -> None:
        [match] = index_of((STOLEN, [("s1", pattern)])).match(read, START)
        assert (match.listed, match.kind, match.differences) == (pattern, MatchKind.PARTIAL, ())
        assert match.confidence < CONFIDENCE[MatchKind.EXACT]

    def test_cap5_succeeds_through_a_confusable_character(self) -> None:
        [match] = index_of((STOLEN, [("s1", "7AB?12*")])).match("7A8X12", START)
        assert match.kind is MatchKind.PARTIAL_CONFUSABLE
        assert match.differences == (Difference(2, "8", "B"),)

    @pytest.mark.parametrize("read", ["7AC?12", "7ABX1", "8ABX12", "XC1234"])
    def test_cap5_fails_on_a_plate_the_pattern_does_not_describe(self, read: str) -> None:
        index = index_of((STOLEN, [("s1", "7AB?12*"), ("s2", "*C123")]))
        assert found(index, read) == []

    @settings(max_examples=60, deadline=None)
    @given(
        patterns=st.lists(st.text("AB8O0?*", min_size=1, max_size=10), max_size=25),
        plates=st.lists(st.text("AB8O0X", min_size=1, max_size=8), min_size=1, max_size=25),
    )
    @example(patterns=["A?B", "AB*", "*BA", "A*B", "?A?", "AO8*"], plates=["AOB", "ABBA", "0B"])
    def test_cap5_succeeds_as_brute_force_does(
        self, patterns: list[str], plates: list[str]
    ) -> None:
        parsed = {}
        for number, text in enumerate(patterns):
            try:
                parsed[f"e{number}"] = PlatePattern.parse(text)
            except ValidationError:
                continue
        index = MatchIndex()
        index.put_list(STOLEN, [IndexedEntry(i, p.text) for i, p in parsed.items()])
        for plate in plates:
            matches = index.match(plate, START)
            exact = {i for i, p in parsed.items() if p.matches(plate)}
            loose = {
                i
                for i, p in parsed.items()
                if PlatePattern(canonical(p.text).decode()).matches(canonical(plate).decode())
            }
            strict = {m.entry_id for m in matches if m.kind in {MatchKind.EXACT, MatchKind.PARTIAL}}
            assert strict == exact
            assert {m.entry_id for m in matches} == loose


def within_one_edit(read: str, listed: str) -> bool:
    """Levenshtein distance of the canonical forms at most 1, by brute force."""
    a, b = canonical(read).decode(), canonical(listed).decode()
    alphabet = set(a + b)
    edits = {a[:i] + a[i + 1 :] for i in range(len(a))}
    edits |= {a[:i] + c + a[i:] for i in range(len(a) + 1) for c in alphabet}
    edits |= {a[:i] + c + a[i + 1 :] for i in range(len(a)) for c in alphabet}
    return b in edits | {a}


class TestEditProperty:
    @settings(max_examples=60, deadline=None)
    @given(
        listed=st.lists(st.text("AB8O", min_size=1, max_size=6), max_size=20, unique=True),
        reads=st.lists(st.text("AB8OX", min_size=1, max_size=7), min_size=1, max_size=20),
    )
    def test_succeeds_as_brute_force_does(self, listed: list[str], reads: list[str]) -> None:
        index = index_of((AMBER, [(plate, plate) for plate in listed]))
        for read in reads:
            matches = index.match(read, START)
            assert {m.entry_id for m in matches} == {
                plate
                for plate in listed
                if canonical(read) == canonical(plate)
                or (len(plate) >= MIN_EDIT_PLATE and within_one_edit(read, plate))
            }
            for match in matches:
                same = canonical(match.listed) == canonical(read)
                assert (match.kind is MatchKind.EDIT) != same


def brute_force(listed: dict[str, str], plate: str) -> set[str]:
    """Ids of the entries a read matches exactly or through confusables (no edits)."""
    read = canonical(plate).decode()
    return {i for i, text in listed.items() if PlatePattern(canonical(text).decode()).matches(read)}


def _parses(text: str) -> bool:
    try:
        PlatePattern.parse(text)
    except ValidationError:
        return False
    return True


PLATES_AND_PATTERNS = (
    st.text("AB8O?*", min_size=1, max_size=8)
    .filter(_parses)
    .map(lambda text: PlatePattern.parse(text).text)
)


class TestPatchingProperty:
    @settings(max_examples=60, deadline=None)
    @given(
        steps=st.lists(
            st.tuples(st.booleans(), st.integers(0, 7), PLATES_AND_PATTERNS), max_size=30
        ),
        reads=st.lists(st.text("AB8O", min_size=1, max_size=8), min_size=1, max_size=10),
    )
    def test_succeeds_as_a_dict_patched_alike(
        self, steps: list[tuple[bool, int, str]], reads: list[str]
    ) -> None:
        index, model = MatchIndex(), dict[str, str]()
        index.put_list(STOLEN)
        for adding, number, text in steps:
            if adding:
                index.add("own:stolen", [IndexedEntry(f"e{number}", text)])
                model[f"e{number}"] = text
            else:
                index.remove("own:stolen", [f"e{number}"])
                model.pop(f"e{number}", None)
        assert len(index) == len(model)
        for read in reads:
            assert {m.entry_id for m in index.match(read, START)} == brute_force(model, read)
            assert {m.listed for m in index.match(read, START)} <= set(model.values())


WHOLE_PLATES = st.text("AB8O", min_size=1, max_size=8)
# Mostly whole plates, as a partner's list is, alike but for confusables more often than not.
COLUMNS = st.lists(
    st.tuples(st.integers(0, 9), st.one_of(WHOLE_PLATES, WHOLE_PLATES, PLATES_AND_PATTERNS)),
    max_size=12,
)


class TestColumnsProperty:
    """Entries given as columns are indexed a batch at a time: as one by one would."""

    @settings(max_examples=150, deadline=None)
    @given(
        steps=st.lists(
            st.tuples(st.sampled_from(["put", "add", "remove"]), st.booleans(), COLUMNS),
            max_size=8,
        ),
        reads=st.lists(st.text("AB8O", min_size=1, max_size=8), min_size=1, max_size=10),
    )
    def test_succeeds_as_a_dict_patched_alike(
        self, steps: list[tuple[str, bool, list[tuple[int, str]]]], reads: list[str]
    ) -> None:
        lists = {"own:stolen": STOLEN, "CA0190000": PARTNER}
        index, model = MatchIndex(), {list_id: dict[str, str]() for list_id in lists}
        for info in lists.values():
            index.put_list(info)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(match_index, "PATCH_BATCH", 3)  # batches of every kind, mixed
            for action, partner, entries in steps:
                list_id = "CA0190000" if partner else "own:stolen"
                ids, plates = [f"e{n}" for n, _ in entries], [text for _, text in entries]
                if action == "remove":
                    index.remove(list_id, ids)
                    for entry_id in ids:
                        model[list_id].pop(entry_id, None)
                    continue
                if action == "put":
                    index.put_list(lists[list_id], EntryColumns(ids, plates))
                    model[list_id] = {}
                else:
                    index.add(list_id, EntryColumns(ids, plates))
                model[list_id].update(zip(ids, plates, strict=True))
        assert len(index) == sum(len(entries) for entries in model.values())
        listed = {text for _, _, entries in steps for _, text in entries if text.isalnum()}
        for read in sorted(listed) + reads:
            assert {(m.list_id, m.entry_id) for m in index.match(read, START)} == {
                (list_id, entry_id)
                for list_id, entries in model.items()
                for entry_id in brute_force(entries, read)
            }


class TestPatching:
    def test_succeeds_adding_to_a_list(self) -> None:
        index = index_of((STOLEN, [("s1", "7ABC123")]))
        index.add("own:stolen", [IndexedEntry("s2", "8XYZ999"), IndexedEntry("s3", "8XY?99")])
        assert found(index, "8XYZ999") == [("s2", "exact")]
        assert found(index, "8XYA99") == [("s3", "partial")]
        assert (len(index), index.size("own:stolen")) == (3, 3)

    def test_succeeds_replacing_an_entry_with_the_same_id(self) -> None:
        index = index_of((STOLEN, [("s1", "7ABC123")]))
        index.add("own:stolen", [IndexedEntry("s1", "7ABC12*")])
        assert found(index, "7ABC1299") == [("s1", "partial")]
        assert len(index) == 1

    def test_hot5_a_cancelled_entry_stops_matching(self) -> None:
        index = index_of(
            (STOLEN, [("s1", "7ABC123"), ("s2", "7ABC123"), ("s3", "7AB?12*")]),
            (AMBER, [("a1", "7ABC123")]),
        )
        assert index.remove("own:stolen", ["s1", "s3", "unknown"]) == 2
        assert found(index, "7ABC123") == [("a1", "exact"), ("s2", "exact")]
        assert index.remove("own:amber", ["a1"]) == 1
        assert found(index, "7ABC123") == [("s2", "exact")]
        assert found(index, "7ABX123") == []

    def test_succeeds_reusing_the_room_of_removed_entries(self) -> None:
        index = index_of((AMBER, [("a1", "7ABC123"), ("a2", "7AB?12*")]))
        index.remove("own:amber", ["a1", "a2"])
        index.put_list(STOLEN, [IndexedEntry("s1", "9XY"), IndexedEntry("s2", "9XY?")])
        assert found(index, "9XY") == [("s1", "exact")]
        assert found(index, "9XYZ") == [("s2", "partial")]
        assert found(index, "7ABC123") == []

    def test_succeeds_replacing_a_list_whole(self) -> None:
        index = index_of((STOLEN, [("s1", "7ABC123"), ("s2", "8XYZ999")]))
        index.put_list(
            IndexedList(list_id="own:stolen", name="renamed", allow_edit=True),
            [IndexedEntry("s3", "8XYZ999")],
        )
        assert found(index, "7ABC123") == []
        assert [(m.list_name, m.entry_id) for m in index.match("8XYZ999", START)] == [
            ("renamed", "s3")
        ]
        assert found(index, "8XYZ99") == [("s3", "edit")]

    def test_succeeds_dropping_a_list(self) -> None:
        index = index_of((STOLEN, [("s1", "7ABC123"), ("s2", "7A*")]), (AMBER, []))
        assert index.drop_list("own:stolen") == 2
        assert found(index, "7ABC123") == []
        assert [info.list_id for info in index.lists()] == ["own:amber"]

    @pytest.mark.parametrize(
        "call",
        [
            lambda index: index.add("nope", []),
            lambda index: index.remove("nope", ["x"]),
            lambda index: index.drop_list("nope"),
            lambda index: index.set_expiry("nope", None),
            lambda index: index.size("nope"),
        ],
    )
    def test_fails_on_a_missing_list(self, call: object) -> None:
        with pytest.raises(NotFoundError):
            call(MatchIndex())  # type: ignore[operator]

    @pytest.mark.parametrize(
        ("entry", "field"),
        [
            (IndexedEntry("", "7ABC123"), "entry_id"),
            (IndexedEntry("x" * 65, "7ABC123"), "entry_id"),
            (IndexedEntry("s9", "7abc123"), "plate"),
            (IndexedEntry("s9", "7A**"), "plate"),
            (IndexedEntry("s9", "?A"), "plate"),
            (IndexedEntry("s9", "ABCDE1234"), "plate"),
            (IndexedEntry("s9", "7ABC123", START.replace(tzinfo=None)), "expires_at"),
        ],
    )
    def test_fails_on_a_bad_entry_and_changes_nothing(
        self, entry: IndexedEntry, field: str
    ) -> None:
        index = index_of((STOLEN, [("s1", "7ABC123")]))
        with pytest.raises(ValidationError) as raised:
            index.add("own:stolen", [IndexedEntry("s2", "8XYZ999"), entry])
        assert raised.value.field == field
        assert (len(index), found(index, "8XYZ999")) == (1, [])

    @pytest.mark.parametrize(
        ("columns", "field"),
        [
            (EntryColumns(["s2", ""], ["8XYZ999", "7ABC123"]), "entry_id"),
            (EntryColumns(["s2", "s\n9"], ["8XYZ999", "7ABC123"]), "entry_id"),
            (EntryColumns(["s2", "s9"], ["8XYZ999", "7ABC\n123"]), "plate"),
            (EntryColumns(["s2", "s9"], ["8XYZ999", "7abc123"]), "plate"),
            (EntryColumns(["s2", "s9"], ["8XYZ999", "7A**"]), "plate"),
            (EntryColumns(["s2", "s9"], ["8XYZ999", ""]), "plate"),
            (EntryColumns(["s2", "s9"], ["8XYZ999"]), "entries"),
        ],
    )
    def test_fails_on_bad_columns_and_changes_nothing(
        self, columns: EntryColumns, field: str
    ) -> None:
        index = index_of((STOLEN, [("s1", "7ABC123")]))
        with pytest.raises(ValidationError) as raised:
            index.add("own:stolen", columns)
        assert raised.value.field == field
        assert (len(index), found(index, "8XYZ999")) == (1, [])

    def test_fails_on_a_naive_list_expiry(self) -> None:
        with pytest.raises(ValidationError, match="expires_at"):
            IndexedList(list_id="x", name="x", expires_at=START.replace(tzinfo=None))


class TestExpiry:
    def test_hot6_a_partner_list_stops_matching_at_24_hours(self) -> None:
        index = index_of((PARTNER, [("p1", "7ABC123"), ("p2", "7AB?12*")]))
        just_before = DAY - timedelta(microseconds=1)
        assert found(index, "7ABC123", just_before) == [("p1", "exact"), ("p2", "partial")]
        assert found(index, "7ABC123", DAY) == []
        assert found(index, "7ABC123", DAY + timedelta(seconds=1)) == []

    def test_hot6_a_refreshed_list_matches_again(self) -> None:
        index = index_of((PARTNER, [("p1", "7ABC123")]))
        index.set_expiry("CA0190000", START + 2 * DAY)
        assert found(index, "7ABC123", DAY + timedelta(seconds=1)) == [("p1", "exact")]
        assert index.lists()[0].expires_at == START + 2 * DAY

    def test_succeeds_ending_one_entry_at_its_own_expiry(self) -> None:
        index = MatchIndex()
        index.put_list(
            STOLEN,
            [IndexedEntry("s1", "7ABC123", START + DAY), IndexedEntry("s2", "7ABC123")],
        )
        assert found(index, "7ABC123", DAY) == [("s2", "exact")]

    def test_hot6_succeeds_purging_what_expired(self) -> None:
        index = MatchIndex()
        index.put_list(PARTNER, [IndexedEntry("p1", "7ABC123")])
        index.put_list(STOLEN, [IndexedEntry("s1", "7AB?", START + DAY), IndexedEntry("s2", "7AB")])
        assert index.purge_expired(START + DAY - timedelta(seconds=1)) == []
        assert index.purge_expired(START + DAY) == ["CA0190000"]
        assert ([i.list_id for i in index.lists()], len(index)) == (["own:stolen"], 1)
        assert found(index, "7AB") == [("s2", "exact")]


class TestThreads:
    def test_succeeds_matching_while_a_list_is_replaced(self) -> None:
        """A reader sees the old version or the new, never neither or both."""
        index = index_of((STOLEN, [("v0", "7ABC123")]))
        seen: list[list[str]] = []
        done = threading.Event()

        def read() -> None:
            while not done.is_set():
                seen.append([m.entry_id for m in index.match("7ABC123", START)])

        reader = threading.Thread(target=read)
        reader.start()
        for version in range(1, 40):
            entries = [IndexedEntry(f"x{i}", f"X{i}") for i in range(300)]
            index.put_list(STOLEN, [*entries, IndexedEntry(f"v{version}", "7ABC123")])
        done.set()
        reader.join()
        assert seen
        assert all(len(ids) == 1 for ids in seen)
        assert found(index, "7ABC123") == [("v39", "exact")]
