"""Times on the wire: a datetime to a Timestamp, and a caller's Timestamp checked back."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from node.errors import ValidationError


def timestamp(moment: datetime | None) -> Timestamp | None:
    """A datetime on the wire."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def time_of(stamp: Timestamp, field: str) -> datetime:
    """The aware UTC time `stamp` holds.

    Raises:
        ValidationError: Naming `field`: no datetime holds it (before year 1 or after 9999),
            which would otherwise fail deep in the call as an internal error.
    """
    try:
        return stamp.ToDatetime(UTC)
    except (ValueError, OverflowError) as error:
        raise ValidationError(field, "is not a valid time") from error


def required_time(message: Message, name: str) -> datetime:
    """The time `message`'s field `name` holds, which the caller must give.

    Raises:
        ValidationError: Naming `name`: it is missing or no valid time.
    """
    if not message.HasField(name):
        raise ValidationError(name, "is required")
    return time_of(getattr(message, name), name)


def optional_time(message: Message, name: str) -> datetime | None:
    """The time `message`'s field `name` holds, if the caller gave one.

    Raises:
        ValidationError: Naming `name`: it is no valid time.
    """
    return time_of(getattr(message, name), name) if message.HasField(name) else None
