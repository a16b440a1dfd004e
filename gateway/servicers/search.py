"""SearchService: the agency's investigators search its own reads (ACC-6, ACC-7, AUD-1)."""

from __future__ import annotations

import asyncio

from alpr.search.v1 import search_service_pb2 as pb
from alpr.search.v1 import search_service_pb2_grpc as pb_grpc
from gateway.interceptors import Context, current_caller, peer_ip
from gateway.services import Services
from node.errors import ValidationError
from node.search import ReadQuery
from node.store.capture_models import ReadRecord
from node.store.models import utc


class SearchServicer(pb_grpc.SearchServiceServicer):
    """Serves the agency's users."""

    def __init__(self, services: Services) -> None:
        """Serve with the node's `services`."""
        self._services = services

    async def SearchReads(  # noqa: N802 (gRPC method name)
        self, request: pb.SearchReadsRequest, context: Context
    ) -> pb.SearchReadsResponse:
        """The reads of a plate in a window, for a stated purpose and case."""
        for name in ("since", "until"):
            if not request.HasField(name):
                raise ValidationError(name, "is required")
        query = ReadQuery(
            plate=request.plate,
            since=utc(request.since.ToDatetime()),
            until=utc(request.until.ToDatetime()),
            purpose=request.purpose,
            case_number=request.case_number,
            judicial_warrant=request.judicial_warrant,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        page = await asyncio.to_thread(
            self._services.search.search,
            query,
            user=current_caller().spiffe_id,
            peer_ip=peer_ip(context),
        )
        return pb.SearchReadsResponse(
            reads=[_read(read) for read in page.reads], next_page_token=page.next_page_token
        )


def _read(read: ReadRecord) -> pb.Read:
    message = pb.Read(
        read_id=read.id,
        plate=read.plate,
        confidence=read.confidence,
        camera_id=read.camera_id,
        latitude=read.latitude or 0.0,
        longitude=read.longitude or 0.0,
        plate_image_sha256=read.plate_image_sha256,
    )
    message.captured_at.FromDatetime(read.captured_at)
    return message
