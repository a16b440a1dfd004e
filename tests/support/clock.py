"""A clock tests move by hand: time-dependent rules are tested without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class ManualClock:
    """Returns `now` until a test advances it."""

    def __init__(self, now: datetime = START) -> None:
        """Start at `now`."""
        self.now = now

    def __call__(self) -> datetime:
        """The current time."""
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by `delta`; the new time."""
        self.now += delta
        return self.now
