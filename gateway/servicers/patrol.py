"""PatrolService: hits streamed to every patrol client, dispositions taken (HOT-3…HOT-5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from alpr.patrol.v1 import patrol_service_pb2 as pb
from alpr.patrol.v1 import patrol_service_pb2_grpc as pb_grpc
from gateway.interceptors import Context, current_caller
from gateway.services import Services
from node.errors import ValidationError
from node.hit_broker import Heartbeat, Overflow
from node.hits import FeedEvent, FeedEventKind

HEARTBEAT_SECONDS = 15.0


class PatrolServicer(pb_grpc.PatrolServiceServicer):
    """Serves the agency's patrol clients."""

    def __init__(self, services: Services, *, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        """Serve with the node's `services`, a heartbeat after each quiet `heartbeat_seconds`."""
        self._services = services
        self._heartbeat = heartbeat_seconds

    async def StreamHits(  # noqa: N802 (gRPC method name)
        self, request: pb.StreamHitsRequest, context: Context
    ) -> AsyncIterator[pb.StreamHitsResponse]:
        """Everything after the client's cursor, then each event as it is committed."""
        broker = self._services.broker
        with broker.subscribe(request.after_cursor) as subscription:
            if request.after_cursor == 0:
                await subscription.start_from_now()
            elif request.after_cursor > await asyncio.to_thread(broker.feed.last_cursor):
                raise ValidationError("after_cursor", "is past the last event of this node")
            async for item in subscription.events(self._heartbeat):
                yield _response(item)

    async def RecordDisposition(  # noqa: N802 (gRPC method name)
        self, request: pb.RecordDispositionRequest, context: Context
    ) -> pb.RecordDispositionResponse:
        """Record what the officer found (HOT-4); every stream hears of it."""
        if not request.hit_id:
            raise ValidationError("hit_id", "is required")
        cursor = await asyncio.to_thread(
            self._services.hits.record_disposition,
            request.hit_id,
            request.disposition,
            request.note,
            current_caller().spiffe_id,
        )
        self._services.broker.wake()
        return pb.RecordDispositionResponse(cursor=cursor)


def _response(item: FeedEvent | Heartbeat | Overflow) -> pb.StreamHitsResponse:
    match item:
        case Heartbeat(cursor=cursor):
            response = pb.StreamHitsResponse(cursor=cursor, heartbeat=pb.Heartbeat())
            response.heartbeat.sent_at.GetCurrentTime()
            return response
        case Overflow(cursor=cursor):
            return pb.StreamHitsResponse(cursor=cursor, overflow=pb.Overflow())
        case FeedEvent(cursor=cursor, kind=FeedEventKind.HIT, message=pb.Hit() as hit):
            return pb.StreamHitsResponse(cursor=cursor, hit=hit)
        case FeedEvent(cursor=cursor, message=pb.Cancellation() as cancellation):
            return pb.StreamHitsResponse(cursor=cursor, cancellation=cancellation)
        case FeedEvent(cursor=cursor, message=pb.DispositionRecorded() as disposition):
            return pb.StreamHitsResponse(cursor=cursor, disposition=disposition)
    raise AssertionError(f"unexpected feed item {item!r}")  # pragma: no cover
