"""Plate queries across three real nodes: fan-out, outcomes, receipts, each partner's rules.

SHR-5 (the request names agency, person, purpose), SHR-6 (refusals say nothing),
SHR-7 (every request kept on file with its basis), ACC-6/ACC-7, AUD-6 (receipts on
both sides, acknowledgements riding the next query), AUD-7 (the answer proves the
partner's log for witnessing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from alpr.common.v1 import envelope_pb2
from alpr.federation.v1 import agreement_pb2, exchange_pb2
from alpr.federation.v1 import federation_service_pb2 as fed_pb
from alpr.search.v1 import search_service_pb2 as pb
from alpr.search.v1 import search_service_pb2_grpc as pb_grpc
from federation import acknowledgements
from federation.exchange import ACKNOWLEDGEMENT_TYPE, check_ledger
from node.ed25519 import Ed25519Key
from node.identity import PrincipalKind
from node.reads import NewRead
from node.store import create_engine
from tests.support.agencies import Agency, agree, running_agencies
from tests.support.clock import START, ManualClock
from tests.support.nodes import serving
from tests.support.pki import LAPD, LASD, SPD, Federation
from tests.support.simulator import through_simulator

ASK = agreement_pb2.GRANT_ASK_PLATE_QUERIES
# A purpose of LAPD's profile (node/profiles/lapd.toml), and of its agreements.
PURPOSE = "Criminal investigations or proceedings"
TIMEOUT = 30


@pytest.fixture
def three(
    federation: Federation, tmp_path: Path, database_url: str, clock: ManualClock
) -> Iterator[dict[str, Agency]]:
    """LAPD (each engine) may ask LASD and SPD; both have seen 7ABC123."""
    with running_agencies(
        federation, tmp_path, clock, (LAPD, LASD, SPD), {LAPD: database_url}
    ) as found:
        lapd = found[LAPD]
        for partner in (found[LASD], found[SPD]):
            lapd.add_peer(partner)
            partner.add_peer(lapd)
            agree(partner, lapd, we_grant=[ASK], they_grant=[], purposes=(PURPOSE,))
            partner.node.services.reads.commit(
                "cam-1",
                [
                    NewRead(plate="7ABC123", confidence=0.93, captured_at=START, latitude=34.1),
                    NewRead(plate="6TRK999", confidence=0.9, captured_at=START),
                ],
            )
        yield found


def ask(
    lapd: Agency, federation: Federation, purpose: str = PURPOSE, warrant: str = ""
) -> pb.SearchPartnersResponse:
    """LAPD's detective asks every partner where 7ABC12? was seen around START."""
    with lapd.node.channel(federation.client(LAPD, PrincipalKind.USER, "detective")) as channel:
        request = pb.SearchPartnersRequest(
            plate="7ABC12?",
            purpose=purpose,
            case_number="26-00777",
            judicial_warrant=warrant,
            deadline_ms=3000,
        )
        request.since.FromDatetime(START - timedelta(hours=1))
        request.until.FromDatetime(START + timedelta(hours=1))
        return pb_grpc.SearchServiceStub(channel).SearchPartners(request, timeout=TIMEOUT)


def outcomes(answer: pb.SearchPartnersResponse) -> dict[str, int]:
    return {partner.partner_ori: partner.outcome for partner in answer.partners}


def served(agency: Agency) -> list[dict[str, str]]:
    """The plate queries `agency` answered, as its audit log keeps them (SHR-7)."""
    return [
        {"actor": e.actor, "agency": e.agency, "purpose": e.purpose, "case": e.case_number}
        for e in agency.audit_events("exchange.plate_query_served")
    ]


class TestFanOut:
    def test_shr5_every_partner_answers_with_its_reads_and_keeps_the_request_on_file(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd = three[LAPD]
        answer = ask(lapd, federation)
        assert outcomes(answer) == {
            LASD: pb.PARTNER_OUTCOME_ANSWERED,
            SPD: pb.PARTNER_OUTCOME_ANSWERED,
        }
        for partner in answer.partners:
            [read] = partner.reads
            assert (read.plate, read.camera_id, round(read.latitude, 1)) == (
                "7ABC123",
                "cam-1",
                34.1,
            )
            assert read.captured_at.ToDatetime().replace(tzinfo=START.tzinfo) == START
        detective = f"spiffe://test.alpr/agency/{LAPD}/user/detective"
        for ori in (LASD, SPD):
            assert served(three[ori]) == [
                {"actor": detective, "agency": LAPD, "purpose": PURPOSE, "case": "26-00777"}
            ]
        [asked] = lapd.audit_events("search.federated")
        assert json.loads(asked.details)["partners"] == {LASD: "answered", SPD: "answered"}

    def test_aud6_each_side_holds_the_others_signature_over_each_answer(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd = three[LAPD]
        ask(lapd, federation)
        lapd.node.run(lapd.node.services.queries.settled())  # acknowledgements delivered
        for agency in three.values():
            services = agency.node.services
            ours = Ed25519Key(agency.node_key)
            checks = check_ledger(services.ledger, ours=ours, peers=services.peers)
            assert len(checks) == (2 if agency is lapd else 1)
            assert [check.problems for check in checks] == [[]] * len(checks)
        assert three[LASD].node.services.ledger.unacknowledged(timedelta(0)) == []

    def test_shr6_a_partner_that_refuses_says_only_that_and_others_still_answer(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, spd = three[LAPD], three[SPD]
        # SPD ended the agreement on its side only: LAPD still believes it in force.
        engine = create_engine(spd.node.config.store_url)
        with engine.begin() as connection:
            connection.execute(text("UPDATE agreement SET state = 'revoked'"))
        engine.dispose()
        answer = ask(lapd, federation)
        assert outcomes(answer) == {
            LASD: pb.PARTNER_OUTCOME_ANSWERED,
            SPD: pb.PARTNER_OUTCOME_REFUSED,
        }
        [refused] = [p for p in answer.partners if p.partner_ori == SPD]
        assert (list(refused.reads), refused.detail) == ([], "")
        assert len(spd.audit_events("exchange.denied")) == 1

    def test_a_partner_down_is_unavailable_and_one_too_slow_timed_out(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        lapd.node.services.peers.update(SPD, {"endpoint": "localhost:9"})
        with through_simulator(lapd, lasd, federation) as simulator:

            def slow(request: fed_pb.QueryReadsRequest) -> fed_pb.QueryReadsResponse:
                time.sleep(4)  # past the query's 3 s deadline: the network is what is slow
                return simulator.forward_query(request)

            simulator.answer_query = slow
            answer = ask(lapd, federation)
        assert outcomes(answer) == {
            LASD: pb.PARTNER_OUTCOME_TIMED_OUT,
            SPD: pb.PARTNER_OUTCOME_UNAVAILABLE,
        }

    def test_aud6_an_answer_altered_in_transit_is_invalid_and_not_used(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        with through_simulator(lapd, lasd, federation) as simulator:

            def forged(request: fed_pb.QueryReadsRequest) -> fed_pb.QueryReadsResponse:
                answer = simulator.forward_query(request)
                read_answer = exchange_pb2.ReadAnswer.FromString(answer.answer.payload)
                read_answer.reads[0].plate = "7ABC124"
                answer.answer.payload = read_answer.SerializeToString()
                return answer

            simulator.answer_query = forged
            answer = ask(lapd, federation)
        [invalid] = [p for p in answer.partners if p.partner_ori == LASD]
        assert (invalid.outcome, list(invalid.reads)) == (pb.PARTNER_OUTCOME_INVALID, [])
        [rejected] = [
            json.loads(e.details) for e in lapd.audit_events("exchange.plate_query_rejected")
        ]
        assert (rejected["partner"], rejected["exchange_id"]) == (LASD, invalid.exchange_id)


class TestEachPartnersRules:
    def test_acc6_a_purpose_we_do_not_authorize_is_refused_before_anyone_is_asked(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        with pytest.raises(grpc.RpcError) as raised:
            ask(three[LAPD], federation, purpose="curiosity")
        assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert served(three[LASD]) == served(three[SPD]) == []

    def test_acc7_civil_immigration_is_refused_by_partners_without_a_judicial_warrant(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        # The agreement must name the purpose for a partner to even consider it.
        immigration = "Civil immigration enforcement"
        agree(lasd, lapd, we_grant=[ASK], they_grant=[], purposes=(immigration,))
        with pytest.raises(grpc.RpcError) as raised:
            ask(lapd, federation, purpose=immigration)
        assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
        answer = ask(lapd, federation, purpose=immigration, warrant="US District Ct 26-M-14")
        assert outcomes(answer)[SPD] == pb.PARTNER_OUTCOME_REFUSED  # not in that agreement


def unacknowledged(agency: Agency) -> list[str]:
    """The exchanges `agency` answered that are not acknowledged yet."""
    return [record.id for record in agency.node.services.ledger.unacknowledged(timedelta(0))]


def exchange_with(answer: pb.SearchPartnersResponse, ori: str) -> str:
    [partner] = [p for p in answer.partners if p.partner_ori == ori]
    return partner.exchange_id


class TestOneCallAnExchange:
    """A plate query is one call to each partner: acknowledgements and proofs ride it."""

    def test_aud6_an_acknowledgement_rides_the_next_query_to_that_partner(
        self, three: dict[str, Agency], federation: Federation, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(acknowledgements, "FLUSH_AFTER", 3600.0)  # only a request delivers
        lapd, lasd = three[LAPD], three[LASD]
        first = exchange_with(ask(lapd, federation), LASD)
        assert unacknowledged(lasd) == [first]  # owed, kept by LAPD already
        [ours] = [r for r in lapd.node.services.ledger.exchanges(LASD) if r.id == first]
        assert ours.acknowledgement is not None
        second = exchange_with(ask(lapd, federation), LASD)
        assert unacknowledged(lasd) == [second]  # the first came with the second query
        lapd.node.run(lapd.node.services.queries.settled())  # what is owed goes at once
        assert unacknowledged(lasd) == []

    def test_aud6_an_acknowledgement_not_delivered_is_owed_until_the_partner_takes_it(
        self, three: dict[str, Agency], federation: Federation, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(acknowledgements, "FLUSH_AFTER", 3600.0)
        lapd, lasd = three[LAPD], three[LASD]
        services = lapd.node.services
        endpoint = services.peers.require(LASD).endpoint
        first = exchange_with(ask(lapd, federation), LASD)
        services.peers.update(LASD, {"endpoint": "localhost:9"})  # LASD drops off the network
        assert outcomes(ask(lapd, federation))[LASD] == pb.PARTNER_OUTCOME_UNAVAILABLE
        lapd.node.run(services.queries.settled())  # the flush cannot reach it either
        assert unacknowledged(lasd) == [first]
        services.peers.update(LASD, {"endpoint": endpoint})
        third = exchange_with(ask(lapd, federation), LASD)
        assert unacknowledged(lasd) == [third]  # the first rode the next query that got there
        lapd.node.run(services.queries.settled())
        assert unacknowledged(lasd) == []

    def test_aud6_an_acknowledgement_owed_when_the_node_went_down_goes_when_it_starts(
        self, three: dict[str, Agency], federation: Federation, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(acknowledgements, "FLUSH_AFTER", 3600.0)  # still owed at the "crash"
        lapd, lasd = three[LAPD], three[LASD]
        first = exchange_with(ask(lapd, federation), LASD)
        assert unacknowledged(lasd) == [first]
        assert sorted(ori for ori, _ in lapd.node.services.ledger.owed()) == [LASD, SPD]
        # The node that owes it never stops cleanly: another start over the same store
        # (a restarted process) finds it owed and gives it.
        with serving(lapd.node.config, clock=lapd.node.services.clock) as restarted:
            restarted.run(restarted.services.queries.settled())
            assert unacknowledged(lasd) == []
            assert restarted.services.ledger.owed() == []

    def test_aud6_an_acknowledgement_no_query_carries_goes_on_its_own_within_the_bound(
        self, three: dict[str, Agency], federation: Federation, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(acknowledgements, "FLUSH_AFTER", 0.1)
        lapd, lasd = three[LAPD], three[LASD]
        ask(lapd, federation)
        waited = time.monotonic() + TIMEOUT
        while (unacknowledged(lasd) or lapd.node.services.ledger.owed()) and (
            time.monotonic() < waited
        ):
            time.sleep(0.05)  # the flush's own timer, not the node's clock
        assert unacknowledged(lasd) == []
        assert lapd.node.services.ledger.owed() == []  # no longer on file as owed either

    def test_aud6_a_carried_acknowledgement_refused_is_named_and_the_query_still_answered(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        answered: list[fed_pb.QueryReadsResponse] = []
        with through_simulator(lapd, lasd, federation) as simulator:

            def with_a_stray(request: fed_pb.QueryReadsRequest) -> fed_pb.QueryReadsResponse:
                stray = envelope_pb2.SignedEnvelope(
                    payload=b"not ours",
                    payload_type=ACKNOWLEDGEMENT_TYPE,
                    signatures=[envelope_pb2.EnvelopeSignature(key_id="00", signature=bytes(64))],
                )
                request.acknowledgements.append(stray)
                answered.append(simulator.forward_query(request))
                return answered[-1]

            simulator.answer_query = with_a_stray
            answer = ask(lapd, federation)
        assert outcomes(answer)[LASD] == pb.PARTNER_OUTCOME_ANSWERED
        [response] = answered
        [refused] = response.refused_acknowledgements
        assert refused.index == 0  # the first query carries nothing of ours

    def test_aud7_the_answer_proves_the_partners_log_so_witnessing_it_is_no_call(
        self, three: dict[str, Agency], federation: Federation, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        lapd = three[LAPD]
        services = lapd.node.services
        ask(lapd, federation)
        lapd.node.run(services.queries.settled())
        first = services.witness.held(LASD)
        assert first is not None
        asked: list[object] = []
        proofs = services.partners.consistency_proofs

        async def counted(*args: object) -> list[list[bytes]]:
            asked.append(args)
            return await proofs(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(services.partners, "consistency_proofs", counted)
        ask(lapd, federation)
        lapd.node.run(services.queries.settled())
        second = services.witness.held(LASD)
        assert second is not None
        assert (second.size > first.size, asked) == (True, [])

    def test_aud7_a_proof_in_an_answer_that_does_not_hold_raises_the_alarm(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        ask(lapd, federation)
        lapd.node.run(lapd.node.services.queries.settled())
        with through_simulator(lapd, lasd, federation) as simulator:

            def false_proof(request: fed_pb.QueryReadsRequest) -> fed_pb.QueryReadsResponse:
                answer = simulator.forward_query(request)
                assert request.witnessed_size > 0
                assert answer.HasField("consistency")
                answer.consistency.hashes[:] = [bytes(32)]
                return answer

            simulator.answer_query = false_proof
            answer = ask(lapd, federation)
            lapd.node.run(lapd.node.services.queries.settled())
        assert outcomes(answer)[LASD] == pb.PARTNER_OUTCOME_ANSWERED  # its signatures hold
        [alarm] = lapd.node.services.witness.alarms()
        assert alarm.partner_ori == LASD
