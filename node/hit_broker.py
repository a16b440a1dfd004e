"""Fans the hit feed out to every open stream of this process (HOT-3).

The broker reads committed events from the feed (`node.hits.HitFeed`) and offers each
to every subscription's bounded queue without ever waiting: a slow client's queue fills,
it is told to resume from its cursor, and no other client is held up. It reads when
woken (by this process after a commit, or by PostgreSQL's NOTIFY from another process
serving the agency) and at least every `poll_seconds`, so an event committed anywhere
reaches every stream.

A subscription replays from the store what came after the client's cursor, then takes
the live events, skipping any it already sent: it registers before it replays, so an
event is either replayed or queued, and nothing is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from node.hits import FeedEvent, HitFeed

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Heartbeat:
    """Nothing happened for a while; `cursor` is the last event sent."""

    cursor: int


@dataclass(frozen=True)
class Overflow:
    """The client fell behind; it should reconnect after `cursor`, the last event sent."""

    cursor: int


class Subscription:
    """One client's view of the feed: everything after its cursor, in order, once."""

    def __init__(self, broker: HitBroker, after_cursor: int, queue_size: int) -> None:
        """Follow `broker` from after `after_cursor`."""
        self._broker = broker
        self.cursor = after_cursor
        self._queue: asyncio.Queue[FeedEvent] = asyncio.Queue(queue_size)
        self._overflowed = False
        self._woken = asyncio.Event()

    def offer(self, event: FeedEvent) -> None:
        """Queue a live event without waiting; a full queue marks the client overflowed."""
        if self._overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._overflowed = True
        self._woken.set()

    async def start_from_now(self) -> None:
        """Skip everything committed before now: for a client with no cursor yet."""
        self.cursor = await asyncio.to_thread(self._broker.feed.last_cursor)

    async def events(
        self, heartbeat_seconds: float
    ) -> AsyncIterator[FeedEvent | Heartbeat | Overflow]:
        """Replayed events, then live ones, with a heartbeat after each quiet interval.

        Ends after an `Overflow`.
        """
        feed = self._broker.feed
        while page := await asyncio.to_thread(feed.after, self.cursor):
            for event in page:
                self.cursor = event.cursor
                yield event
        while True:
            while not self._queue.empty():
                event = self._queue.get_nowait()
                if event.cursor > self.cursor:
                    self.cursor = event.cursor
                    yield event
            if self._overflowed:
                yield Overflow(self.cursor)
                return
            self._woken.clear()
            if self._queue.empty():
                try:
                    await asyncio.wait_for(self._woken.wait(), heartbeat_seconds)
                except TimeoutError:
                    yield Heartbeat(self.cursor)


class HitBroker:
    """Reads the feed once per wake and hands each event to every subscription."""

    def __init__(
        self,
        feed: HitFeed,
        *,
        queue_size: int = QUEUE_SIZE,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        """Fan `feed` out; each client may fall `queue_size` events behind."""
        self.feed = feed
        self._queue_size = queue_size
        self._poll_seconds = poll_seconds
        self._subscriptions: set[Subscription] = set()
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatched = -1

    @contextlib.contextmanager
    def subscribe(self, after_cursor: int) -> Iterator[Subscription]:
        """A subscription from after `after_cursor`, for as long as the block runs."""
        subscription = Subscription(self, after_cursor, self._queue_size)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    def wake(self) -> None:
        """Read the feed now: something was committed. Safe from any thread."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._wakeup.set)

    async def run(self) -> None:
        """Dispatch until cancelled: on each wake, and every `poll_seconds` regardless."""
        self._loop = asyncio.get_running_loop()
        self._dispatched = await asyncio.to_thread(self.feed.last_cursor)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_seconds)
            self._wakeup.clear()
            try:
                await self._dispatch()
            except Exception:
                log.exception("the hit feed could not be read; retrying")

    async def _dispatch(self) -> None:
        while page := await asyncio.to_thread(self.feed.after, self._dispatched):
            for event in page:
                for subscription in list(self._subscriptions):
                    subscription.offer(event)
                self._dispatched = event.cursor
