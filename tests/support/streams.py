"""A patrol client's hit stream read in a thread, so a test can wait for what arrives."""

from __future__ import annotations

import queue
import threading
import time

import grpc

from alpr.patrol.v1 import patrol_service_pb2 as pb

TIMEOUT = 10


class Stream:
    """A StreamHits call read in a thread; `next` waits (bounded) for the next message."""

    def __init__(self, call: grpc.CallIterator[pb.StreamHitsResponse]) -> None:
        """Start reading `call`."""
        self.call = call
        self._received: queue.Queue[pb.StreamHitsResponse | None] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        try:
            for message in self.call:
                self._received.put(message)
        except grpc.RpcError:
            pass
        self._received.put(None)

    def next(self, *, skip_heartbeats: bool = True) -> pb.StreamHitsResponse:
        """The next message (heartbeats skipped unless asked for); fails after `TIMEOUT` s.

        The bound holds while heartbeats keep arriving, so a missing event fails the test
        rather than hanging it.
        """
        deadline = time.monotonic() + TIMEOUT
        while True:
            message = self._received.get(timeout=max(0.0, deadline - time.monotonic()))
            assert message is not None, "the stream ended"
            if not (skip_heartbeats and message.HasField("heartbeat")):
                return message

    def drain(self) -> None:
        """Forget the messages arrived so far."""
        while True:
            try:
                self._received.get_nowait()
            except queue.Empty:
                return

    def events(self, count: int) -> list[pb.StreamHitsResponse]:
        """The next `count` messages other than heartbeats."""
        return [self.next() for _ in range(count)]

    def ending(self) -> tuple[grpc.StatusCode, str]:
        """How the node ended the stream, once it does (what arrives first is skipped).

        Fails after `TIMEOUT` s, so a stream that is never ended fails the test.
        """
        deadline = time.monotonic() + TIMEOUT
        while self._received.get(timeout=max(0.0, deadline - time.monotonic())) is not None:
            pass
        return self.call.code(), self.call.details() or ""

    def close(self) -> None:
        """Cancel the call and wait for the reading thread to end (idempotent)."""
        self.call.cancel()  # type: ignore[no-untyped-call]
        self._pump_thread.join(timeout=TIMEOUT)
