"""A partner's plate query held for approval, across two real nodes (SHR-5, SHR-6, AUD-6).

South Pasadena PD's profile approves each request (001 430.8(b)): its node keeps LAPD's
query on file and answers "held for approval"; its commander (a system administrator,
the profile's approver role) approves or denies; LAPD's detective collects the answer
(the reads of the held window, searched then) or the uniform denial.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, timedelta
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
from tests.support.nodes import RunningNode, make_node, serving
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


def search(
    lapd: Agency, federation: Federation, user: str = "detective"
) -> pb_grpc.SearchServiceStub:
    channel = lapd.node.channel(federation.client(LAPD, PrincipalKind.USER, user))
    return pb_grpc.SearchServiceStub(channel)


def ask(
    lapd: Agency,
    federation: Federation,
    plate: str = "7ABC12?",
    *,
    user: str = "detective",
    case_number: str = CASE,
) -> pb.PartnerAnswer:
    """LAPD's `user` asks its partners where `plate` was seen around START; SPD's part."""
    request = pb.SearchPartnersRequest(
        plate=plate, purpose=PURPOSE, case_number=case_number, deadline_ms=5000
    )
    request.since.FromDatetime(START - timedelta(hours=1))
    request.until.FromDatetime(START + timedelta(hours=1))
    [answer] = search(lapd, federation, user).SearchPartners(request, timeout=TIMEOUT).partners
    return answer


def collect(
    lapd: Agency, federation: Federation, reference: str, user: str = "detective"
) -> pb.PartnerAnswer:
    request = pb.CollectPartnerAnswerRequest(partner_ori=SPD, approval_reference=reference)
    return search(lapd, federation, user).CollectPartnerAnswer(request, timeout=TIMEOUT).partner


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


def held_queries(
    lapd: RunningNode, federation: Federation, user: str = "detective", *, login: bool = False
) -> list[pb.HeldQuery]:
    """Every page of LAPD `user`'s ListHeldQueries, one a page; logged in first if `login`."""
    channel = lapd.channel(federation.client(LAPD, PrincipalKind.USER, user))
    session: Metadata = ()
    if login:
        request = users_pb2.LoginRequest(user_name=user, password=PASSWORD)
        answer = admin_service_pb2_grpc.AdminServiceStub(channel).Login(request, timeout=TIMEOUT)
        session = (("authorization", f"Bearer {answer.session_token}"),)
    stub, token = pb_grpc.SearchServiceStub(channel), ""
    listed: list[pb.HeldQuery] = []
    while True:
        asked = pb.ListHeldQueriesRequest(page_size=1, page_token=token)
        page = stub.ListHeldQueries(asked, metadata=session, timeout=TIMEOUT)
        listed += page.held_queries
        token = page.next_page_token
        if not token:
            return listed


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
        [seen] = [json.loads(e.details) for e in spd.audit_events("partner_request.listed")]
        assert seen["shown"] == [held.approval_reference]  # the approver's look (AUD-1)
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
        # Released for the detective's case: another investigator may not collect it.
        with pytest.raises(grpc.RpcError) as other:
            collect(lapd, federation, held.approval_reference, user="analyst")
        assert code_of(other.value) is grpc.StatusCode.PERMISSION_DENIED
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
            checks = check_ledger(services.ledger, ours=ours, peers=services.peers)
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
            reference="no-such-reference", purpose=PURPOSE,
            requesting_user=f"spiffe://test.alpr/agency/{LAPD}/user/detective",
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


class TestListHeldQueries:
    def test_shr5_shr7_acc6_an_investigator_lists_their_own_held_queries_until_answered(
        self, pair: dict[str, Agency], federation: Federation, clock: ManualClock
    ) -> None:
        lapd, spd = pair[LAPD], pair[SPD]
        first = ask(lapd, federation)
        clock.advance(timedelta(seconds=1))
        second = ask(lapd, federation, "3LBY007", case_number="26-00778")
        theirs = ask(lapd, federation, "8XY947", user="analyst")
        [shown, _] = listed = held_queries(lapd.node, federation)
        assert [(q.partner_ori, q.approval_reference, q.plate, q.purpose, q.case_number,
                 q.state) for q in listed] == [
            (SPD, first.approval_reference, "7ABC12?", PURPOSE, CASE, pb.HELD_QUERY_STATE_HELD),
            (SPD, second.approval_reference, "3LBY007", PURPOSE, "26-00778",
             pb.HELD_QUERY_STATE_HELD),
        ]  # fmt: skip
        assert (shown.since.ToDatetime(UTC), shown.until.ToDatetime(UTC)) == (
            START - timedelta(hours=1),
            START + timedelta(hours=1),
        )
        assert shown.requesting_user == f"spiffe://test.alpr/agency/{LAPD}/user/detective"
        assert shown.exchange_id == first.exchange_id  # its receipt is on file (AUD-6)
        assert shown.ask_time.ToDatetime(UTC) == START
        assert not shown.HasField("close_time")
        # The analyst sees only theirs.
        [other] = held_queries(lapd.node, federation, "analyst")
        assert other.approval_reference == theirs.approval_reference
        # Answered, a query leaves the list; refused, it stays, marked so.
        decide(spd, federation, first.approval_reference, approve=True)
        decide(spd, federation, second.approval_reference, approve=False)
        collect(lapd, federation, first.approval_reference)
        collect(lapd, federation, second.approval_reference)
        [refused] = held_queries(lapd.node, federation)
        assert (refused.approval_reference, refused.state) == (
            second.approval_reference,
            pb.HELD_QUERY_STATE_REFUSED,
        )
        assert refused.HasField("close_time")

    def test_succeeds_listing_everyones_for_a_system_administrators_session(
        self, federation: Federation, tmp_path: Path, clock: ManualClock
    ) -> None:
        # The roles of the caller are known from a session, so on a node that requires logins.
        config = replace(make_node(federation, tmp_path / "strict", LAPD), require_login=True)
        with serving(config, clock=clock) as node:
            users = node.services.users
            for user, role in (("detective", Role.DATA_USER), ("analyst", Role.DATA_USER),
                               ("chief", Role.SYSTEM_ADMINISTRATOR)):  # fmt: skip
                ready_user(users, user, role)
                node.services.held.keep(
                    exchange_id=str(uuid.uuid4()), partner_ori=SPD, reference=f"ref-{user}",
                    requesting_user=f"spiffe://test.alpr/agency/{LAPD}/user/{user}",
                    purpose=PURPOSE, case_number=CASE, plate="7ABC123",
                    since=START, until=START + timedelta(hours=1),
                )  # fmt: skip
                clock.advance(timedelta(seconds=1))
            every = held_queries(node, federation, "chief", login=True)
            assert [q.approval_reference for q in every] == [
                "ref-detective",
                "ref-analyst",
                "ref-chief",
            ]
            [own] = held_queries(node, federation, "detective", login=True)
            assert own.approval_reference == "ref-detective"
            # Each page shown is an access to others' plates and cases, audited (AUD-1).
            listed = [
                (event.actor.rpartition("/")[2], json.loads(event.details)["everyone"])
                for event in node.services.audit.events(kinds=["held_queries.listed"])
            ]
            assert listed == [("chief", True)] * 3 + [("detective", False)]
            with pytest.raises(grpc.RpcError) as anonymous:
                held_queries(node, federation, "detective")
            assert code_of(anonymous.value) is grpc.StatusCode.UNAUTHENTICATED

    def test_fails_for_a_negative_page_size_or_a_token_of_another_list(
        self, pair: dict[str, Agency], federation: Federation
    ) -> None:
        stub = search(pair[LAPD], federation)
        foreign = base64.urlsafe_b64encode(b"partner_requests:2").decode()  # ListPartnerRequests'
        for request in (
            pb.ListHeldQueriesRequest(page_size=-1),
            pb.ListHeldQueriesRequest(page_token=foreign),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                stub.ListHeldQueries(request, timeout=TIMEOUT)
            assert code_of(refused.value) is grpc.StatusCode.INVALID_ARGUMENT
