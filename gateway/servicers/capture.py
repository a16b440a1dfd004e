"""CaptureService: cameras hand the node their reads or frames (HOT-1, CAP-1, CAP-2, CAP-3)."""

from __future__ import annotations

import asyncio

from alpr.capture.v1 import capture_service_pb2 as pb
from alpr.capture.v1 import capture_service_pb2_grpc as pb_grpc
from gateway.interceptors import Context, current_caller, peer_ip
from gateway.services import Services
from node.capture.frames import check_frames
from node.errors import ValidationError
from node.reads import Committed, NewRead, check_camera
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
        committed = await self._commit(request.camera_id, reads, context)
        return pb.SubmitReadsResponse(
            read_ids=committed.read_ids, hit_count=len(committed.hit_cursors)
        )

    async def SubmitFrames(  # noqa: N802 (gRPC method name)
        self, request: pb.SubmitFramesRequest, context: Context
    ) -> pb.SubmitFramesResponse:
        """Find and read the plates in a camera's frames, commit the reads, then acknowledge.

        The call is checked (frame count and sizes, camera id) and counted against the
        camera's rate limit before any frame is decoded.
        """
        frames = list(request.frames)
        check_frames([frame.image for frame in frames])
        check_camera(request.camera_id)
        self._services.frame_limit.admit(request.camera_id, len(frames))
        results = await self._services.frames.read([frame.image for frame in frames])
        for number, result in enumerate(results):
            if result.problem:
                raise ValidationError(f"frames[{number}].image", result.problem)
        reads = [
            NewRead(
                plate=plate.text,
                confidence=plate.confidence,
                captured_at=utc(frame.captured_at.ToDatetime()),
                latitude=frame.latitude if frame.latitude or frame.longitude else None,
                longitude=frame.longitude if frame.latitude or frame.longitude else None,
                plate_image=plate.crop,
                vehicle_image=frame.image,
            )
            for frame, result in zip(frames, results, strict=True)
            for plate in result.plates
        ]
        committed = Committed([])
        if reads:
            committed = await self._commit(request.camera_id, reads, context)
        read_ids = iter(committed.read_ids)
        return pb.SubmitFramesResponse(
            frames=[
                pb.FrameReads(
                    plates=[
                        pb.FramePlate(
                            read_id=next(read_ids),
                            plate=plate.text,
                            confidence=plate.confidence,
                            detection_confidence=plate.detection_confidence,
                            box=plate.box,
                        )
                        for plate in result.plates
                    ]
                )
                for result in results
            ],
            hit_count=len(committed.hit_cursors),
        )

    async def _commit(self, camera_id: str, reads: list[NewRead], context: Context) -> Committed:
        # Images are written and synced, and the store commits: not on the event loop.
        committed = await asyncio.to_thread(self._services.reads.commit, camera_id, reads)
        if committed.hit_cursors:
            # Off the event loop too: the streams fanning the hit out share it.
            await asyncio.to_thread(
                self._services.audit.append,
                "capture.hits",
                actor=current_caller().spiffe_id,
                agency=self._services.identity.ori,
                peer_ip=peer_ip(context),
                details={"camera": camera_id, "hits": len(committed.hit_cursors)},
            )
        return committed
