"""`alpr search` in process: LAPD's detective asks South Pasadena, which holds it (SHR-5)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from alpr.federation.v1 import agreement_pb2
from node.profile import Role
from node.reads import NewRead
from tests.support.agencies import Agency, agree, running_agencies
from tests.support.clock import START, ManualClock
from tests.support.nodes import make_node, serving
from tests.support.operator import Operator
from tests.support.pki import LAPD, SPD, Federation
from tests.support.users import PASSWORD, ready_user

PURPOSE = "Criminal investigations or proceedings"
ASK = ("search", "partners", "7ABC12?", "--since", "2026-11-25T11:00", "--until",
       "2026-11-25T13:00", "--purpose", PURPOSE, "--case", "26-00777")  # fmt: skip


@pytest.fixture
def pair(federation: Federation, tmp_path: Path, clock: ManualClock) -> Iterator[dict[str, Agency]]:
    """LAPD may ask SPD, whose profile approves each request; SPD saw 7ABC123 at START."""
    with running_agencies(
        federation, tmp_path, clock, (LAPD, SPD), profiles={SPD: "south_pasadena_pd"}
    ) as found:
        lapd, spd = found[LAPD], found[SPD]
        lapd.add_peer(spd)
        spd.add_peer(lapd)
        agree(spd, lapd, we_grant=[agreement_pb2.GRANT_ASK_PLATE_QUERIES], they_grant=[],
              purposes=(PURPOSE,))  # fmt: skip
        spd.node.services.reads.commit(
            "cam-1",
            [NewRead(plate="7ABC123", confidence=0.93, captured_at=START, latitude=34.1,
                     longitude=-118.15)],
        )  # fmt: skip
        yield found


class TestSearchCli:
    def test_shr5_acc6_the_detective_asks_lists_what_is_held_and_collects_it_once_approved(
        self, pair: dict[str, Agency], federation: Federation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        lapd, spd = pair[LAPD], pair[SPD]
        alpr = Operator(lapd.node, federation, capsys, user="detective")
        asked = alpr(*ASK)
        found = re.search(rf"{SPD}: pending approval, reference (\S+) ", asked)
        assert found, asked
        reference = found.group(1)
        [held] = [line for line in alpr("search", "held").splitlines() if reference in line]
        for shown in (SPD, "7ABC12?", "2026-11-25 11:00", "2026-11-25 13:00", "26-00777",
                      PURPOSE, "held"):  # fmt: skip
            assert shown in held
        spd.node.services.requests.decide(
            reference, approve=True, user="commander", reason="case 26-00777"
        )
        collected = alpr("search", "collect", SPD, reference)
        assert f"{SPD}: answered" in collected
        assert "7ABC123  2026-11-25 12:00:00 UTC  cam-1  34.10000, -118.15000  (0.93)" in collected
        assert reference not in alpr("search", "held")
        again = alpr("search", "collect", SPD, reference, expect=1)
        assert "FAILED_PRECONDITION" in again

    def test_fails_in_one_line_for_a_reference_never_held(
        self, pair: dict[str, Agency], federation: Federation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        alpr = Operator(pair[LAPD].node, federation, capsys, user="detective")
        refused = alpr("search", "collect", SPD, "no-such-reference", expect=1)
        assert refused.count("\n") == 1
        assert "NOT_FOUND" in refused

    def test_fails_without_a_case_number(
        self, pair: dict[str, Agency], federation: Federation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        alpr = Operator(pair[LAPD].node, federation, capsys, user="detective")
        without = [word for word in ASK if word not in ("--case", "26-00777")]
        with pytest.raises(SystemExit) as usage:
            alpr(*without)
        assert usage.value.code == 2


def test_acc3_on_a_node_requiring_logins_the_search_commands_send_the_kept_session(
    federation: Federation,
    tmp_path: Path,
    clock: ManualClock,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = replace(make_node(federation, tmp_path / "lapd", LAPD), require_login=True)
    with serving(config, clock=clock) as node:
        ready_user(node.services.users, "detective", Role.DATA_USER)
        alpr = Operator(node, federation, capsys, user="detective", session=tmp_path / "session")
        assert "UNAUTHENTICATED" in alpr("search", "held", expect=1)
        monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
        alpr("login", "--user", "detective", "--password-stdin")
        assert alpr("search", "held").split() == ["partner", "reference", "plate", "from", "to",
                                                  "case", "purpose", "asked", "state"]  # fmt: skip
