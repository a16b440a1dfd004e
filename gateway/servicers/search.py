"""SearchService: the agency's investigators search its reads and its partners' (ACC-6, AUD-1).

A partner that holds a query for its approver answers PENDING_APPROVAL with a reference;
CollectPartnerAnswer fetches the answer later (SHR-5). A partner's answer lists its reads
without images; GetPartnerImages asks it for the images of some of them. ListHeldQueries
shows investigators the queries partners hold for them: each their own, for a query names a
case they work.
A logged-in system administrator sees everyone's: of the roles of ACC-1 that search (the
ACCESS table admits system administrators and data users), theirs is the one with "the
highest access rights" (LAPD Manual 3/568.53) that oversees the system's use; ACC-1 has no
supervisor role, and auditors review queries in the audit log, not here.
"""

from __future__ import annotations

import asyncio

from alpr.search.v1 import search_service_pb2 as pb
from alpr.search.v1 import search_service_pb2_grpc as pb_grpc
from federation.plate_queries import PartnerReply, PlateQuery
from federation.read_images import ImageRequest
from federation.receipting import Outcome
from gateway.interceptors import Context, current_caller, current_user, peer_ip
from gateway.servicers.paging import page
from gateway.servicers.times import required_time
from gateway.services import Services
from node.errors import ValidationError
from node.profile import Role
from node.search import ArchivedBasis, ReadQuery
from node.store.capture_models import ReadCorrectionRecord, ReadRecord
from node.store.sharing import HeldQueryRecord

DEFAULT_DEADLINE_MS = 5000
_OUTCOMES = {
    Outcome.ANSWERED: pb.PARTNER_OUTCOME_ANSWERED,
    Outcome.REFUSED: pb.PARTNER_OUTCOME_REFUSED,
    Outcome.UNAVAILABLE: pb.PARTNER_OUTCOME_UNAVAILABLE,
    Outcome.TIMED_OUT: pb.PARTNER_OUTCOME_TIMED_OUT,
    Outcome.INVALID: pb.PARTNER_OUTCOME_INVALID,
    Outcome.PENDING_APPROVAL: pb.PARTNER_OUTCOME_PENDING_APPROVAL,
}
# What ListHeldQueries lists, by the outcome its collection recorded ("" while not collected).
_HELD_STATES = {"": pb.HELD_QUERY_STATE_HELD, Outcome.REFUSED.value: pb.HELD_QUERY_STATE_REFUSED}


class SearchServicer(pb_grpc.SearchServiceServicer):
    """Serves the agency's users."""

    def __init__(self, services: Services) -> None:
        """Serve with the node's `services`."""
        self._services = services

    def SearchReads(  # noqa: N802 (gRPC method name)
        self, request: pb.SearchReadsRequest, context: Context
    ) -> pb.SearchReadsResponse:
        """The reads of a plate in a window, for a stated purpose and case."""
        query = _query(request)
        user = current_user()
        page = self._services.search.search(
            query,
            user=current_caller().spiffe_id,
            peer_ip=peer_ip(context),
            roles=user.roles if user else frozenset(),
        )
        corrections = self._services.corrections.of([read.id for read in page.reads])
        return pb.SearchReadsResponse(
            reads=[_read(read, corrections.get(read.id, [])) for read in page.reads],
            next_page_token=page.next_page_token,
        )

    async def SearchPartners(  # noqa: N802 (gRPC method name)
        self, request: pb.SearchPartnersRequest, context: Context
    ) -> pb.SearchPartnersResponse:
        """Ask every partner that answers our plate queries, within a deadline."""
        query = _query(request)
        user, address = current_caller().spiffe_id, peer_ip(context)
        # Our own rules first: the purpose must be one we authorize (ACC-6, ACC-7).
        await asyncio.to_thread(self._services.search.authorize, query, user=user, peer_ip=address)
        replies = await self._services.queries.ask(
            PlateQuery(
                plate=query.plate,
                since=query.since,
                until=query.until,
                purpose=query.purpose,
                case_number=query.case_number,
                judicial_warrant=query.judicial_warrant,
            ),
            user=user,
            deadline=_deadline(request.deadline_ms),
        )
        await asyncio.to_thread(
            self._services.audit.append,
            "search.federated",
            actor=user,
            agency=self._services.identity.ori,
            peer_ip=address,
            purpose=query.purpose,
            case_number=query.case_number,
            details={
                "plate": query.plate,
                "partners": {reply.partner_ori: reply.outcome.value for reply in replies},
            },
        )
        return pb.SearchPartnersResponse(partners=[_partner(reply) for reply in replies])

    async def CollectPartnerAnswer(  # noqa: N802 (gRPC method name)
        self, request: pb.CollectPartnerAnswerRequest, context: Context
    ) -> pb.CollectPartnerAnswerResponse:
        """Collect a partner's answer to a query it held for its approver (SHR-5)."""
        for name in ("partner_ori", "approval_reference"):
            if not getattr(request, name).strip():
                raise ValidationError(name, "is required")
        user = current_caller().spiffe_id
        reply = await self._services.queries.collect(
            request.partner_ori,
            request.approval_reference,
            user=user,
            deadline=_deadline(request.deadline_ms),
        )
        await asyncio.to_thread(
            self._services.audit.append,
            "search.partner_answer_collected",
            actor=user,
            agency=self._services.identity.ori,
            peer_ip=peer_ip(context),
            details={
                "partner": reply.partner_ori,
                "approval_reference": request.approval_reference,
                "outcome": reply.outcome.value,
                "exchange_id": reply.exchange_id,
            },
        )
        return pb.CollectPartnerAnswerResponse(partner=_partner(reply))

    def ListHeldQueries(  # noqa: N802 (gRPC method name)
        self, request: pb.ListHeldQueriesRequest, context: Context
    ) -> pb.ListHeldQueriesResponse:
        """The caller's queries partners hold, or refused when collected; oldest first."""
        user = current_user()
        everyone = user is not None and Role.SYSTEM_ADMINISTRATOR in user.roles
        held = self._services.held.listed(
            None if everyone else current_caller().spiffe_id, outcomes=tuple(_HELD_STATES)
        )
        shown, token = page(held, request.page_size, request.page_token, "held_queries")
        caller = current_caller()
        # Plates and cases, maybe others' (AUD-1); a listing, not a query, so not a
        # search.* kind, which the oversight reports count as searches.
        self._services.audit.append(
            "held_queries.listed",
            actor=caller.spiffe_id,
            agency=caller.ori,
            peer_ip=peer_ip(context),
            details={"everyone": everyone, "shown": [r.exchange_id for r in shown]},
        )
        return pb.ListHeldQueriesResponse(
            held_queries=[_held(record) for record in shown], next_page_token=token
        )

    async def GetPartnerImages(  # noqa: N802 (gRPC method name)
        self, request: pb.GetPartnerImagesRequest, context: Context
    ) -> pb.GetPartnerImagesResponse:
        """Ask a partner for the images of reads it listed in its answer to one of our queries."""
        for name in ("partner_ori", "exchange_id"):
            if not getattr(request, name).strip():
                raise ValidationError(name, "is required")
        user, address = current_caller().spiffe_id, peer_ip(context)
        asked = {"partner": request.partner_ori, "answers": request.exchange_id}
        # Our own rules first: the purpose must be one we authorize (ACC-6, ACC-7).
        await asyncio.to_thread(
            self._services.search.authorize_purpose,
            request.purpose,
            request.case_number,
            request.judicial_warrant,
            user=user,
            peer_ip=address,
            asked=asked,
        )
        reply = await self._services.read_images.ask(
            ImageRequest(
                partner_ori=request.partner_ori,
                exchange_id=request.exchange_id,
                references=list(request.read_references),
                purpose=request.purpose,
                case_number=request.case_number,
            ),
            user=user,
            deadline=_deadline(request.deadline_ms),
        )
        await asyncio.to_thread(
            self._services.audit.append,
            "search.partner_images",
            actor=user,
            agency=self._services.identity.ori,
            peer_ip=address,
            purpose=request.purpose,
            case_number=request.case_number,
            details={
                **asked,
                "references": list(request.read_references),
                "outcome": reply.outcome.value,
                "exchange_id": reply.exchange_id,
                "received": [image.read_reference for image in reply.images],
            },
        )
        return pb.GetPartnerImagesResponse(
            outcome=_OUTCOMES[reply.outcome],
            images=[
                pb.PartnerImages(
                    read_reference=image.read_reference,
                    plate_image=image.plate_image,
                    vehicle_image=image.vehicle_image,
                )
                for image in reply.images
            ],
            remaining_references=reply.remaining,
            exchange_id=reply.exchange_id,
            detail=reply.detail,
        )


def _deadline(deadline_ms: int) -> float:
    """Seconds to wait for partners: 0 ms means the default."""
    return (deadline_ms or DEFAULT_DEADLINE_MS) / 1000


def _query(request: pb.SearchReadsRequest | pb.SearchPartnersRequest) -> ReadQuery:
    """The query a request states; the window's bounds are required."""
    paging = request if isinstance(request, pb.SearchReadsRequest) else None
    return ReadQuery(
        plate=request.plate,
        since=required_time(request, "since"),
        until=required_time(request, "until"),
        purpose=request.purpose,
        case_number=request.case_number,
        judicial_warrant=request.judicial_warrant,
        page_size=paging.page_size if paging else 0,
        page_token=paging.page_token if paging else "",
        archived=(
            ArchivedBasis(
                offence=paging.archived.offence,
                court_order=paging.archived.court_order,
                approved_by=paging.archived.approved_by,
            )
            if paging and paging.HasField("archived")
            else None
        ),
    )


def _partner(reply: PartnerReply) -> pb.PartnerAnswer:
    return pb.PartnerAnswer(
        partner_ori=reply.partner_ori,
        outcome=_OUTCOMES[reply.outcome],
        reads=[
            pb.Read(
                plate=read.plate,
                confidence=read.confidence,
                captured_at=read.captured_at,
                camera_id=read.camera_id,
                latitude=read.latitude,
                longitude=read.longitude,
                partner_reference=read.reference,
                has_plate_image=read.has_plate_image,
                has_vehicle_image=read.has_vehicle_image,
            )
            for read in reply.reads
        ],
        truncated=reply.truncated,
        exchange_id=reply.exchange_id,
        detail=reply.detail,
        approval_reference=reply.approval_reference,
    )


def _held(record: HeldQueryRecord) -> pb.HeldQuery:
    message = pb.HeldQuery(
        partner_ori=record.partner_ori,
        approval_reference=record.reference,
        exchange_id=record.exchange_id,
        requesting_user=record.requesting_user,
        plate=record.plate,
        purpose=record.purpose,
        case_number=record.case_number,
        state=_HELD_STATES[record.outcome],
    )
    message.since.FromDatetime(record.since)
    message.until.FromDatetime(record.until)
    message.ask_time.FromDatetime(record.held_at)
    if record.closed_at is not None:
        message.close_time.FromDatetime(record.closed_at)
    return message


def _read(read: ReadRecord, corrections: list[ReadCorrectionRecord]) -> pb.Read:
    message = pb.Read(
        read_id=read.id,
        plate=read.plate,
        confidence=read.confidence,
        camera_id=read.camera_id,
        latitude=read.latitude or 0.0,
        longitude=read.longitude or 0.0,
        plate_image_sha256=read.plate_image_sha256,
        has_plate_image=bool(read.plate_image_sha256),
        has_vehicle_image=bool(read.vehicle_image_sha256),
    )
    message.captured_at.FromDatetime(read.captured_at)
    for correction in corrections:
        shown = message.corrections.add(
            plate=correction.plate, reason=correction.reason, corrected_by=correction.corrected_by
        )
        shown.correct_time.FromDatetime(correction.corrected_at)
    return message
