"""The hit broker: every stream gets every event once, in order; none holds up another (HOT-3)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
from sqlalchemy.engine import Engine

from node.ed25519 import DataKey
from node.hit_broker import Heartbeat, HitBroker, Overflow, Subscription
from node.hits import FeedEvent, HitFeed
from tests.support.clock import ManualClock
from tests.unit.node.test_hits import record

_T = TypeVar("_T")
Item = FeedEvent | Heartbeat | Overflow


@pytest.fixture
def feed(engine: Engine, clock: ManualClock) -> HitFeed:
    return HitFeed(engine, data_key=DataKey.generate(), clock=clock)


def with_broker(
    feed: HitFeed, body: Callable[[HitBroker], Awaitable[_T]], *, queue_size: int = 256
) -> _T:
    """Run `body` with a broker dispatching in the background."""

    async def main() -> _T:
        broker = HitBroker(feed, queue_size=queue_size, poll_seconds=0.05)
        task = asyncio.create_task(broker.run())
        try:
            return await asyncio.wait_for(body(broker), 30)
        finally:
            task.cancel()

    return asyncio.run(main())


async def take(items: AsyncIterator[Item], count: int) -> list[Item]:
    return [await anext(items) for _ in range(count)]


def cursors(items: list[Item]) -> list[int]:
    return [item.cursor for item in items if isinstance(item, FeedEvent)]


class TestBroker:
    def test_hot3_a_resuming_client_gets_what_it_missed_then_live_with_no_duplicate(
        self, engine: Engine, feed: HitFeed
    ) -> None:
        record(engine, feed, count=5)

        async def body(broker: HitBroker) -> list[Item]:
            with broker.subscribe(2) as subscription:
                items = subscription.events(heartbeat_seconds=5)
                first = await take(items, 3)  # 3, 4, 5 from the store
                await asyncio.to_thread(record, engine, feed, "e1", 3)
                broker.wake()
                return first + await take(items, 3)

        assert cursors(with_broker(feed, body)) == [3, 4, 5, 6, 7, 8]

    def test_hot3_a_slow_client_overflows_without_holding_up_a_fast_one(
        self, engine: Engine, feed: HitFeed
    ) -> None:
        async def body(broker: HitBroker) -> tuple[list[Item], list[Item]]:
            with broker.subscribe(0) as slow, broker.subscribe(0) as fast:
                fast_items = fast.events(heartbeat_seconds=5)
                for _ in range(5):
                    await asyncio.to_thread(record, engine, feed, "e1", 4)
                    broker.wake()
                # The fast client gets all 20 while the slow one has read nothing.
                received = await take(fast_items, 20)
                return received, await drain(slow)

        fast, slow = with_broker(feed, body, queue_size=4)
        assert cursors(fast) == list(range(1, 21))
        assert isinstance(slow[-1], Overflow)
        # What it did get is in order with no gap, and it is told where to resume from.
        assert cursors(slow) == list(range(1, len(slow)))
        assert slow[-1].cursor == len(slow) - 1

    def test_hot3_sends_a_heartbeat_when_nothing_happens(
        self, engine: Engine, feed: HitFeed
    ) -> None:
        record(engine, feed)

        async def body(broker: HitBroker) -> list[Item]:
            with broker.subscribe(0) as subscription:
                await subscription.start_from_now()
                return await take(subscription.events(heartbeat_seconds=0.01), 1)

        assert with_broker(feed, body) == [Heartbeat(1)]


async def drain(subscription: Subscription) -> list[Item]:
    """Everything a subscription yields until it overflows."""
    found: list[Item] = []
    async for item in subscription.events(heartbeat_seconds=5):
        found.append(item)
        if isinstance(item, Overflow):
            break
    return found
