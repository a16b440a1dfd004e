"""Plates, partial patterns (CAP-5) and hotlist entries, refused when forbidden (ACC-7)."""

from __future__ import annotations

import fnmatch
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from alpr.common.v1 import hotlist_pb2
from node.errors import ValidationError
from node.hotlists import (
    FORBIDDEN_LIST_TYPES,
    FORBIDDEN_REASON,
    HotlistEntry,
    ListType,
    PlatePattern,
    ensure_allowed,
    ensure_unexpired,
    normalize_plate,
)
from node.hotlists.codec import frame_fields, problem_with, problems_in_bulk

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

VALID_PLATES = {
    "already canonical": ("7ABC123", "7ABC123"),
    "lowercase": ("7abc123", "7ABC123"),
    "dash and space": ("7ABC - 123", "7ABC123"),
    "dots and slash": ("AB.12/C", "AB12C"),
    "middle dot": ("ABC\u00b7123", "ABC123"),
    "one character": ("a", "A"),
    "eight characters": ("ABCD1234", "ABCD1234"),
}

INVALID_PLATES = {
    "empty": "",
    "only separators": " - . ",
    "nine characters": "ABCDE1234",
    "symbol": "AB$123",
    "question mark": "7AB?12",
    "star": "7AB*",
    "arabic-indic digit": "AB\u0661",
    "ligature that uppercases to ASCII": "\ufb00123",
    "accented letter": "CAF\u00c9",
    "fullwidth letters": "\uff21\uff22123",
}

VALID_PATTERNS = {
    "witness partial": ("7ab?12*", "7AB?12*"),
    "separators dropped": ("7AB ? 12-*", "7AB?12*"),
    "stars merged": ("A**B", "A*B"),
    "whole plate": ("abc123", "ABC123"),
    "two literals": ("*A?B*", "*A?B*"),
    "eight literals": ("ABCD*1234", "ABCD*1234"),
    "sixteen characters": ("A*B*C*D*E*F*G*H*", "A*B*C*D*E*F*G*H*"),
}

INVALID_PATTERNS = {
    "star alone": "*",
    "question mark alone": "?",
    "one literal": "A*",
    "one literal among wildcards": "?A?*",
    "nine literals": "ABCDE*1234",
    "longer than sixteen": "A*?*B*?*C*?*D*?*E",
    "longer than any plate": "A?B?C?D?E",
    "symbol": "AB$*",
    "empty": "",
}

CAP5_MATCHES = {
    "question mark is one character": ("7AB?12*", "7AB312"),
    "star takes a run": ("7AB?12*", "7ABX12ZZ"),
    "star takes nothing": ("7AB?12*", "7AB512"),
    "leading star": ("*123", "ABC123"),
    "star between": ("A*B", "AB"),
    "whole plate": ("ABC123", "ABC123"),
    "every character unknown but two": ("??12????", "XY12ZZZZ"),
}

CAP5_MISMATCHES = {
    "question mark needs a character": ("7AB?12*", "7AB12"),
    "wrong literal": ("7AB?12*", "7AC312"),
    "trailing literal": ("A*B", "ABA"),
    "too short": ("AB??", "ABC"),
    "other whole plate": ("ABC123", "ABC124"),
    "not normalized": ("7AB?12*", "7ab312"),
    "longer than a plate": ("AB*", "AB12345678"),
    "empty plate": ("A*B*", ""),
}


def entry(**overrides: Any) -> HotlistEntry:
    fields: dict[str, Any] = {
        "plate": "7ABC123",
        "state": "CA",
        "list_type": ListType.STOLEN_VEHICLE,
        "reason": "Silver 2018 Honda Civic",
        "case_number": "24-001234",
        "ncic_number": "V123456789",
        "expires_at": datetime(2026, 1, 1, tzinfo=UTC),
        "contact": "Records unit ext. 4100",
    }
    return HotlistEntry(**(fields | overrides))


INVALID_ENTRIES = {
    "lowercase plate": ("plate", {"plate": "7abc123"}),
    "plate with separator": ("plate", {"plate": "7ABC-123"}),
    "unmerged stars": ("plate", {"plate": "AB**"}),
    "pattern of one literal": ("plate", {"plate": "A*"}),
    "unknown state": ("state", {"state": "ZZ"}),
    "lowercase state": ("state", {"state": "ca"}),
    "reason too long": ("reason", {"reason": "x" * 501}),
    "reason over two lines": ("reason", {"reason": "stolen\nvehicle"}),
    "reason with a tab": ("reason", {"reason": "stolen\tvehicle"}),
    "reason padded": ("reason", {"reason": " stolen"}),
    "case number too long": ("case_number", {"case_number": "9" * 65}),
    "contact too long": ("contact", {"contact": "x" * 201}),
    "short ncic number": ("ncic_number", {"ncic_number": "V12345"}),
    "ncic number without letter": ("ncic_number", {"ncic_number": "1234567890"}),
    "naive expiry": ("expires_at", {"expires_at": datetime(2026, 1, 1)}),
    "pacific expiry": (
        "expires_at",
        {"expires_at": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-8)))},
    ),
}


@st.composite
def patterns(draw: st.DrawFn, alphabet: str = ALNUM) -> str:
    """Canonical patterns, drawn as text and kept when they parse."""
    text = draw(st.text(alphabet=alphabet + "?*", min_size=2, max_size=12))
    try:
        return PlatePattern.parse(text).text
    except ValidationError:
        return draw(st.sampled_from(["7AB?12*", "*123", "A*B", "??12????"]))


class TestNormalizePlate:
    @pytest.mark.parametrize(("text", "plate"), VALID_PLATES.values(), ids=VALID_PLATES.keys())
    def test_succeeds(self, text: str, plate: str) -> None:
        assert normalize_plate(text) == plate

    @pytest.mark.parametrize("text", INVALID_PLATES.values(), ids=INVALID_PLATES.keys())
    def test_fails_when_malformed(self, text: str) -> None:
        with pytest.raises(ValidationError) as raised:
            normalize_plate(text)
        assert raised.value.field == "plate"

    def test_fails_naming_the_given_field(self) -> None:
        with pytest.raises(ValidationError, match="'\\$'") as raised:
            normalize_plate("AB$1", field="query")
        assert raised.value.field == "query"

    @given(
        st.text(alphabet=ALNUM, min_size=1, max_size=8),
        st.lists(st.sampled_from([" ", "-", ".", "/", "\u00b7"]), max_size=8),
    )
    @example("7ABC123", ["-"])
    @example("A", [])
    def test_succeeds_dropping_separators_wherever_they_are(
        self, plate: str, separators: list[str]
    ) -> None:
        written = "".join(c + s for c, s in zip(plate.lower(), separators, strict=False))
        written += plate[len(separators) :].lower()
        assert normalize_plate(written) == plate
        assert normalize_plate(plate) == plate


class TestPlatePattern:
    @pytest.mark.parametrize(("text", "canon"), VALID_PATTERNS.values(), ids=VALID_PATTERNS.keys())
    def test_succeeds(self, text: str, canon: str) -> None:
        assert PlatePattern.parse(text).text == canon

    @pytest.mark.parametrize("text", INVALID_PATTERNS.values(), ids=INVALID_PATTERNS.keys())
    def test_fails_when_malformed(self, text: str) -> None:
        with pytest.raises(ValidationError) as raised:
            PlatePattern.parse(text)
        assert raised.value.field == "plate"

    def test_fails_when_constructed_from_text_not_canonical(self) -> None:
        with pytest.raises(ValidationError, match="write 'A\\*B'"):
            PlatePattern("a**b")

    def test_succeeds_telling_partial_from_whole(self) -> None:
        assert PlatePattern.parse("7AB?12*").is_partial
        assert not PlatePattern.parse("7AB312").is_partial

    @given(patterns())
    @example("7AB?12*")
    @example("A*A*A*A*A*A*A*B")
    def test_cap5_succeeds_parsing_its_own_text(self, text: str) -> None:
        assert PlatePattern.parse(text) == PlatePattern(text)

    @pytest.mark.parametrize(("pattern", "plate"), CAP5_MATCHES.values(), ids=CAP5_MATCHES.keys())
    def test_cap5_matches(self, pattern: str, plate: str) -> None:
        assert PlatePattern.parse(pattern).matches(plate)

    @pytest.mark.parametrize(
        ("pattern", "plate"), CAP5_MISMATCHES.values(), ids=CAP5_MISMATCHES.keys()
    )
    def test_cap5_fails_to_match(self, pattern: str, plate: str) -> None:
        assert not PlatePattern.parse(pattern).matches(plate)

    def test_cap5_pathological_pattern_does_not_backtrack(self) -> None:
        # Seven stars against eight A's: a backtracking matcher tries every split.
        pattern = PlatePattern.parse("A*A*A*A*A*A*A*B")
        assert not pattern.matches("AAAAAAAA")
        assert pattern.matches("AAAAAAAB")

    @given(patterns("AB12"), st.text(alphabet="AB12", min_size=1, max_size=8))
    @example("A*A*A*A*A*A*A*B", "AAAAAAAA")
    @example("?*12", "B12")
    def test_cap5_matches_as_fnmatch_does(self, pattern: str, plate: str) -> None:
        assert PlatePattern(pattern).matches(plate) == fnmatch.fnmatchcase(plate, pattern)


class TestListType:
    SYNONYMS: ClassVar = {
        "value": ("stolen_vehicle", ListType.STOLEN_VEHICLE),
        "name": ("AMBER_ALERT", ListType.AMBER_ALERT),
        "spaced words": ("Wanted Person", ListType.WANTED_PERSON),
        "dashed words": ("sex-offender", ListType.SEX_OFFENDER),
        "stolen": ("stolen", ListType.STOLEN_VEHICLE),
        "SV": ("SV", ListType.STOLEN_VEHICLE),
        "bolo": (" bolo ", ListType.BOLO),
        "immigration": ("Immigration", ListType.CIVIL_IMMIGRATION),
    }

    @pytest.mark.parametrize(("text", "list_type"), SYNONYMS.values(), ids=SYNONYMS.keys())
    def test_succeeds(self, text: str, list_type: ListType) -> None:
        assert ListType.from_text(text) is list_type

    @pytest.mark.parametrize("text", ["", "parking", "stolen vehicles", "S V"])
    def test_fails_when_unknown(self, text: str) -> None:
        with pytest.raises(ValidationError, match="not a list type") as raised:
            ListType.from_text(text)
        assert raised.value.field == "list_type"

    def test_acc7_civil_immigration_is_forbidden(self) -> None:
        assert ListType.CIVIL_IMMIGRATION in FORBIDDEN_LIST_TYPES
        with pytest.raises(ValidationError, match=re.escape(FORBIDDEN_REASON)):
            ensure_allowed(ListType.CIVIL_IMMIGRATION)
        assert ensure_allowed(ListType.BOLO) is ListType.BOLO


class TestHotlistEntry:
    def test_succeeds(self) -> None:
        made = entry()
        assert not made.is_partial
        assert made.pattern.matches("7ABC123")
        assert not made.pattern.matches("7ABC124")

    def test_succeeds_with_only_plate_and_list_type(self) -> None:
        made = HotlistEntry(plate="A", list_type=ListType.BOLO)
        assert (made.state, made.reason, made.expires_at) == ("", "", None)

    def test_cap5_succeeds_with_a_partial_plate(self) -> None:
        made = entry(plate="7AB?12*")
        assert made.is_partial
        assert made.pattern.matches("7AB312")

    @pytest.mark.parametrize(
        ("field", "overrides"), INVALID_ENTRIES.values(), ids=INVALID_ENTRIES.keys()
    )
    def test_fails_when_a_field_is_invalid(self, field: str, overrides: dict[str, Any]) -> None:
        with pytest.raises(ValidationError) as raised:
            entry(**overrides)
        assert raised.value.field == field

    def test_acc7_fails_for_civil_immigration_before_anything_else(self) -> None:
        with pytest.raises(ValidationError) as raised:
            entry(list_type=ListType.CIVIL_IMMIGRATION, plate="not a plate")
        assert (raised.value.field, raised.value.problem) == ("list_type", FORBIDDEN_REASON)

    def test_succeeds_at_the_limits(self) -> None:
        made = entry(reason="r" * 500, case_number="c" * 64, contact="c" * 200, ncic_number="")
        assert len(made.reason) == 500


class TestEnsureUnexpired:
    EXPIRES = datetime(2026, 1, 1, tzinfo=UTC)

    @pytest.mark.parametrize("now", [EXPIRES, EXPIRES + timedelta(days=1)], ids=["at", "after"])
    def test_fails_for_an_expiry_at_or_before_the_reference_time(self, now: datetime) -> None:
        with pytest.raises(ValidationError, match="has passed") as raised:
            ensure_unexpired(entry(expires_at=self.EXPIRES), now)
        assert raised.value.field == "expires_at"

    @pytest.mark.parametrize("expires", [EXPIRES, None], ids=["later", "never"])
    def test_succeeds_for_an_expiry_after_it_or_none(self, expires: datetime | None) -> None:
        made = entry(expires_at=expires)
        assert ensure_unexpired(made, self.EXPIRES - timedelta(microseconds=1)) is made


class TestFraming:
    @given(st.lists(st.binary(max_size=300), max_size=20))
    @example([b"", b"x" * 127, b"y" * 128, b"z" * 20000])
    def test_succeeds_framing_exactly_as_protobuf_serializes(self, items: list[bytes]) -> None:
        messages = [hotlist_pb2.HotlistEntryFields(reason=item.hex()) for item in items]
        serialized = [message.SerializeToString() for message in messages]
        expected = hotlist_pb2.HotlistEntryFieldsList(fields=messages).SerializeToString()
        assert frame_fields(serialized) == expected


class TestBulkChecks:
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["7ABC123", "8XY?4*", "bad plate", "A", "ABCDEFGHI"]),
                st.sampled_from(["stolen_vehicle", "civil_immigration", "no_such_type"]),
                st.sampled_from(["CA", "", "ZZ"]),
                st.sampled_from(["reason", "case_number", "contact"]),
                st.integers(min_value=0, max_value=600),
            ),
            max_size=12,
        )
    )
    @example([("7ABC123", "stolen_vehicle", "CA", "reason", 10)] * 3)
    @example([("7ABC123", "civil_immigration", "CA", "reason", 10)])
    @example([("7ABC123", "stolen_vehicle", "CA", "case_number", 65)])
    @example([("7ABC123", "stolen_vehicle", "CA", "contact", 201)])
    def test_acc7_bulk_checks_agree_with_entry_by_entry_checks(
        self, rows: list[tuple[str, str, str, str, int]]
    ) -> None:
        plates = [plate for plate, *_ in rows]
        fields = [
            hotlist_pb2.HotlistEntryFields(list_type=kind, state=state)
            for _, kind, state, *_ in rows
        ]
        for message, (*_, text, length) in zip(fields, rows, strict=True):
            setattr(message, text, "r" * length)
        expected = [problem_with(p, f) for p, f in zip(plates, fields, strict=True)]
        assert problems_in_bulk(plates, fields) == expected
