"""CaptureService: cameras hand the node their reads or frames (HOT-1, CAP-1, CAP-2, CAP-3).

Each call is checked (counts, sizes, fields, the camera's ids) and counted against the
camera's rate limit before anything is decoded or stored. A frame or read sent again
under the camera's own id (`frame_id`, `camera_read_id`) is answered as it was the first
time, from what the node kept (`node.reads`): its reads are stored and matched once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message

from alpr.capture.v1 import capture_service_pb2 as pb
from alpr.capture.v1 import capture_service_pb2_grpc as pb_grpc
from gateway.interceptors import Context, current_caller, peer_ip
from gateway.servicers.times import time_of
from gateway.services import Services
from node.capture.frames import check_frames
from node.errors import ValidationError
from node.reads import (
    CameraKey,
    Committed,
    NewRead,
    Sent,
    check_camera,
    check_captured_at,
    check_keys,
    check_reads,
)


class CaptureServicer(pb_grpc.CaptureServiceServicer):
    """Takes reads from the agency's cameras; acknowledges each batch once committed."""

    def __init__(self, services: Services) -> None:
        """Serve with the node's `services`."""
        self._services = services

    async def SubmitReads(  # noqa: N802 (gRPC method name)
        self, request: pb.SubmitReadsRequest, context: Context
    ) -> pb.SubmitReadsResponse:
        """Commit a camera's reads and the hits they raise, then acknowledge them."""
        now = self._services.clock()
        reads = [
            NewRead(
                plate=read.plate,
                confidence=read.confidence,
                captured_at=_captured_at(read, f"reads[{number}]", now),
                latitude=read.latitude if read.latitude or read.longitude else None,
                longitude=read.longitude if read.latitude or read.longitude else None,
                plate_image=read.plate_image,
                vehicle_image=read.vehicle_image,
            )
            for number, read in enumerate(request.reads)
        ]
        check_camera(request.camera_id)
        check_reads(reads, now=now)
        keys = await asyncio.to_thread(
            _camera_keys,
            request.reads,
            [read.camera_read_id for read in request.reads],
            "reads[{}].camera_read_id",
        )
        check_keys(keys)
        self._services.read_limit.admit(request.camera_id, len(reads))
        sent = [
            Sent(key=key, reads=[read], answer=read.id.encode())
            for key, read in zip(keys, reads, strict=True)
        ]
        committed = await self._take(request.camera_id, sent, context)
        return pb.SubmitReadsResponse(
            read_ids=[taken.answer.decode() for taken in committed.taken],
            hit_count=sum(taken.hits for taken in committed.taken),
        )

    async def SubmitFrames(  # noqa: N802 (gRPC method name)
        self, request: pb.SubmitFramesRequest, context: Context
    ) -> pb.SubmitFramesResponse:
        """Find and read the plates in a camera's frames, commit the reads, then acknowledge.

        A frame taken before under its id is not read again: its first answer stands.
        """
        frames = list(request.frames)
        check_frames([frame.image for frame in frames])
        now = self._services.clock()
        taken_at = [_captured_at(frame, f"frames[{n}]", now) for n, frame in enumerate(frames)]
        check_camera(request.camera_id)
        keys = await asyncio.to_thread(
            _camera_keys, frames, [frame.frame_id for frame in frames], "frames[{}].frame_id"
        )
        check_keys(keys)
        self._services.frame_limit.admit(request.camera_id, len(frames))
        earlier = await asyncio.to_thread(self._services.reads.earlier, request.camera_id, keys)
        unread = [n for n, key in enumerate(keys) if key.key not in earlier]
        results = (
            await self._services.frames.read([frames[n].image for n in unread]) if unread else []
        )
        sent = []
        for number, result in zip(unread, results, strict=True):
            if result.problem:
                raise ValidationError(f"frames[{number}].image", result.problem)
            frame = frames[number]
            reads = [
                NewRead(
                    plate=plate.text,
                    confidence=plate.confidence,
                    captured_at=taken_at[number],
                    latitude=frame.latitude if frame.latitude or frame.longitude else None,
                    longitude=frame.longitude if frame.latitude or frame.longitude else None,
                    plate_image=plate.crop,
                    vehicle_image=frame.image,
                    box=plate.box,
                )
                for plate in result.plates
            ]
            answer = pb.FrameReads(
                plates=[
                    pb.FramePlate(
                        read_id=read.id,
                        plate=plate.text,
                        confidence=plate.confidence,
                        detection_confidence=plate.detection_confidence,
                        box=plate.box,
                    )
                    for read, plate in zip(reads, result.plates, strict=True)
                ]
            )
            sent.append(Sent(key=keys[number], reads=reads, answer=answer.SerializeToString()))
        committed = await self._take(request.camera_id, sent, context) if sent else Committed([])
        answers = dict(zip(unread, committed.taken, strict=True))
        taken = [earlier.get(key.key) or answers[n] for n, key in enumerate(keys)]
        return pb.SubmitFramesResponse(
            frames=[pb.FrameReads.FromString(answer.answer) for answer in taken],
            hit_count=sum(answer.hits for answer in taken),
        )

    async def _take(self, camera_id: str, sent: list[Sent], context: Context) -> Committed:
        # Images are written and synced, and the store commits: not on the event loop.
        committed = await asyncio.to_thread(self._services.reads.take, camera_id, sent)
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


def _captured_at(sent: pb.PlateRead | pb.CameraFrame, where: str, now: datetime) -> datetime:
    """When the camera took a read or frame: a time it must send (CAP-1), checked.

    Raises:
        ValidationError: It sent none, one no datetime can hold, or one `check_captured_at`
            refuses.
    """
    if not sent.HasField("captured_at"):
        raise ValidationError(f"{where}.captured_at", "is required: when the camera took it")
    moment = time_of(sent.captured_at, f"{where}.captured_at")
    check_captured_at(moment, where, now)
    return moment


def _camera_keys(items: Sequence[Message], ids: Sequence[str], where: str) -> list[CameraKey]:
    """The camera's id of each of `items` (frames, reads), with a digest of the item.

    `where` names the id's field, ``{}`` standing for the item's number. The digest is of
    the item as sent, so an id sent again with anything else is told apart; it is
    computed off the event loop, as frames run to megabytes.
    """
    return [
        CameraKey(
            key=key,
            field=where.format(number),
            digest=hashlib.sha256(item.SerializeToString(deterministic=True)).hexdigest()
            if key
            else "",
        )
        for number, (item, key) in enumerate(zip(items, ids, strict=True))
    ]
