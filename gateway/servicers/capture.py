"""CaptureService: cameras hand the node their reads (HOT-1, CAP-1, CAP-3)."""

from __future__ import annotations

import asyncio

from alpr.capture.v1 import capture_service_pb2 as pb
from alpr.capture.v1 import capture_service_pb2_grpc as pb_grpc
from gateway.interceptors import Context, current_caller, peer_ip
from gateway.services import Services
from node.reads import NewRead
from node.store.models import utc


class CaptureServicer(pb_grpc.CaptureServiceServicer):
    """Takes reads from the agency's cameras; acknowledges each batch once committed."""

    def __init__(self, services: Services) -> None:
        """Serve with the node's `services`."""
        self._services = services

    async def SubmitReads(  # noqa: N802 (gRPC method name)
        self, request: pb.SubmitReadsRequest, context: Context
    ) -> pb.SubmitReadsResponse:
        """Commit a camera's reads and the hits they raise, then acknowledge them."""
        reads = [
            NewRead(
                plate=read.plate,
                confidence=read.confidence,
                captured_at=utc(read.captured_at.ToDatetime()),
                latitude=read.latitude if read.latitude or read.longitude else None,
                longitude=read.longitude if read.latitude or read.longitude else None,
                plate_image=read.plate_image,
                vehicle_image=read.vehicle_image,
            )
            for read in request.reads
        ]
        # Images are written and synced, and the store commits: not on the event loop.
        committed = await asyncio.to_thread(self._services.reads.commit, request.camera_id, reads)
        if committed.hit_cursors:
            # Off the event loop too: the streams fanning the hit out share it.
            await asyncio.to_thread(
                self._services.audit.append,
                "capture.hits",
                actor=current_caller().spiffe_id,
                agency=self._services.identity.ori,
                peer_ip=peer_ip(context),
                details={"camera": request.camera_id, "hits": len(committed.hit_cursors)},
            )
        return pb.SubmitReadsResponse(
            read_ids=committed.read_ids, hit_count=len(committed.hit_cursors)
        )
