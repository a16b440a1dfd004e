"""Hotlists pulled between real nodes: signed, sealed, receipted on both sides, and never stale."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from alpr.federation.v1 import agreement_pb2, federation_service_pb2, federation_service_pb2_grpc
from federation.client import PartnerRefusedError
from federation.envelope import Envelope
from federation.exchange import check_exchange, sign_request
from federation.gate import DENIED
from federation.hotlist_sharing import PullResult
from gateway.cli import main
from node.ed25519 import Ed25519Key
from node.hotlists.entry import HotlistEntry, ListType
from node.identity import PrincipalKind
from node.store import create_engine
from tests.support.agencies import Agency, agree, running_agencies
from tests.support.clock import ManualClock
from tests.support.operator import Operator
from tests.support.pki import LAPD, LASD, Federation

RECEIVE = agreement_pb2.GRANT_RECEIVE_HOTLISTS
STOLEN = HotlistEntry(
    plate="7ABC123",
    state="CA",
    list_type=ListType.STOLEN_VEHICLE,
    reason="armed and dangerous",
    contact="LASD Auto Theft",
)
PARTIAL = HotlistEntry(plate="8XY?4*", list_type=ListType.AMBER_ALERT, reason="AMBER 26-3")


@pytest.fixture
def pair(
    federation: Federation,
    tmp_path: Path,
    database_url: str,
    partner_database_url: str,
    clock: ManualClock,
) -> Iterator[tuple[Agency, Agency, str]]:
    """LAPD and LASD, both on each engine; LASD lets LAPD receive its hotlists, not the reverse."""
    stores = {LAPD: database_url, LASD: partner_database_url}
    with running_agencies(federation, tmp_path, clock, (LAPD, LASD), stores) as found:
        lapd, lasd = found[LAPD], found[LASD]
        lapd.add_peer(lasd)
        lasd.add_peer(lapd)
        agreement_id = agree(lasd, lapd, we_grant=[RECEIVE], they_grant=[])
        lasd.node.services.hotlists.create_list("stolen")
        lasd.node.services.hotlists.add("stolen", [STOLEN, PARTIAL])
        yield lapd, lasd, agreement_id


def pull(agency: Agency, partner: str) -> PullResult:
    return agency.node.run(agency.node.services.sharing.pull(partner))


class TestPull:
    def test_succeeds_and_the_list_is_used_with_fields_decrypted(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, _, _ = pair
        result = pull(lapd, LASD)
        assert (result.added, result.refused, result.acknowledged) == (2, 0, True)
        [hit] = lapd.node.services.partner_lists.find("7ABC123")
        assert (hit.issuer_ori, hit.list_name, hit.entry) == (LASD, "stolen", STOLEN)
        [partial] = lapd.node.services.partner_lists.find("8XY947")
        assert partial.entry.is_partial
        assert lapd.node.services.partner_lists.find("7ABC124") == []

    def test_aud6_both_sides_hold_the_others_signature(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        key_of = {a.ori: Ed25519Key(a.node_key) for a in (lapd, lasd)}
        for agency, partner in ((lapd, LASD), (lasd, LAPD)):
            [record] = agency.node.services.ledger.exchanges()
            check = check_exchange(record, ours=key_of[agency.ori], theirs=key_of[partner])
            assert check.problems == []
        assert lasd.node.services.ledger.unacknowledged(timedelta(0)) == []
        served = lasd.audit_events("exchange.hotlist_served")
        assert json.loads(served[0].details)["entries"] == 2

    def test_hot6_entries_stop_matching_at_24h_and_are_purged(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        lapd, _, _ = pair
        pull(lapd, LASD)
        lists = lapd.node.services.partner_lists
        clock.advance(timedelta(hours=24) - timedelta(seconds=1))
        assert len(lists.find("7ABC123")) == 1
        assert lists.purge_expired() == []
        clock.advance(timedelta(seconds=2))
        assert lists.find("7ABC123") == []
        assert lists.purge_expired() == [LASD]
        assert lists.entry_count(LASD) == 0

    def test_hot5_a_cancellation_reaches_the_partner_in_the_next_delta(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        [stolen] = [s for s in lasd.node.services.hotlists.entries() if s.entry.plate == "7ABC123"]
        lasd.node.services.hotlists.cancel(stolen.entry_id)
        clock.advance(timedelta(hours=6))
        result = pull(lapd, LASD)
        assert (result.added, result.ended) == (0, 1)
        assert lapd.node.services.partner_lists.find("7ABC123") == []
        assert len(lapd.node.services.partner_lists.find("8XY947")) == 1


class TestDenials:
    def test_shr3_nothing_flows_after_the_sunset(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        lapd, lasd, _ = pair
        clock.advance(timedelta(days=90))
        with pytest.raises(Exception, match="no agreement in force"):
            pull(lapd, LASD)
        assert lasd.audit_events("exchange.denied") == []  # refused before asking

    def test_fails_after_revocation_with_the_uniform_denial(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, lasd, agreement_id = pair
        lasd.node.services.agreements.revoke(agreement_id, "partner left the program")
        # LAPD was not told (we revoke on LASD's side only): its pull is refused by LASD.
        with pytest.raises(PartnerRefusedError, match=DENIED):
            pull(lapd, LASD)
        [denial] = lasd.audit_events("exchange.denied")
        assert "no agreement in force" in json.loads(denial.details)["reason"]

    def test_fails_for_the_wrong_direction(self, pair: tuple[Agency, Agency, str]) -> None:
        _, lasd, _ = pair
        with pytest.raises(Exception, match="no agreement in force"):
            pull(lasd, LAPD)  # LAPD granted LASD nothing

    @pytest.mark.parametrize("skew", [timedelta(minutes=6), -timedelta(minutes=6)])
    def test_fails_for_a_request_outside_the_clock_skew(
        self,
        pair: tuple[Agency, Agency, str],
        federation: Federation,
        clock: ManualClock,
        skew: timedelta,
    ) -> None:
        lapd, lasd, _ = pair
        error = _send_raw_pull(lapd, lasd, federation, issued_at=clock() + skew, times=1)[0]
        assert error is not None
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (
            "outside the skew"
            in json.loads(lasd.audit_events("exchange.denied")[0].details)["reason"]
        )

    def test_fails_on_a_replayed_request(
        self, pair: tuple[Agency, Agency, str], federation: Federation, clock: ManualClock
    ) -> None:
        lapd, lasd, _ = pair
        first, second = _send_raw_pull(lapd, lasd, federation, issued_at=clock(), times=2)
        assert first is None
        assert second is not None
        assert (second.code(), second.details()) == (grpc.StatusCode.PERMISSION_DENIED, DENIED)
        [denial] = lasd.audit_events("exchange.denied")
        assert "used before" in json.loads(denial.details)["reason"]


class TestUniformDenialsAtTheResponder:
    def test_shr6_purpose_sunset_and_revocation_are_denied_alike_and_audited(
        self, pair: tuple[Agency, Agency, str], federation: Federation, clock: ManualClock
    ) -> None:
        lapd, lasd, agreement_id = pair
        answers = _send_raw_pull(
            lapd, lasd, federation, issued_at=clock(), times=1, purpose="civil immigration"
        )
        clock.advance(timedelta(days=90))  # the sunset
        answers += _send_raw_pull(lapd, lasd, federation, issued_at=clock(), times=1)
        lasd.node.services.agreements.revoke(agreement_id, "audit finding")
        answers += _send_raw_pull(lapd, lasd, federation, issued_at=clock(), times=1)
        first = answers[0]
        assert first is not None
        for answer in answers:
            assert answer is not None
            assert (answer.code(), answer.details()) == (grpc.StatusCode.PERMISSION_DENIED, DENIED)
            assert answer.trailing_metadata() == first.trailing_metadata()
        reasons = [json.loads(e.details)["reason"] for e in lasd.audit_events("exchange.denied")]
        assert "purpose 'civil immigration' is not in the agreement" in reasons[0]
        assert all("no agreement in force" in reason for reason in reasons[1:])
        assert len(reasons) == 3


def _send_raw_pull(
    lapd: Agency,
    lasd: Agency,
    federation: Federation,
    *,
    issued_at: datetime,
    times: int,
    purpose: str = "stolen vehicle recovery",
) -> list[grpc.RpcError | None]:
    """Send one signed LAPD pull to LASD `times` times, as a replaying attacker would."""
    services = lapd.node.services
    [agreement] = services.agreements.list(LASD)
    _, envelope = sign_request(
        services.sharing.signer,
        agreement=agreement,
        requesting_ori=LAPD,
        requesting_user="spiffe://test.alpr/agency/CA0194200/user/det-1",
        purpose=purpose,
        case_number="26-001",
        now=issued_at,
        hotlist_since=0,
    )
    outcomes: list[grpc.RpcError | None] = []
    credentials = federation.client(LAPD, PrincipalKind.NODE, "")
    with lasd.node.channel(credentials) as channel:
        stub = federation_service_pb2_grpc.FederationServiceStub(channel)
        for _ in range(times):
            try:
                stub.GetHotlist(
                    federation_service_pb2.GetHotlistRequest(request=envelope.to_proto()),
                    timeout=10,
                )
                outcomes.append(None)
            except grpc.RpcError as error:
                outcomes.append(error)
    return outcomes


class TestReceiptsVerify:
    def run_verify(self, agency: Agency, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        code = main(["receipts", "verify", str(agency.node.config.directory)])
        out, err = capsys.readouterr()
        assert code in (0, 1), err
        return code, out

    def test_aud6_succeeds_on_both_sides(
        self, pair: tuple[Agency, Agency, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        for agency in (lapd, lasd):
            code, out = self.run_verify(agency, capsys)
            assert code == 0
            assert "ok: both signatures verify" in out
            assert "1 exchanges: 1 complete, 0 unacknowledged (flagged), 0 failing" in out

    def test_aud6_flags_an_unacknowledged_exchange_and_fails_a_forged_receipt(
        self, pair: tuple[Agency, Agency, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        with _engine(lasd) as engine, engine.begin() as connection:
            connection.execute(text("UPDATE exchange SET acknowledgement = NULL"))
        code, out = self.run_verify(lasd, capsys)
        assert (code, "1 unacknowledged (flagged)" in out) == (0, True)

        with _engine(lapd) as engine, engine.begin() as connection:
            receipt = connection.execute(text("SELECT receipt FROM exchange")).scalar_one()
            forged = replace(Envelope.from_bytes(receipt), payload=b"another receipt")
            connection.execute(text("UPDATE exchange SET receipt = :r"), {"r": forged.to_bytes()})
        code, out = self.run_verify(lapd, capsys)
        assert code == 1
        assert "receipt: not enough valid signatures" in out
        assert "1 failing" in out


@contextmanager
def _engine(agency: Agency) -> Iterator[Engine]:
    engine = create_engine(agency.node.config.store_url)
    try:
        yield engine
    finally:
        engine.dispose()


class TestOperatorPull:
    def test_succeeds_through_the_admin_rpc_and_cli(
        self,
        pair: tuple[Agency, Agency, str],
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        lapd, _, _ = pair
        sergeant = Operator(lapd.node, federation, capsys, user="sgt-ray")
        out = sergeant("hotlists", "pull", LASD)
        assert f"pulled {LASD} to version 1: 2 added, 0 ended, 0 refused" in out
        assert "verified and acknowledged" in out
        [received] = lapd.audit_events("exchange.hotlist_received")
        assert received.actor == f"spiffe://test.alpr/agency/{LAPD}/user/sgt-ray"
