"""The feed listener: a hit committed by any process wakes this one's broker (HOT-3).

PostgreSQL only: the writer's NOTIFY is delivered at commit to every LISTENing session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import Engine

from node.ed25519 import DataKey
from node.hit_notices import FeedListener
from node.hits import FEED_CHANNEL, HitFeed
from node.store import create_engine, sqlite_url, upgrade
from tests.support.clock import ManualClock

TIMEOUT = 30


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


class Wakes:
    """Counts wakes; a test awaits the next one."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self._changed.set()

    async def reach(self, count: int) -> None:
        while self.count < count:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), TIMEOUT)


@pytest.mark.postgres
def test_hot3_a_committed_event_wakes_the_listener_even_after_its_connection_dropped(
    pg_engine: Engine, postgres_url: str, clock: ManualClock
) -> None:
    feed = HitFeed(pg_engine, data_key=DataKey.generate(), clock=clock)

    async def scenario() -> None:
        wakes = Wakes()
        assert isinstance(FeedListener.for_engine(pg_engine, wakes), FeedListener)
        listener = FeedListener(postgres_url, wakes, retry_seconds=0.01)
        task = asyncio.create_task(listener.run())
        try:
            await wakes.reach(1)  # listening: it wakes the broker once on connecting
            await asyncio.to_thread(feed.record_cancellation, "e1", "stolen")
            await wakes.reach(2)
            async with await psycopg.AsyncConnection.connect(
                postgres_url, autocommit=True
            ) as admin:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
                    (f"LISTEN {FEED_CHANNEL}",),
                )
            await wakes.reach(3)  # reconnected: woken once for what it may have missed
            await asyncio.to_thread(feed.record_cancellation, "e2", "stolen")
            await wakes.reach(4)
        finally:
            task.cancel()

    asyncio.run(scenario())


def test_fails_to_make_a_listener_for_sqlite(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path / "node.db"))
    assert FeedListener.for_engine(engine, lambda: None) is None
