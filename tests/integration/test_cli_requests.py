"""`alpr requests` in process against a real South Pasadena node: its approver decides (SHR-5)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from node.partner_requests import FiledRequest
from node.profile import Role
from tests.support.clock import START, ManualClock
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.operator import Operator
from tests.support.pki import LAPD, SPD, Federation
from tests.support.users import PASSWORD, ready_user


@pytest.fixture
def node(federation: Federation, tmp_path: Path, clock: ManualClock) -> Iterator[RunningNode]:
    config = make_node(federation, tmp_path / "spd", SPD, profile="south_pasadena_pd")
    with serving(config, clock=clock) as running:
        ready_user(running.services.users, "commander", Role.SYSTEM_ADMINISTRATOR)
        yield running


def held(node: RunningNode, exchange_id: str) -> str:
    """LAPD's query held on file, as the responder files it; its reference."""
    return node.services.requests.file(
        FiledRequest(
            exchange_id=exchange_id, partner_ori=LAPD, agreement_id="a-1",
            requesting_user=f"spiffe://test.alpr/agency/{LAPD}/user/detective",
            purpose="Criminal investigations or proceedings", case_number="26-00777",
            judicial_warrant="", plate="7ABC12?", since=START, until=START + timedelta(hours=1),
        )
    ).reference  # fmt: skip


class TestRequestsCli:
    def test_shr5_the_approver_lists_approves_and_denies_each_decision_audited(
        self,
        node: RunningNode,
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        first, second = held(node, "x-1"), held(node, "x-2")
        alpr = Operator(node, federation, capsys, user="commander", session=tmp_path / "s")
        monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
        alpr("login", "--user", "commander", "--password-stdin")
        listed = alpr("requests", "list")
        assert first in listed
        assert "detective" in listed
        assert "26-00777" in listed
        alpr("requests", "approve", first, "--reason", "case 26-00777")
        alpr("requests", "deny", second, "--reason", "no need shown")
        assert first not in alpr("requests", "list")
        again = alpr("requests", "deny", first, "--reason", "changed my mind", expect=1)
        assert "FAILED_PRECONDITION" in again
        decisions = [
            (event.kind, json.loads(event.details)["reason"])
            for event in node.services.audit.events(
                kinds=["partner_request.approved", "partner_request.denied"]
            )
        ]
        assert decisions == [
            ("partner_request.approved", "case 26-00777"),
            ("partner_request.denied", "no need shown"),
        ]

    def test_fails_in_one_line_without_a_login(
        self, node: RunningNode, federation: Federation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        alpr = Operator(node, federation, capsys, user="commander")
        assert "UNAUTHENTICATED" in alpr("requests", "list", expect=1)
