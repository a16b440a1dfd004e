"""`alpr reads correct` and `alpr incidents` against a real node (CAP-4, SEC-3)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.reads import NewRead
from tests.support.clock import START, ManualClock
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.operator import Operator
from tests.support.pki import LAPD, Federation

ID = r"[0-9a-f-]{36}"


@pytest.fixture
def node(federation: Federation, tmp_path: Path, clock: ManualClock) -> Iterator[RunningNode]:
    with serving(make_node(federation, tmp_path / "lapd", LAPD), clock=clock) as running:
        yield running


@pytest.fixture
def alpr(node: RunningNode, federation: Federation, capsys: pytest.CaptureFixture[str]) -> Operator:
    return Operator(node, federation, capsys)


def record(alpr: Operator, persons: int, discovered: str = "2026-11-25T08:00") -> str:
    return alpr("incidents", "record", "--description", f"export of {persons} persons stolen",
                "--discovered", discovered, "--records", "1200",
                "--persons", str(persons))  # fmt: skip


def incident_id(out: str) -> str:
    match = re.match(rf"recorded incident ({ID}):", out)
    assert match is not None, out
    return match.group(1)


class TestReadCorrectionsByCli:
    def test_cap4_succeeds_correcting_a_read_which_stays_as_read(
        self, node: RunningNode, alpr: Operator
    ) -> None:
        [read_id] = node.services.reads.commit(
            "cam-1", [NewRead(plate="7ABC128", confidence=0.61, captured_at=START)]
        ).read_ids
        out = alpr("reads", "correct", read_id, "--plate", "7ABC123", "--reason", "crop checked")
        assert re.fullmatch(rf"corrected read {read_id} to 7ABC123 \(correction {ID}\); "
                            r"the read stays as read \(CAP-4\)\n", out)  # fmt: skip
        [correction] = node.services.corrections.of([read_id])[read_id]
        assert (correction.plate, correction.reason) == ("7ABC123", "crop checked")
        assert [read.plate for read in node.stored_reads()] == ["7ABC128"]

    def test_fails_in_one_line_for_an_unknown_read(self, alpr: Operator) -> None:
        err = alpr("reads", "correct", "no-such-read", "--plate", "7ABC123", "--reason", "x",
                   expect=1)  # fmt: skip
        assert err.count("\n") == 1
        assert "NOT_FOUND" in err


class TestIncidentsByCli:
    def test_sec3_succeeds_recording_and_listing_with_500_persons_for_the_ag_form(
        self, alpr: Operator
    ) -> None:
        small = record(alpr, 499, discovered="2026-11-24T08:00")
        assert re.fullmatch(rf"recorded incident {ID}: 1200 records, 499 persons; under 500 "
                            r"persons: not for the Attorney General's form \(SEC-3\)\n",
                            small)  # fmt: skip
        large = record(alpr, 500)
        assert large.endswith("500 persons; report it on the Attorney General's form (SEC-3)\n")
        header, *rows = alpr("incidents", "list").splitlines()
        assert header.split() == ["incident", "discovered", "records", "persons", "AG", "form",
                                  "recorded", "by", "description"]  # fmt: skip
        assert [row.split()[0] for row in rows] == [incident_id(large), incident_id(small)]
        assert re.fullmatch(rf"{ID}  2026-11-25 08:00  1200 +500 +yes +operator +"
                            "export of 500 persons stolen", rows[0])  # fmt: skip

    def test_fails_in_one_line_for_a_negative_count(self, alpr: Operator) -> None:
        err = alpr("incidents", "record", "--description", "x", "--discovered", "2026-11-25",
                   "--records", "1", "--persons", "-1", expect=1)  # fmt: skip
        assert err.count("\n") == 1
        assert "INVALID_ARGUMENT" in err
        assert "affected_persons" in err
        assert alpr("incidents", "list").splitlines()[1:] == []
