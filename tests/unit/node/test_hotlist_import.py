"""Hotlist importers: CSV, NCIC LPR extract, CLEW hot file; bad lines and ACC-7 refused."""

from __future__ import annotations

import itertools
import re
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from node.errors import ValidationError
from node.hotlists import (
    CLEW_CATEGORIES,
    CLEW_LAYOUT,
    FORBIDDEN_LIST_TYPES,
    FORBIDDEN_REASON,
    NCIC_FILE_CODES,
    NCIC_LAYOUT,
    Column,
    HotlistEntry,
    ListType,
    PlatePattern,
    RejectedLine,
    format_clew,
    format_csv,
    format_ncic,
    parse_clew,
    parse_csv,
    parse_ncic,
)
from node.identity import STATE_CODES

DATA = Path(__file__).resolve().parents[2] / "data" / "hotlists"
ALNUM = string.ascii_uppercase + string.digits
HEADER = "plate,state,list_type,reason,case_number,ncic_number,expires_at,contact\n"
# The example line of OpenALPR's NCIC importer, which our assumed layout follows.
OPENALPR_NCIC_LINE = "V123456789LA057020020190509AB123456  CA2009MC2009YAMACYLMCBLK"
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)  # an import's reference time

plates = st.text(alphabet=ALNUM, min_size=1, max_size=8)
states = st.sampled_from(["", *sorted(STATE_CODES)])
allowed_types = st.sampled_from([t for t in ListType if t not in FORBIDDEN_LIST_TYPES])
oris = st.builds(
    lambda state, tail: state + tail,
    st.sampled_from(sorted(STATE_CODES)),
    st.text(alphabet=ALNUM, min_size=7, max_size=7),
)
digits = st.text(alphabet=string.digits, min_size=9, max_size=9)


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Printable one-line text without surrounding whitespace, as entries hold."""
    chars = st.characters(exclude_categories=("C", "Z")) | st.just(" ")
    return st.text(chars, max_size=max_size).map(str.strip)


@st.composite
def pattern_texts(draw: st.DrawFn) -> str:
    """Whole plates and partial patterns (CAP-5), canonical."""
    text = draw(st.text(alphabet=ALNUM + "?*", min_size=1, max_size=10))
    try:
        return PlatePattern.parse(text).text
    except ValidationError:
        return draw(plates)


csv_entries = st.builds(
    HotlistEntry,
    plate=pattern_texts(),
    state=states,
    list_type=allowed_types,
    reason=texts(40),
    case_number=texts(64),
    ncic_number=st.just("") | st.builds(lambda c, d: c + d, st.sampled_from(ALNUM[:26]), digits),
    expires_at=st.none()
    | st.datetimes(min_value=datetime(2026, 11, 25, 12, 0, 1), timezones=st.just(UTC)),
    contact=texts(40),
)


@st.composite
def ncic_entries(draw: st.DrawFn) -> HotlistEntry:
    """Entries the NCIC extract can hold: whole plates, an NIC of their file, an ORI contact."""
    code = draw(
        st.sampled_from([c for c, t in NCIC_FILE_CODES.items() if t not in FORBIDDEN_LIST_TYPES])
    )
    return HotlistEntry(
        plate=draw(plates),
        state=draw(states),
        list_type=NCIC_FILE_CODES[code],
        reason=draw(texts(60)),
        ncic_number=code + draw(digits),
        contact=draw(st.just("") | oris),
    )


clew_entries = st.builds(
    HotlistEntry,
    plate=plates,
    state=states,
    list_type=st.sampled_from(
        [t for t in CLEW_CATEGORIES.values() if t not in FORBIDDEN_LIST_TYPES]
    ),
)


INVALID_CSV_ROWS = {
    "bad plate": ("AB$1,CA,bolo,,,,,", "plate", "'\\$'"),
    "bad state": ("AB1,XX,bolo,,,,,", "state", "USPS"),
    "unknown list type": ("AB1,CA,parking,,,,,", "list_type", "not a list type"),
    "naive expiry": ("AB1,CA,bolo,,,,2026-01-01T00:00:00,", "expires_at", "no offset"),
    "not a date": ("AB1,CA,bolo,,,,next week,", "expires_at", "ISO 8601"),
    "expiry before year 1 in UTC": ("A1,,bolo,,,,0001-01-01T00:00+05:00,", "expires_at", "range"),
    "expiry passed": ("AB1,CA,bolo,,,,2026-11-25T04:00:00-08:00,", "expires_at", "has passed"),
    "bad ncic number": ("AB1,CA,bolo,,,V12,,", "ncic_number", "letter then 9 digits"),
    "too few cells": ("AB1,CA,bolo", "line", "3 cells; the header has 8"),
    "lone star": ("*,CA,bolo,,,,,", "plate", "partial"),
}

INVALID_CSV_FILES = {
    "empty": ("", None, "header", "empty"),
    "no plate column": ("list_type,reason\nbolo,x\n", None, "header", "no plate column"),
    "no list type column": ("plate\nABC123\n", None, "header", "no list_type column"),
    "two plate columns": ("plate,Tag,list_type\n", {"Tag": "plate"}, "header", "two"),
    "unknown target": ("plate,list_type\n", {"Tag": "vin"}, "mapping", "'vin'"),
    "mapped header missing": (
        "Tag,list_type,Notes\n",
        {"Tag": "plate", "Note": "reason"},
        "mapping",
        "'Note' is no column of the header",
    ),
    "oversized cell": (HEADER + '"' + "x" * 200_000 + '"\n', None, "csv", "line 2"),
}

INVALID_NCIC_LINES = {
    "too long": (OPENALPR_NCIC_LINE.ljust(105) + "X", "line", "106 characters"),
    "no plate": (OPENALPR_NCIC_LINE[:27], "plate", "0 letters"),
    "bad ori": (OPENALPR_NCIC_LINE.replace("LA0570200", "ZZ0570200"), "contact", "ORI"),
    "bad state": (OPENALPR_NCIC_LINE.replace("  CA2009", "  XX2009"), "state", "USPS"),
    "unknown file code": ("C" + OPENALPR_NCIC_LINE[1:], "ncic_number", "'C'"),
}

UNWRITABLE_NCIC = {
    "partial plate": ("plate", {"plate": "7AB?12*"}),
    "case number": ("case_number", {"case_number": "24-1"}),
    "expiry": ("expires_at", {"expires_at": datetime(2026, 1, 1, tzinfo=UTC)}),
    "no ncic number": ("ncic_number", {"ncic_number": ""}),
    "ncic number of another file": ("ncic_number", {"ncic_number": "W123456789"}),
    "contact not an ori": ("contact", {"contact": "Dispatch"}),
    "reason too wide": ("reason", {"reason": "x" * 61}),
}

UNWRITABLE_CLEW = {
    "partial plate": ("plate", {"plate": "7AB?12*"}),
    "reason": ("reason", {"reason": "stolen"}),
    "ncic number": ("ncic_number", {"ncic_number": "V123456789"}),
    "contact": ("contact", {"contact": "Dispatch"}),
    "no category": ("list_type", {"list_type": ListType.BOLO}),
}


def rejected(expected: list[tuple[int, str, str]], found: list[RejectedLine]) -> None:
    """Assert the rejected lines are exactly these: (line, field, pattern of the reason)."""
    assert [(r.line, r.field) for r in found] == [(line, field) for line, field, _ in expected]
    for line, (_, _, pattern) in zip(found, expected, strict=True):
        assert re.search(pattern, line.reason), line.reason


class TestCsv:
    def test_succeeds_on_the_sample(self) -> None:
        result = parse_csv((DATA / "sample.csv").read_text(), reference_time=NOW)
        assert len(result.entries) == 10
        assert [(r.line, r.field) for r in result.rejected] == [(12, "list_type"), (13, "line")]
        assert result.rejected[0].reason == FORBIDDEN_REASON
        assert result.rejected[1].raw.endswith(",extra")
        by_plate = {e.plate: e for e in result.entries}
        assert by_plate["8XYZ456"].state == "CA"
        assert by_plate["8XYZ456"].list_type is ListType.STOLEN_VEHICLE
        assert by_plate["8BOL222"].expires_at == datetime(2027, 3, 15, 15, tzinfo=UTC)

    def test_cap5_succeeds_with_a_partial_plate_in_the_sample(self) -> None:
        result = parse_csv((DATA / "sample.csv").read_text(), reference_time=NOW)
        partial = [e for e in result.entries if e.is_partial]
        assert [e.plate for e in partial] == ["7AB?12*"]
        assert partial[0].pattern.matches("7AB912X")

    @given(st.lists(csv_entries, max_size=5))
    @example([HotlistEntry(plate="7AB?12*", list_type=ListType.BOLO, reason='a, "b"')])
    @example([HotlistEntry(plate="A", list_type=ListType.AMBER_ALERT, reason="r" * 500)])
    def test_succeeds_round_trip(self, entries: list[HotlistEntry]) -> None:
        result = parse_csv(format_csv(entries), reference_time=NOW)
        assert (result.entries, result.rejected) == (entries, [])

    @given(st.text())
    @example("7abc123,ca,stolen,x,,,,\n")
    @example('"7AB?12*",,SV,"two\nlines",,,,\n')
    def test_succeeds_parse_then_round_trip(self, body: str) -> None:
        entries = parse_csv(HEADER + body, reference_time=NOW).entries
        assert parse_csv(format_csv(entries), reference_time=NOW).entries == entries

    def test_succeeds_with_an_operator_mapping(self) -> None:
        text = "\ufeffPlate Number, Category ,Notes\n7abc-123,SV,seen twice\n"
        mapping = {"plate number": "plate", "CATEGORY": "list_type", "Notes": "reason"}
        result = parse_csv(text, mapping, reference_time=NOW)
        assert result.entries == [
            HotlistEntry(plate="7ABC123", list_type=ListType.STOLEN_VEHICLE, reason="seen twice")
        ]

    def test_succeeds_ignoring_unmapped_columns(self) -> None:
        result = parse_csv("plate,list_type,Vehicle Make\nABC123,bolo,Honda\n", reference_time=NOW)
        assert result.entries == [HotlistEntry(plate="ABC123", list_type=ListType.BOLO)]

    def test_succeeds_numbering_a_record_over_two_lines_by_its_first(self) -> None:
        result = parse_csv(
            HEADER + 'A1,,bolo,"two\nlines",,,,\nB2,,bolo,,,,,\n', reference_time=NOW
        )
        rejected([(2, "reason", "non-printable")], result.rejected)
        assert result.rejected[0].raw == 'A1,,bolo,"two\nlines",,,,'
        assert [e.plate for e in result.entries] == ["B2"]

    @pytest.mark.parametrize(
        ("row", "field", "reason"), INVALID_CSV_ROWS.values(), ids=INVALID_CSV_ROWS.keys()
    )
    def test_fails_a_bad_row_and_goes_on(self, row: str, field: str, reason: str) -> None:
        result = parse_csv(HEADER + row + "\nGOOD1,CA,bolo,,,,,\n", reference_time=NOW)
        rejected([(2, field, reason)], result.rejected)
        assert result.rejected[0].raw == row
        assert [e.plate for e in result.entries] == ["GOOD1"]

    @pytest.mark.parametrize("category", ["civil_immigration", "Immigration", "ICE"])
    def test_acc7_rejects_civil_immigration_before_anything_else(self, category: str) -> None:
        result = parse_csv(f"{HEADER}not a plate!,XX,{category},,,,,\n", reference_time=NOW)
        assert result.entries == []
        rejected([(2, "list_type", re.escape(FORBIDDEN_REASON))], result.rejected)

    @pytest.mark.parametrize(
        ("text", "mapping", "field", "problem"),
        INVALID_CSV_FILES.values(),
        ids=INVALID_CSV_FILES.keys(),
    )
    def test_fails_when_the_file_is_unusable(
        self, text: str, mapping: dict[str, str] | None, field: str, problem: str
    ) -> None:
        with pytest.raises(ValidationError, match=problem) as raised:
            parse_csv(text, mapping, reference_time=NOW)
        assert raised.value.field == field


class TestNcic:
    def test_succeeds_on_the_sample(self) -> None:
        result = parse_ncic((DATA / "sample_ncic.txt").read_text())
        assert len(result.entries) == 9
        rejected(
            [
                (6, "list_type", re.escape(FORBIDDEN_REASON)),
                (10, "plate", "'\\$'"),
                (13, "ncic_number", "'C' is not an NCIC file code"),
            ],
            result.rejected,
        )
        first = result.entries[0]
        assert (first.plate, first.state, first.list_type) == (
            "7ABC123",
            "CA",
            ListType.STOLEN_VEHICLE,
        )
        assert (first.ncic_number, first.contact) == ("V123456789", "CA0194200")

    def test_succeeds_skipping_a_header_but_not_a_byte_order_mark(self) -> None:
        assert len(parse_ncic(f"NCIC LPR EXTRACT\n{OPENALPR_NCIC_LINE}\n").entries) == 1
        assert len(parse_ncic(f"\ufeff{OPENALPR_NCIC_LINE}\n").entries) == 1

    def test_succeeds_on_the_line_openalpr_reads(self) -> None:
        (entry,) = parse_ncic(OPENALPR_NCIC_LINE).entries
        assert (entry.plate, entry.state, entry.list_type) == (
            "AB123456",
            "CA",
            ListType.STOLEN_VEHICLE,
        )
        assert (entry.contact, entry.reason) == ("LA0570200", "2009YAMACYLMCBLK")

    @given(st.lists(ncic_entries(), max_size=5))
    @example(
        [
            HotlistEntry(
                plate="ABCD1234", list_type=ListType.FELONY_VEHICLE, ncic_number="F000000001"
            )
        ]
    )
    def test_succeeds_round_trip(self, entries: list[HotlistEntry]) -> None:
        result = parse_ncic(format_ncic(entries))
        assert (result.entries, result.rejected) == (entries, [])

    @given(st.text())
    @example(OPENALPR_NCIC_LINE)
    @example("HEADER\n" + OPENALPR_NCIC_LINE + "\r\n\n")
    def test_succeeds_parse_then_round_trip(self, text: str) -> None:
        entries = parse_ncic(text).entries
        assert parse_ncic(format_ncic(entries)).entries == entries

    def test_acc7_rejects_the_immigration_violator_file_before_anything_else(self) -> None:
        line = "N" + OPENALPR_NCIC_LINE[1:].replace("AB123456", "AB$12345")
        result = parse_ncic(f"{OPENALPR_NCIC_LINE}\n{line}\n")
        assert len(result.entries) == 1
        rejected([(2, "list_type", re.escape(FORBIDDEN_REASON))], result.rejected)
        assert result.rejected[0].raw == line

    @pytest.mark.parametrize(
        ("line", "field", "reason"), INVALID_NCIC_LINES.values(), ids=INVALID_NCIC_LINES.keys()
    )
    def test_fails_a_bad_line_and_goes_on(self, line: str, field: str, reason: str) -> None:
        result = parse_ncic(f"{OPENALPR_NCIC_LINE}\n{line}\n{OPENALPR_NCIC_LINE}\n")
        assert len(result.entries) == 2
        rejected([(2, field, reason)], result.rejected)

    @pytest.mark.parametrize(
        ("field", "changes"), UNWRITABLE_NCIC.values(), ids=UNWRITABLE_NCIC.keys()
    )
    def test_fails_to_write_what_the_extract_cannot_hold(
        self, field: str, changes: dict[str, Any]
    ) -> None:
        fields: dict[str, Any] = {
            "plate": "ABC123",
            "list_type": ListType.STOLEN_VEHICLE,
            "ncic_number": "V123456789",
        }
        entry = HotlistEntry(**(fields | changes))
        with pytest.raises(ValidationError) as raised:
            format_ncic([entry])
        assert raised.value.field == field


class TestClew:
    def test_succeeds_on_the_sample(self) -> None:
        result = parse_clew((DATA / "sample_clew.txt").read_text())
        assert len(result.entries) == 7
        rejected(
            [
                (9, "list_type", re.escape(FORBIDDEN_REASON)),
                (10, "plate", "'#'"),
                (11, "state", "USPS"),
                (12, "category", "'1' is not a CLEW category"),
                (13, "category", "no list_type"),
            ],
            result.rejected,
        )
        types = {e.plate: e.list_type for e in result.entries}
        assert types["ABCD1234"] is ListType.FELONY_VEHICLE
        assert types["6PLT404"] is ListType.STOLEN_PLATE

    def test_succeeds_on_a_file_of_one_list_as_clew_ships_them(self) -> None:
        text = (
            "DATE07/02/2018 09:00\nABC123  CA0120180627\nXYZ999  CA0220180430\n"
            "TOTAL RECORD 0000002\n"
        )
        result = parse_clew(text, list_type=ListType.FELONY_VEHICLE)
        assert result.rejected == []
        assert result.entries == [
            HotlistEntry(plate="ABC123", state="CA", list_type=ListType.FELONY_VEHICLE),
            HotlistEntry(plate="XYZ999", state="CA", list_type=ListType.FELONY_VEHICLE),
        ]

    def test_fails_a_trailer_whose_count_disagrees(self) -> None:
        result = parse_clew("ABC123  CA0120180627SVS\nTOTAL RECORD 0000072\n")
        assert len(result.entries) == 1
        rejected([(2, "line", "counts 72 records but the file has 1")], result.rejected)

    @given(st.lists(clew_entries, max_size=5))
    @example([HotlistEntry(plate="ABCD1234", list_type=ListType.STOLEN_PLATE)])
    def test_succeeds_round_trip(self, entries: list[HotlistEntry]) -> None:
        result = parse_clew(format_clew(entries))
        assert (result.entries, result.rejected) == (entries, [])

    @given(st.text())
    @example("DATE07/02/2018 09:00\nABC123  CA0120180627\nTOTAL RECORD 0000001\n")
    def test_succeeds_parse_then_round_trip(self, text: str) -> None:
        entries = parse_clew(text, list_type=ListType.STOLEN_VEHICLE).entries
        assert parse_clew(format_clew(entries)).entries == entries

    def test_acc7_rejects_the_immigration_category_and_a_forbidden_file(self) -> None:
        result = parse_clew("5IMM100 CA1920250529IMM\n")
        rejected([(1, "list_type", re.escape(FORBIDDEN_REASON))], result.rejected)
        result = parse_clew("AB$123  XX0120180627\n", list_type=ListType.CIVIL_IMMIGRATION)
        assert result.entries == []
        rejected([(1, "list_type", re.escape(FORBIDDEN_REASON))], result.rejected)

    @pytest.mark.parametrize(
        ("field", "changes"), UNWRITABLE_CLEW.values(), ids=UNWRITABLE_CLEW.keys()
    )
    def test_fails_to_write_what_the_file_cannot_hold(
        self, field: str, changes: dict[str, Any]
    ) -> None:
        fields: dict[str, Any] = {"plate": "ABC123", "list_type": ListType.STOLEN_VEHICLE}
        entry = HotlistEntry(**(fields | changes))
        with pytest.raises(ValidationError) as raised:
            format_clew([entry])
        assert raised.value.field == field


class TestLayouts:
    @pytest.mark.parametrize("layout", [NCIC_LAYOUT, CLEW_LAYOUT], ids=["ncic", "clew"])
    def test_succeeds_columns_in_order_without_overlap(self, layout: tuple[Column, ...]) -> None:
        assert layout[0].start == 0
        for before, after in itertools.pairwise(layout):
            assert before.end == after.start
        assert len({column.name for column in layout}) == len(layout)
