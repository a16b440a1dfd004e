"""A partner's read images, on a second signed request, across three real nodes.

LAPD (each engine) asks LASD and SPD where a plate was seen; their answers list reads
with references and say which images exist. LAPD's detective then asks LASD for the
images of some of them: AUD-6 (receipted and acknowledged on both sides), SHR-6 (every
refusal uniform, its reason audited), SHR-7 (each image answer on file with the reads and
bytes sent), RET-2 (archived reads are not sent), AUD-1 (our side audits who asked, why).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from alpr.federation.v1 import agreement_pb2, exchange_pb2
from alpr.federation.v1 import federation_service_pb2 as fed_pb
from alpr.search.v1 import search_service_pb2 as pb
from alpr.search.v1 import search_service_pb2_grpc as pb_grpc
from federation.envelope import Envelope
from federation.exchange import ExchangeLedger, check_ledger
from federation.read_images import MAX_IMAGE_BYTES
from gateway.server import ACCESS
from node.ed25519 import Ed25519Key
from node.identity import PrincipalKind
from node.profile import Role
from node.reads import MAX_PLATE_IMAGE, MAX_VEHICLE_IMAGE, NewRead
from node.store import create_engine
from tests.support.agencies import Agency, agree, running_agencies
from tests.support.bombs import small_png
from tests.support.clock import START, ManualClock
from tests.support.pki import LAPD, LASD, SPD, Federation
from tests.support.simulator import through_simulator

ASK = agreement_pb2.GRANT_ASK_PLATE_QUERIES
PURPOSE = "Criminal investigations or proceedings"
CASE = "26-00777"
TIMEOUT = 30
PLATE_CROP = small_png(b"plate crop of 7ABC123")
VEHICLE = small_png(b"vehicle of 7ABC123")


@pytest.fixture
def three(
    federation: Federation, tmp_path: Path, database_url: str, clock: ManualClock
) -> Iterator[dict[str, Agency]]:
    """LAPD (each engine) may ask LASD and SPD, SPD may ask LASD; LASD saw 7ABC123 and 7ABC120."""
    with running_agencies(
        federation, tmp_path, clock, (LAPD, LASD, SPD), {LAPD: database_url}
    ) as found:
        lapd, lasd, spd = found[LAPD], found[LASD], found[SPD]
        for responder, asker in ((lasd, lapd), (spd, lapd), (lasd, spd)):
            responder.add_peer(asker)
            asker.add_peer(responder)
            agree(responder, asker, we_grant=[ASK], they_grant=[], purposes=(PURPOSE,))
        for agency in (lasd, spd):
            agency.node.services.reads.commit(
                "cam-1",
                [
                    NewRead(plate="7ABC123", confidence=0.93, captured_at=START,
                            plate_image=PLATE_CROP, vehicle_image=VEHICLE),
                    NewRead(plate="7ABC120", confidence=0.9, captured_at=START - timedelta(1),
                            plate_image=small_png(b"plate crop of 7ABC120")),
                ],
            )  # fmt: skip
        yield found


def search(agency: Agency, federation: Federation) -> pb_grpc.SearchServiceStub:
    """The agency's SearchService as its detective."""
    channel = agency.node.channel(federation.client(agency.ori, PrincipalKind.USER, "detective"))
    return pb_grpc.SearchServiceStub(channel)


def ask(agency: Agency, federation: Federation) -> dict[str, pb.PartnerAnswer]:
    """The agency's detective asks its partners where 7ABC12? was seen; answers by partner."""
    request = pb.SearchPartnersRequest(
        plate="7ABC12?", purpose=PURPOSE, case_number=CASE, deadline_ms=5000
    )
    request.since.FromDatetime(START - timedelta(days=2))
    request.until.FromDatetime(START + timedelta(hours=1))
    answer = search(agency, federation).SearchPartners(request, timeout=TIMEOUT)
    return {partner.partner_ori: partner for partner in answer.partners}


def images(
    lapd: Agency,
    federation: Federation,
    exchange_id: str,
    references: list[str],
    *,
    partner: str = LASD,
    case: str = CASE,
) -> pb.GetPartnerImagesResponse:
    """LAPD's detective asks `partner` for the images of reads of one of its answers."""
    request = pb.GetPartnerImagesRequest(
        partner_ori=partner,
        exchange_id=exchange_id,
        read_references=references,
        purpose=PURPOSE,
        case_number=case,
        deadline_ms=5000,
    )
    return search(lapd, federation).GetPartnerImages(request, timeout=TIMEOUT)


def by_plate(answer: pb.PartnerAnswer) -> dict[str, pb.Read]:
    return {read.plate: read for read in answer.reads}


def denials(agency: Agency) -> list[str]:
    """The real reasons of the agency's uniform denials, in order (SHR-6)."""
    return [json.loads(e.details)["reason"] for e in agency.audit_events("exchange.denied")]


def execute(agency: Agency, statement: str, **values: str) -> None:
    """Change the agency's store behind its node's back."""
    engine = create_engine(agency.node.config.store_url)
    with engine.begin() as connection:
        connection.execute(text(statement), values)
    engine.dispose()


def refused(reply: pb.GetPartnerImagesResponse) -> None:
    """The partner answered with the uniform denial: nothing, and no detail (SHR-6)."""
    assert (reply.outcome, list(reply.images), reply.detail) == (
        pb.PARTNER_OUTCOME_REFUSED,
        [],
        "",
    )


class TestImagesOfAnAnswer:
    def test_aud6_images_of_reads_in_an_answer_come_back_receipted_on_both_sides(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        answer = ask(lapd, federation)[LASD]
        seen, other = by_plate(answer)["7ABC123"], by_plate(answer)["7ABC120"]
        assert (seen.has_plate_image, seen.has_vehicle_image) == (True, True)
        assert (other.has_plate_image, other.has_vehicle_image) == (True, False)
        # The reference is the answer's own, not LASD's read id.
        [shared] = lasd.audit_events("exchange.plate_query_served")
        assert seen.partner_reference
        assert seen.read_id == ""
        reply = images(lapd, federation, answer.exchange_id, [seen.partner_reference])
        assert reply.outcome == pb.PARTNER_OUTCOME_ANSWERED
        [got] = reply.images
        assert (got.read_reference, got.plate_image, got.vehicle_image) == (
            seen.partner_reference,
            PLATE_CROP,
            VEHICLE,
        )
        assert list(reply.remaining_references) == []
        lapd.node.run(lapd.node.services.queries.settled())  # acknowledgements delivered
        for agency in (lapd, lasd):
            services = agency.node.services
            checks = check_ledger(
                services.ledger, ours=Ed25519Key(agency.node_key), peers=services.peers
            )
            assert [check.problems for check in checks if check.partner_ori != SPD] == [[], []]
        assert lasd.node.services.ledger.unacknowledged(timedelta(0)) == []
        # SHR-7: LASD keeps on file who asked, why, which reads and how many bytes.
        [served] = lasd.audit_events("exchange.read_images_served")
        details = json.loads(served.details)
        assert (served.agency, served.purpose, served.case_number) == (LAPD, PURPOSE, CASE)
        assert served.actor == f"spiffe://test.alpr/agency/{LAPD}/user/detective"
        assert (details["answers"], details["bytes"]) == (
            answer.exchange_id,
            len(PLATE_CROP) + len(VEHICLE),
        )
        [read_id] = details["read_ids"]
        assert read_id != seen.partner_reference
        assert shared.seq < served.seq
        # AUD-1: LAPD audits who asked, the purpose and the case, and what came back.
        [asked] = lapd.audit_events("search.partner_images")
        assert (asked.actor, asked.purpose, asked.case_number) == (
            f"spiffe://test.alpr/agency/{LAPD}/user/detective",
            PURPOSE,
            CASE,
        )
        assert json.loads(asked.details)["received"] == [seen.partner_reference]
        [received] = lapd.audit_events("exchange.read_images_received")
        assert json.loads(received.details)["exchange_id"] == reply.exchange_id

    def test_images_past_the_answers_byte_limit_are_named_remaining_and_come_next_time(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        large = [small_png(bytes([n]), size=MAX_VEHICLE_IMAGE) for n in (1, 2)]
        for n, image in enumerate(large):  # a call of reads holds at most 2 MiB of images
            lasd.node.services.reads.commit(
                "cam-2",
                [NewRead(plate="7ABC121", confidence=0.9, captured_at=START + timedelta(minutes=n),
                         vehicle_image=image)],
            )  # fmt: skip
        answer = ask(lapd, federation)[LASD]
        references = [read.partner_reference for read in answer.reads if read.plate == "7ABC121"]
        first = images(lapd, federation, answer.exchange_id, references)
        assert first.outcome == pb.PARTNER_OUTCOME_ANSWERED
        assert [image.read_reference for image in first.images] == references[:1]
        assert list(first.remaining_references) == references[1:]
        second = images(lapd, federation, answer.exchange_id, list(first.remaining_references))
        assert sorted([first.images[0].vehicle_image, second.images[0].vehicle_image]) == large

    def test_one_reads_largest_images_always_fit_an_answer_and_the_grpc_default(self) -> None:
        assert MAX_PLATE_IMAGE + MAX_VEHICLE_IMAGE <= MAX_IMAGE_BYTES < 4 * 1024 * 1024
        rule = ACCESS["/alpr.search.v1.SearchService/GetPartnerImages"]
        assert rule.roles == frozenset({Role.SYSTEM_ADMINISTRATOR, Role.DATA_USER})


class TestRefusals:
    def test_shr6_a_read_never_sent_to_lapd_is_refused_uniformly(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        answers = ask(lapd, federation)
        # A reference SPD's answer gave is no read LASD ever sent in its own.
        spd_reference = answers[SPD].reads[0].partner_reference
        refused(images(lapd, federation, answers[LASD].exchange_id, [spd_reference]))
        [reason] = denials(lasd)
        assert "was not sent to" in reason

    def test_shr6_a_read_lasd_sent_another_partner_is_refused_uniformly(
        self, three: dict[str, Agency], federation: Federation, clock: ManualClock
    ) -> None:
        lapd, lasd, spd = three[LAPD], three[LASD], three[SPD]
        ours = ask(lapd, federation)[LASD]
        theirs = ask(spd, federation)[LASD]
        # LAPD's node would not ask of an exchange it never had: make it believe it had it.
        engine = create_engine(lapd.node.config.store_url)
        ledger = ExchangeLedger(engine, clock=clock)
        record = ledger.asked(LASD, ours.exchange_id)
        assert record is not None
        ledger.record(exchange_id=theirs.exchange_id, partner_ori=LASD, we_responded=False,
                      kind=record.kind, agreement_id=record.agreement_id,
                      request_digest=record.request_digest,
                      response_digest=record.response_digest,
                      receipt=Envelope.from_bytes(record.receipt))  # fmt: skip
        engine.dispose()
        reference = theirs.reads[0].partner_reference
        refused(images(lapd, federation, theirs.exchange_id, [reference]))
        [reason] = denials(lasd)
        assert f"was not sent to {LAPD}" in reason
        assert lasd.audit_events("exchange.read_images_served") == []

    def test_shr6_another_case_than_the_querys_is_refused_uniformly(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        answer = ask(lapd, federation)[LASD]
        reference = answer.reads[0].partner_reference
        refused(images(lapd, federation, answer.exchange_id, [reference], case="26-00999"))
        [reason] = denials(lasd)
        assert "another purpose or case" in reason

    def test_shr6_after_the_agreement_is_revoked_images_are_refused_uniformly(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        answer = ask(lapd, federation)[LASD]
        reference = answer.reads[0].partner_reference
        # LASD ended the agreement on its side only: LAPD still believes it in force.
        execute(lasd, "UPDATE agreement SET state = 'revoked' WHERE partner_ori = :ori", ori=LAPD)
        refused(images(lapd, federation, answer.exchange_id, [reference]))
        [reason] = denials(lasd)
        assert "revoked" in reason
        # Once LAPD holds it revoked too, its node does not even ask.
        execute(lapd, "UPDATE agreement SET state = 'revoked' WHERE partner_ori = :ori", ori=LASD)
        with pytest.raises(grpc.RpcError) as raised:
            images(lapd, federation, answer.exchange_id, [reference])
        assert raised.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert len(denials(lasd)) == 1

    def test_ret2_an_archived_read_is_not_sent_and_refused_uniformly(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        answer = ask(lapd, federation)[LASD]
        seen = by_plate(answer)["7ABC123"]
        # What the retention job does to a read past the profile's period (RET-2).
        execute(
            lasd,
            "UPDATE plate_read SET archived_at = committed_at WHERE plate = :plate",
            plate="7ABC123",
        )
        refused(images(lapd, federation, answer.exchange_id, [seen.partner_reference]))
        [reason] = denials(lasd)
        assert "archived (RET-2)" in reason
        assert lasd.audit_events("exchange.read_images_served") == []

    def test_an_exchange_lapd_never_had_is_not_asked_at_all(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        answer = ask(lapd, federation)[LASD]
        with pytest.raises(grpc.RpcError) as raised:
            images(lapd, federation, answer.exchange_id, ["0123456789abcdef"], partner=SPD)
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        assert denials(lasd) == denials(three[SPD]) == []


class TestTampering:
    def test_aud6_an_image_altered_in_transit_is_invalid_and_not_used(
        self, three: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = three[LAPD], three[LASD]
        answer = ask(lapd, federation)[LASD]
        reference = by_plate(answer)["7ABC123"].partner_reference
        with through_simulator(lapd, lasd, federation) as simulator:

            def forged(request: fed_pb.GetReadImagesRequest) -> fed_pb.GetReadImagesResponse:
                response = simulator.forward_images(request)
                image_answer = exchange_pb2.ImageAnswer.FromString(response.answer.payload)
                image_answer.images[0].vehicle_image = b"\xff\xd8another car"
                response.answer.payload = image_answer.SerializeToString()
                return response

            simulator.answer_images = forged
            reply = images(lapd, federation, answer.exchange_id, [reference])
        assert (reply.outcome, list(reply.images)) == (pb.PARTNER_OUTCOME_INVALID, [])
        [rejected] = [
            json.loads(e.details) for e in lapd.audit_events("exchange.read_images_rejected")
        ]
        assert (rejected["partner"], rejected["exchange_id"]) == (LASD, reply.exchange_id)
        assert lapd.audit_events("exchange.read_images_received") == []
