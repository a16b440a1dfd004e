"""`alpr holds` against a real node: place, list, review, release, all audited (RET-4)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from node.reads import NewRead
from tests.support.clock import START, ManualClock
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.operator import Operator
from tests.support.pki import LAPD, Federation


@pytest.fixture
def node(federation: Federation, tmp_path: Path, clock: ManualClock) -> Iterator[RunningNode]:
    with serving(make_node(federation, tmp_path / "lapd", LAPD), clock=clock) as running:
        yield running


@pytest.fixture
def alpr(node: RunningNode, federation: Federation, capsys: pytest.CaptureFixture[str]) -> Operator:
    return Operator(node, federation, capsys, user="custodian", prefix=["holds"])


PLACE = (
    "place", "--plate", "7ABC12?", "--since", "2026-11-25T00:00", "--until", "2026-11-26",
    "--case", "26-HOM-4", "--reason", "trial evidence", "--investigator", "Det. Ruiz x100",
    "--approved-by", "Lt. Ortiz",
)  # fmt: skip


class TestHolds:
    def test_ret4_a_hold_placed_keeps_reads_past_both_limits_until_released(
        self, node: RunningNode, alpr: Operator, clock: ManualClock
    ) -> None:
        services = node.services
        services.reads.commit(
            "cam-1", [NewRead(plate="7ABC123", confidence=0.9, captured_at=START)]
        )
        hold_id = alpr(*PLACE).split()[3]
        listed = alpr("list")
        assert hold_id in listed
        assert "26-HOM-4" in listed
        clock.advance(timedelta(days=7 * 366))  # past LAPD's two years and five years
        assert "DUE" in alpr("list")
        run = services.retention.run(actor="system", agency=LAPD)
        assert (run.deleted, run.held) == (0, 1)
        alpr("review", hold_id)
        assert "DUE" not in alpr("list")
        alpr("release", hold_id)
        assert hold_id not in alpr("list")
        assert services.retention.run(actor="system", agency=LAPD).deleted == 1
        kinds = [e.kind for e in services.audit.events() if e.kind.startswith("legal_hold.")]
        assert kinds == ["legal_hold.placed", "legal_hold.reviewed", "legal_hold.released"]

    def test_fails_in_one_line_without_an_approval_or_for_an_unknown_hold(
        self, alpr: Operator
    ) -> None:
        without = [*PLACE[:-1], " "]
        assert "supervisor_approval" in alpr(*without, expect=1)
        assert "NOT_FOUND" in alpr("release", "no-such-hold", expect=1)
