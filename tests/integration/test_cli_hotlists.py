"""Operators keep their agency's hotlists with `alpr hotlists`, through their own node."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.servicers import admin_hotlists
from node.hotlists.importers import CSV_FIELDS
from tests.support.clock import ManualClock
from tests.support.nodes import make_node, serving
from tests.support.operator import Operator
from tests.support.pki import LAPD, Federation

DATA = Path(__file__).parent.parent / "data" / "hotlists"
ENTRY_ID = r"[0-9a-f-]{36}"


@pytest.fixture
def alpr(
    federation: Federation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Operator]:
    with serving(make_node(federation, tmp_path / "lapd", LAPD), clock=ManualClock()) as node:
        operator = Operator(node, federation, capsys, prefix=("hotlists",))
        operator("create", "stolen", "--description", "stolen vehicles")
        yield operator


def added_id(out: str) -> str:
    match = re.match(rf"added ({ENTRY_ID}) ", out)
    assert match is not None, out
    return match.group(1)


class TestHotlistsByCli:
    def test_succeeds_from_creation_to_removal(self, alpr: Operator) -> None:
        out = alpr("add", "stolen", "--plate", "7abc-123", "--list-type", "stolen",
                   "--state", "CA", "--case-number", "24-001234",
                   "--expires", "2027-01-01")  # fmt: skip
        assert re.fullmatch(rf"added {ENTRY_ID} 7ABC123 \(stolen_vehicle\) to stolen "
                            r"at version 1\n", out)  # fmt: skip
        whole = added_id(out)
        listed = alpr("list")
        assert re.search(r"^stolen +1 +\d{4}-\d\d-\d\d +stolen vehicles$", listed, re.M)
        assert listed.endswith("version 1\n")
        entries = alpr("entries", "stolen")
        assert re.search(rf"^{whole}  stolen  7ABC123  CA +stolen_vehicle  24-001234  "
                         r"2027-01-01 00:00$", entries, re.M)  # fmt: skip
        assert f"removed {whole} 7ABC123 from stolen" in alpr("remove", whole)
        assert whole not in alpr("entries")

    def test_cap5_succeeds_adding_and_listing_a_partial_plate(self, alpr: Operator) -> None:
        partial = added_id(alpr("add", "stolen", "--plate", "7ab?12*", "--list-type", "felony"))
        assert re.search(rf"^{partial}  stolen  7AB\?12\*  -", alpr("entries"), re.M)

    def test_hot5_succeeds_cancelling_an_entry_found_in_error(self, alpr: Operator) -> None:
        entry_id = added_id(alpr("add", "stolen", "--plate", "7ABC123", "--list-type", "SV"))
        out = alpr("cancel", entry_id, "--reason", "recovered, NCIC record cleared")
        assert out == f"cancelled {entry_id} 7ABC123 on stolen (HOT-5)\n"
        assert entry_id not in alpr("entries", "stolen")
        assert "version 2" in alpr("list")

    def test_acc7_fails_in_one_line_for_civil_immigration(self, alpr: Operator) -> None:
        err = alpr("add", "stolen", "--plate", "5IMM100", "--list-type", "immigration", expect=1)
        assert err.count("\n") == 1
        assert "INVALID_ARGUMENT entries[0].list_type: category forbidden by policy (ACC-7)" in err

    def test_fails_in_one_line_for_an_expiry_that_has_passed(self, alpr: Operator) -> None:
        err = alpr("add", "stolen", "--plate", "7ABC123", "--list-type", "stolen",
                   "--expires", "2001-01-01", expect=1)  # fmt: skip
        assert err.count("\n") == 1
        assert "INVALID_ARGUMENT entries[0].expires_at: 2001-01-01T00:00:00+00:00 has passed" in err
        assert "7ABC123" not in alpr("entries")

    @pytest.mark.parametrize("expires", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00+05:00"])
    def test_fails_with_usage_for_an_expiry_past_the_calendar_in_utc(
        self, alpr: Operator, expires: str
    ) -> None:
        err = alpr("add", "stolen", "--plate", "7ABC123", "--list-type", "stolen",
                   "--expires", expires, expect=2)  # fmt: skip
        assert err == f"alpr: error: --expires: {expires!r} is outside years 1 to 9999 in UTC\n"

    def test_fails_in_one_line_for_a_name_spanning_lines(self, alpr: Operator) -> None:
        err = alpr("create", "stolen\nfake  99  2026-01-01", expect=1)
        assert err.count("\n") == 1
        assert "INVALID_ARGUMENT name: 'stolen\\nfake  99  2026-01-01' holds a control" in err
        assert "fake" not in alpr("list")

    def test_fails_in_one_line_for_an_unknown_entry(self, alpr: Operator) -> None:
        err = alpr("cancel", "no-such-entry", "--reason", "in error", expect=1)
        assert err.count("\n") == 1
        assert "NOT_FOUND no hotlist entry no-such-entry" in err


class TestHotlistImportByCli:
    def test_acc7_succeeds_importing_csv_and_listing_every_rejected_line(
        self, alpr: Operator
    ) -> None:
        out = alpr("import", "stolen", str(DATA / "sample.csv"), "--format", "csv")
        lines = out.splitlines()
        assert lines[:2] == ["imported 10 entries into stolen (version 1)", "rejected 2 lines:"]
        assert lines[2] == "  line 12: list_type: category forbidden by policy (ACC-7)"
        assert lines[3].startswith("    5IMM100,CA,civil_immigration,")
        assert lines[4] == "  line 13: line: has 9 cells; the header has 8"
        assert "7AB?12*" in alpr("entries", "stolen")

    def test_succeeds_importing_a_large_file_showing_its_first_rejected_lines(
        self, alpr: Operator, tmp_path: Path
    ) -> None:
        # Every rejected line shown whole made a 13 MB reply: past the 4 MiB the CLI
        # receives, so it reported RESOURCE_EXHAUSTED for an import that had committed.
        good, bad = 1_000, 50_000
        rows = [f"G{i:05d},stolen" if i % 51 == 0 else f"R{i:06d},nonsense"
                for i in range(good + bad)]  # fmt: skip
        large = tmp_path / "large.csv"
        large.write_text("plate,list_type\n" + "\n".join(rows) + "\n")
        lines = alpr("import", "stolen", str(large), "--format", "csv").splitlines()
        shown = admin_hotlists.MAX_REJECTED_SHOWN
        assert lines[:2] == [f"imported {good} entries into stolen (version 1)",
                             f"rejected {bad} lines:"]  # fmt: skip
        assert lines[2].startswith("  line 3: list_type: 'nonsense' is not a list type")
        assert lines[3] == "    R000001,nonsense"
        assert lines[2 + 2 * shown :] == [f"  ... and {bad - shown} more"]
        assert re.search(rf"^stolen +{good} ", alpr("list"), re.M)

    def test_succeeds_importing_csv_through_a_column_mapping(
        self, alpr: Operator, tmp_path: Path
    ) -> None:
        theirs = tmp_path / "theirs.csv"
        theirs.write_text("Tag,Kind,Notes\n8XYZ456,Stolen,black pickup\n")
        out = alpr("import", "stolen", str(theirs), "--format", "csv",
                   "--map", "Tag=plate", "--map", " Kind = list_type ")  # fmt: skip
        assert out == "imported 1 entries into stolen (version 1)\n"
        assert "8XYZ456" in alpr("entries")

    def test_succeeds_importing_a_clew_file_of_one_list_type(self, alpr: Operator) -> None:
        out = alpr("import", "stolen", str(DATA / "sample_clew.txt"), "--format", "clew",
                   "--list-type", "stolen_vehicle")  # fmt: skip
        assert out.startswith("imported 8 entries into stolen (version 1)\nrejected 4 lines:\n")
        assert "6DEF321" in alpr("entries")

    def test_succeeds_importing_an_ncic_extract(self, alpr: Operator) -> None:
        out = alpr("import", "stolen", str(DATA / "sample_ncic.txt"), "--format", "ncic")
        assert out.startswith("imported 9 entries into stolen (version 1)\nrejected 3 lines:\n")

    def test_hot5_succeeds_replacing_a_list_with_a_reissued_ncic_extract(
        self, alpr: Operator, tmp_path: Path
    ) -> None:
        extract = DATA / "sample_ncic.txt"
        alpr("import", "stolen", str(extract), "--format", "ncic")
        reissued = tmp_path / "reissued.txt"
        reissued.write_text("".join(line for line in extract.read_text().splitlines(True)
                                    if "7ABC123" not in line))  # fmt: skip
        out = alpr("import", "stolen", str(reissued), "--format", "ncic", "--replace")
        assert out.startswith("replaced stolen: 0 added, 8 kept, 1 removed (version 2)\n"
                              "rejected 3 lines:\n")  # fmt: skip
        assert "7ABC123" not in alpr("entries", "stolen")
        again = alpr("import", "stolen", str(reissued), "--format", "ncic", "--replace")
        assert again.startswith("replaced stolen: 0 added, 8 kept, 0 removed (version 2)\n")

    def test_fails_in_one_line_replacing_a_missing_list(self, alpr: Operator) -> None:
        err = alpr("import", "nope", str(DATA / "sample_ncic.txt"), "--format", "ncic",
                   "--replace", expect=1)  # fmt: skip
        assert err.count("\n") == 1
        assert "NOT_FOUND no hotlist named 'nope'" in err

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            pytest.param(
                ["--map", "plate"], "--map: 'plate' is not 'Their Header=field'", id="map"
            ),
            pytest.param(["--map", "=plate"], "--map: '=plate' is not", id="map-without-header"),
        ],
    )
    def test_fails_with_usage_for_a_malformed_map(
        self, alpr: Operator, options: list[str], message: str
    ) -> None:
        err = alpr("import", "stolen", str(DATA / "sample.csv"), "--format", "csv", *options,
                   expect=2)  # fmt: skip
        assert message in err

    def test_fails_in_one_line_for_a_map_naming_no_column_of_the_file(
        self, alpr: Operator, tmp_path: Path
    ) -> None:
        theirs = tmp_path / "theirs.csv"
        theirs.write_text("Tag,list_type,Notes\n8XYZ456,Stolen,black pickup\n")
        err = alpr("import", "stolen", str(theirs), "--format", "csv",
                   "--map", "Tag=plate", "--map", "Note=reason", expect=1)  # fmt: skip
        assert err.count("\n") == 1
        assert "INVALID_ARGUMENT column_mapping: mapping: 'Note' is no column of the header" in err
        assert "8XYZ456" not in alpr("entries")

    def test_succeeds_showing_our_fields_and_the_expiry_format_in_help(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exited:
            main(["hotlists", "import", "--help"])
        assert exited.value.code == 0
        shown = " ".join(capsys.readouterr().out.split())
        assert ", ".join(CSV_FIELDS) in shown
        assert "expires_at is ISO 8601 with an offset, e.g. 2026-07-01T00:00:00Z" in shown

    def test_fails_with_usage_for_a_file_it_cannot_read(
        self, alpr: Operator, tmp_path: Path
    ) -> None:
        missing = tmp_path / "missing.csv"
        err = alpr("import", "stolen", str(missing), "--format", "csv", expect=2)
        assert err == f"alpr: error: {missing}: cannot be read: No such file or directory\n"

    def test_fails_in_one_line_for_a_file_without_a_plate_column(
        self, alpr: Operator, tmp_path: Path
    ) -> None:
        bad = tmp_path / "bad.csv"
        bad.write_text("tag,kind\n7ABC123,stolen\n")
        err = alpr("import", "stolen", str(bad), "--format", "csv", expect=1)
        assert err.count("\n") == 1
        assert "INVALID_ARGUMENT content: header: no plate column" in err
