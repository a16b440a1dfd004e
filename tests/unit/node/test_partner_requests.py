"""The file of partners' requests held for approval, and our held queries, on both engines.

SHR-5 (a partner's request is kept on file and approved by the designated role before it
is answered), SHR-7 (the file names the requesting entity and its basis).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from node.errors import NotFoundError, PreconditionError, ValidationError
from node.partner_requests import FiledRequest, HeldQueries, PartnerRequests, RequestState
from node.store.sharing import PartnerRequestRecord
from tests.support.clock import START, ManualClock
from tests.support.pki import LAPD, LASD

DETECTIVE = f"spiffe://test.alpr/agency/{LAPD}/user/detective"
CUSTODIAN = "spiffe://test.alpr/agency/CA0010100/user/custodian"


def filed(requests: PartnerRequests, partner_ori: str = LAPD) -> str:
    """File a query of `partner_ori`'s; its reference."""
    return requests.file(
        FiledRequest(
            exchange_id=str(uuid.uuid4()),
            partner_ori=partner_ori,
            agreement_id=str(uuid.uuid4()),
            requesting_user=DETECTIVE,
            purpose="Criminal investigations or proceedings",
            case_number="26-00777",
            judicial_warrant="",
            plate="7ABC12?",
            since=START - timedelta(hours=1),
            until=START + timedelta(hours=1),
        )
    ).reference


def collect(
    requests: PartnerRequests,
    reference: str,
    exchange_id: str,
    *,
    partner_ori: str = LAPD,
    case_number: str = "26-00777",
    user: str = DETECTIVE,
) -> PartnerRequestRecord:
    """`partner_ori`'s `user` collects `reference` stating the filed purpose and `case_number`."""
    return requests.collect(
        reference,
        partner_ori=partner_ori,
        requesting_user=user,
        purpose="Criminal investigations or proceedings",
        case_number=case_number,
        exchange_id=exchange_id,
    )


@pytest.fixture
def requests(engine: Engine, clock: ManualClock) -> PartnerRequests:
    return PartnerRequests(engine, clock=clock)


class TestPartnerRequests:
    def test_shr5_shr7_a_request_is_kept_on_file_pending_with_who_asked_and_why(
        self, requests: PartnerRequests, clock: ManualClock
    ) -> None:
        first = filed(requests)
        clock.advance(timedelta(minutes=1))
        second = filed(requests, LASD)
        pending = requests.pending()
        assert [r.reference for r in pending] == [first, second]
        record = pending[0]
        assert (record.partner_ori, record.requesting_user, record.purpose, record.case_number) == (
            LAPD,
            DETECTIVE,
            "Criminal investigations or proceedings",
            "26-00777",
        )
        assert (record.state, record.filed_at, record.since) == (
            RequestState.PENDING,
            START,
            START - timedelta(hours=1),
        )

    def test_shr5_a_decision_records_who_when_and_why_and_leaves_the_pending_list(
        self, requests: PartnerRequests, clock: ManualClock
    ) -> None:
        approved, denied = filed(requests), filed(requests)
        clock.advance(timedelta(hours=2))
        record = requests.decide(approved, approve=True, user=CUSTODIAN, reason="case 26-00777")
        assert (record.state, record.decided_by, record.decided_at, record.decision_reason) == (
            RequestState.APPROVED,
            CUSTODIAN,
            START + timedelta(hours=2),
            "case 26-00777",
        )
        assert requests.decide(denied, approve=False, user=CUSTODIAN, reason="no need").state == (
            RequestState.DENIED
        )
        assert requests.pending() == []

    def test_fails_to_decide_without_a_reason_twice_or_an_unknown_request(
        self, requests: PartnerRequests
    ) -> None:
        reference = filed(requests)
        with pytest.raises(ValidationError, match="reason"):
            requests.decide(reference, approve=True, user=CUSTODIAN, reason=" ")
        requests.decide(reference, approve=False, user=CUSTODIAN, reason="no need")
        with pytest.raises(PreconditionError, match="denied already"):
            requests.decide(reference, approve=True, user=CUSTODIAN, reason="changed my mind")
        with pytest.raises(NotFoundError):
            requests.decide("no-such", approve=True, user=CUSTODIAN, reason="why not")

    def test_shr5_an_approved_request_is_collected_by_the_person_who_asked_it(
        self, requests: PartnerRequests
    ) -> None:
        reference = filed(requests)
        assert collect(requests, reference, "x-1").state == RequestState.PENDING
        with pytest.raises(NotFoundError):
            collect(requests, reference, "x-2", partner_ori=LASD)  # another partner's reference
        requests.decide(reference, approve=True, user=CUSTODIAN, reason="case 26-00777")
        with pytest.raises(PreconditionError, match="another purpose or case"):
            collect(requests, reference, "x-3", case_number="26-99999")
        with pytest.raises(PreconditionError, match="asked by another"):
            collect(requests, reference, "x-3", user=DETECTIVE.replace("detective", "other"))
        collected = collect(requests, reference, "x-4")
        assert (collected.state, collected.collected_exchange_id) == (RequestState.COLLECTED, "x-4")
        # The answer may be lost on its way: the same person collects it again.
        again = collect(requests, reference, "x-5")
        assert (again.state, again.collected_exchange_id) == (RequestState.COLLECTED, "x-4")

    def test_shr6_a_denied_request_is_never_collected(self, requests: PartnerRequests) -> None:
        reference = filed(requests)
        requests.decide(reference, approve=False, user=CUSTODIAN, reason="no need")
        with pytest.raises(PreconditionError, match="denied"):
            collect(requests, reference, "x-1")


def keep(held: HeldQueries, exchange_id: str, reference: str, user: str = DETECTIVE) -> None:
    """Keep `user`'s query of 7ABC12? that LASD holds under `reference`."""
    held.keep(
        exchange_id=exchange_id, partner_ori=LASD, reference=reference, requesting_user=user,
        purpose="Criminal investigations or proceedings", case_number="26-00777",
        plate="7ABC12?", since=START - timedelta(hours=1), until=START + timedelta(hours=1),
    )  # fmt: skip


class TestHeldQueries:
    def test_succeeds_keeping_a_held_query_until_its_answer_is_collected(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        held = HeldQueries(engine, clock=clock)
        keep(held, "x-1", "ref-1")
        assert held.open(LASD, "ref-1").case_number == "26-00777"
        with pytest.raises(NotFoundError):
            held.open(LAPD, "ref-1")
        held.close("x-1", "answered")
        held.close("x-1", "refused")  # a later, racing collection does not overwrite it
        with pytest.raises(PreconditionError, match="answered"):
            held.open(LASD, "ref-1")

    def test_shr5_each_investigator_lists_their_own_held_queries_by_outcome(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        held = HeldQueries(engine, clock=clock)
        keep(held, "x-1", "ref-1")
        clock.advance(timedelta(minutes=1))
        keep(held, "x-2", "ref-2", user=CUSTODIAN)
        clock.advance(timedelta(minutes=1))
        keep(held, "x-3", "ref-3")
        keep(held, "x-4", "ref-4")
        held.close("x-3", "refused")
        held.close("x-4", "answered")
        mine = held.listed(DETECTIVE, outcomes=("", "refused"))
        assert [(row.reference, row.outcome) for row in mine] == [
            ("ref-1", ""),
            ("ref-3", "refused"),
        ]
        first = mine[0]
        assert (first.since, first.until, first.held_at) == (
            START - timedelta(hours=1),
            START + timedelta(hours=1),
            START,
        )
        everyone = held.listed(None, outcomes=("",))
        assert [row.reference for row in everyone] == ["ref-1", "ref-2"]
