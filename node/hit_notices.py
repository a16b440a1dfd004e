"""Wakes this process's hit broker when any process serving the agency commits an event.

Every transaction that appends to the hit feed on PostgreSQL also sends a NOTIFY on
`node.hits.FEED_CHANNEL`; the server delivers it, at commit, to every session LISTENing in
that database. A `FeedListener` keeps one such session per process and wakes the broker
(`HitBroker.wake`) for each notice, so a hit committed by one gateway process reaches the
streams held by another at once rather than at the broker's next poll.

A notice sent while the session was down is lost, so on every (re)connection the listener
wakes the broker once after LISTEN: whatever was committed meanwhile is read then. It
reconnects with backoff until cancelled. SQLite has no such thing: there the broker's poll
covers other processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.engine import Engine

from node.hits import FEED_CHANNEL

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0


class FeedListener:
    """One LISTEN session on the store, waking the broker per notice."""

    def __init__(
        self,
        conninfo: str,
        wake: Callable[[], None],
        *,
        retry_seconds: float = RETRY_SECONDS,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
    ) -> None:
        """Listen on the PostgreSQL database `conninfo` names; call `wake` per notice.

        Args:
            conninfo: A libpq connection string or ``postgresql://`` URL.
            wake: Called after each (re)connection and for each notice.
            retry_seconds: The first wait before reconnecting; it doubles on each failure.
            max_retry_seconds: The longest wait before reconnecting.
        """
        self._conninfo = conninfo
        self._wake = wake
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds

    @classmethod
    def for_engine(cls, engine: Engine, wake: Callable[[], None]) -> FeedListener | None:
        """A listener on `engine`'s database if it is PostgreSQL; None for SQLite."""
        if engine.dialect.name != "postgresql":
            return None
        url = engine.url.set(drivername="postgresql")
        return cls(url.render_as_string(hide_password=False), wake)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after any failure."""
        import psycopg  # noqa: PLC0415 (the `postgres` extra: only a PostgreSQL node has it)

        delay = self._retry
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {FEED_CHANNEL}")
                    delay = self._retry
                    self._wake()
                    async for _ in connection.notifies():
                        self._wake()
            except (psycopg.Error, OSError) as error:
                log.warning(
                    "the hit feed listener lost the store (%s); retrying in %.1f s", error, delay
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry)
