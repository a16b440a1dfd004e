"""Time comes from an injected clock, so every time-dependent rule is tested without sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Now, as an aware UTC datetime: the clock a serving node uses."""
    return datetime.now(UTC)
