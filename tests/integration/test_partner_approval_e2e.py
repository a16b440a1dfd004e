"""A partner's plate query held for approval, across two real nodes (SHR-5, SHR-6, AUD-6).

South Pasadena PD's profile approves each request (001 430.8(b)): its node keeps LAPD's
query on file and answers "held for approval"; its commander (a system administrator,
the profile's approver role) approves or denies; LAPD's detective collects the answer
(the reads of the held window, searched then) or the uniform denial.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from alpr.admin.v1 import admin_service_pb2_grpc, users_pb2
from alpr.admin.v1 import partner_requests_pb2 as req_pb
from alpr.federation.v1 import agreement_pb2
from alpr.search.v1 import search_service_pb2 as pb
from alpr.search.v1 import search_service_pb2_grpc as pb_grpc
from federation.exchange import check_ledger
from node.ed25519 import Ed25519Key
from node.identity import PrincipalKind
from node.partner_requests import HeldQueries
from node.profile import Role
from node.reads import NewRead
from node.store import create_engine
from tests.support.agencies import Agency, agree, running_agencies
from tests.support.clock import START, ManualClock
from tests.support.pki import LAPD, SPD, Federation
from tests.support.users import PASSWORD, ready_user

PURPOSE = "Criminal investigations or proceedings"
CASE = "26-00777"
TIMEOUT = 30
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
def pair(
    federation: Federation, tmp_path: Path, database_url: str, clock: ManualClock
) -> Iterator[dict[str, Agency]]:
    """LAPD (each engine) may ask SPD, whose profile approves each request; SPD saw 7ABC123."""
    with running_agencies(
        federation,
        tmp_path,
        clock,
        (LAPD, SPD),
        {LAPD: database_url},
        {SPD: "south_pasadena_pd"},
    ) as found:
        lapd, spd = found[LAPD], found[SPD]
        lapd.add_peer(spd)
        spd.add_peer(lapd)
        agree(spd, lapd, we_grant=[agreement_pb2.GRANT_ASK_PLATE_QUERIES], they_grant=[],
              purposes=(PURPOSE,))  # fmt: skip
        spd.node.services.reads.commit(
            "cam-1", [NewRead(plate="7ABC123", confidence=0.93, captured_at=START)]
        )
        users = spd.node.services.users
        ready_user(users, "commander", Role.SYSTEM_ADMINISTRATOR)
        ready_user(users, "custodian", Role.CUSTODIAN_OF_RECORDS)
        yield found


def search(lapd: Agency, federation: Federation) -> pb_grpc.SearchServiceStub:
    channel = lapd.node.channel(federation.client(LAPD, PrincipalKind.USER, "detective"))
    return pb_grpc.SearchServiceStub(channel)


def ask(lapd: Agency, federation: Federation, plate: str = "7ABC12?") -> pb.PartnerAnswer:
    """LAPD's detective asks its partners where `plate` was seen around START; SPD's part."""
    request = pb.SearchPartnersRequest(
        plate=plate, purpose=PURPOSE, case_number=CASE, deadline_ms=5000
    )
    request.since.FromDatetime(START - timedelta(hours=1))
    request.until.FromDatetime(START + timedelta(hours=1))
    [answer] = search(lapd, federation).SearchPartners(request, timeout=TIMEOUT).partners
    return answer


def collect(lapd: Agency, federation: Federation, reference: str) -> pb.PartnerAnswer:
    request = pb.CollectPartnerAnswerRequest(partner_ori=SPD, approval_reference=reference)
    return search(lapd, federation).CollectPartnerAnswer(request, timeout=TIMEOUT).partner


def approver(spd: Agency, federation: Federation, name: str) -> tuple[
    admin_service_pb2_grpc.AdminServiceStub, Metadata
]:  # fmt: skip
    """SPD's AdminService as user `name`, and the session it logged in with."""
    channel = spd.node.channel(federation.client(SPD, PrincipalKind.USER, name))
    stub = admin_service_pb2_grpc.AdminServiceStub(channel)
    login = users_pb2.LoginRequest(user_name=name, password=PASSWORD)
    token = stub.Login(login, timeout=TIMEOUT).session_token
    return stub, (("authorization", f"Bearer {token}"),)


def decide(
    spd: Agency, federation: Federation, reference: str, *, approve: bool, name: str = "commander"
) -> req_pb.PartnerRequest:
    stub, session = approver(spd, federation, name)
    if approve:
        request = req_pb.ApprovePartnerRequestRequest(reference=reference, reason="case 26-00777")
        return stub.ApprovePartnerRequest(request, metadata=session, timeout=TIMEOUT).request
    denial = req_pb.DenyPartnerRequestRequest(reference=reference, reason="no need shown")
    return stub.DenyPartnerRequest(denial, metadata=session, timeout=TIMEOUT).request


def code_of(error: BaseException) -> grpc.StatusCode:
    assert isinstance(error, grpc.Call)
    return error.code()


class TestHeldForApproval:
    def test_shr5_the_query_waits_on_file_until_approved_then_lapd_collects_its_reads(
        self, pair: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, spd = pair[LAPD], pair[SPD]
        held = ask(lapd, federation)
        assert (held.outcome, list(held.reads)) == (pb.PARTNER_OUTCOME_PENDING_APPROVAL, [])
        assert held.approval_reference
        stub, session = approver(spd, federation, "commander")
        listed = stub.ListPartnerRequests(
            req_pb.ListPartnerRequestsRequest(), metadata=session, timeout=TIMEOUT
        ).requests
        assert [(r.reference, r.partner_ori, r.requesting_user, r.purpose, r.case_number,
                 r.plate, r.state) for r in listed] == [
            (held.approval_reference, LAPD, f"spiffe://test.alpr/agency/{LAPD}/user/detective",
             PURPOSE, CASE, "7ABC12?", req_pb.PARTNER_REQUEST_STATE_PENDING)
        ]  # fmt: skip
        # Still held: collecting now gets the held answer again, and nothing else.
        again = collect(lapd, federation, held.approval_reference)
        assert (again.outcome, list(again.reads)) == (pb.PARTNER_OUTCOME_PENDING_APPROVAL, [])
        decided = decide(spd, federation, held.approval_reference, approve=True)
        assert (decided.state, decided.decided_by, decided.decision_reason) == (
            req_pb.PARTNER_REQUEST_STATE_APPROVED,
            f"spiffe://test.alpr/agency/{SPD}/user/commander",
            "case 26-00777",
        )
        # The approved answer searches the held window at collection: a read since is in it.
        spd.node.services.reads.commit(
            "cam-2",
            [NewRead(plate="7ABC129", confidence=0.9, captured_at=START + timedelta(minutes=5))],
        )
        answered = collect(lapd, federation, held.approval_reference)
        assert answered.outcome == pb.PARTNER_OUTCOME_ANSWERED
        assert sorted(read.plate for read in answered.reads) == ["7ABC123", "7ABC129"]
        [approved] = [json.loads(e.details) for e in spd.audit_events("partner_request.approved")]
        assert (approved["reference"], approved["partner"], approved["reason"]) == (
            held.approval_reference,
            LAPD,
            "case 26-00777",
        )
        with pytest.raises(grpc.RpcError) as twice:
            collect(lapd, federation, held.approval_reference)
        assert code_of(twice.value) is grpc.StatusCode.FAILED_PRECONDITION

    def test_aud6_the_held_answer_and_the_collection_are_receipted_and_acknowledged(
        self, pair: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, spd = pair[LAPD], pair[SPD]
        held = ask(lapd, federation)
        decide(spd, federation, held.approval_reference, approve=True)
        collect(lapd, federation, held.approval_reference)
        lapd.node.run(lapd.node.services.queries.settled())  # acknowledgements delivered
        for agency in (lapd, spd):
            services = agency.node.services
            ours = Ed25519Key(agency.node_key)
            checks = check_ledger(services.ledger, ours=ours, peers=services.peers.every())
            assert [check.problems for check in checks] == [[], []]
        served = [json.loads(e.details) for e in spd.audit_events("exchange.plate_query_served")]
        assert [
            ("held_for_approval" in d, d.get("collects"), d.get("results")) for d in served
        ] == [
            (True, None, None),
            (False, held.approval_reference, 1),
        ]

    def test_shr6_a_denied_or_unknown_request_is_collected_as_the_uniform_denial(
        self, pair: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, spd = pair[LAPD], pair[SPD]
        held = ask(lapd, federation)
        # A plate SPD never saw is held alike: the held answer says nothing of the data.
        unseen = ask(lapd, federation, plate="1NONE00")
        assert (unseen.outcome, list(unseen.reads), unseen.truncated) == (
            held.outcome,
            [],
            False,
        )
        decide(spd, federation, held.approval_reference, approve=False)
        denied = collect(lapd, federation, held.approval_reference)
        assert (denied.outcome, list(denied.reads), denied.detail) == (
            pb.PARTNER_OUTCOME_REFUSED,
            [],
            "",
        )
        # A reference SPD never gave: the same denial.
        engine = create_engine(lapd.node.config.store_url)
        HeldQueries(engine, clock=lapd.node.services.clock).keep(
            exchange_id="00000000-0000-4000-8000-000000000000", partner_ori=SPD,
            reference="no-such-reference", requesting_user="detective", purpose=PURPOSE,
            case_number=CASE, plate="7ABC123", since=START, until=START + timedelta(hours=1),
        )  # fmt: skip
        engine.dispose()
        unknown = collect(lapd, federation, "no-such-reference")
        assert (unknown.outcome, unknown.detail) == (pb.PARTNER_OUTCOME_REFUSED, "")
        reasons = [json.loads(e.details)["reason"] for e in spd.audit_events("exchange.denied")]
        assert len(reasons) == 2
        assert "denied" in reasons[0]
        assert "no partner request" in reasons[1]

    def test_shr5_only_the_profiles_approver_role_may_decide(
        self, pair: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, spd = pair[LAPD], pair[SPD]
        held = ask(lapd, federation)
        # South Pasadena's approver is the system administrator, not the custodian.
        with pytest.raises(grpc.RpcError) as custodian:
            decide(spd, federation, held.approval_reference, approve=True, name="custodian")
        assert code_of(custodian.value) is grpc.StatusCode.PERMISSION_DENIED
        ready_user(spd.node.services.users, "clerk", Role.DATA_USER)
        with pytest.raises(grpc.RpcError) as clerk:
            decide(spd, federation, held.approval_reference, approve=True, name="clerk")
        assert code_of(clerk.value) is grpc.StatusCode.PERMISSION_DENIED
        assert spd.audit_events("partner_request.approved") == []
        assert collect(lapd, federation, held.approval_reference).outcome == (
            pb.PARTNER_OUTCOME_PENDING_APPROVAL
        )
