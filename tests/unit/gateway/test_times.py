"""A caller's times are checked as they come: one no datetime holds is INVALID_ARGUMENT."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from alpr.admin.v1 import records_pb2
from gateway.servicers.times import optional_time, required_time, time_of, timestamp
from node.errors import ValidationError

MOMENT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PAST_9999 = 10**12  # seconds since 1970: about the year 33658


def incident(seconds: int | None) -> records_pb2.Incident:
    message = records_pb2.Incident(description="x")
    if seconds is not None:
        message.discover_time.seconds = seconds
    return message


def test_a_time_goes_on_the_wire_and_back() -> None:
    stamp = timestamp(MOMENT)
    assert stamp is not None
    assert time_of(stamp, "t") == MOMENT
    assert timestamp(None) is None


@pytest.mark.parametrize("seconds", [PAST_9999, -(10**12)])
def test_fails_naming_the_field_for_a_time_no_datetime_holds(seconds: int) -> None:
    with pytest.raises(ValidationError, match="is not a valid time") as raised:
        time_of(Timestamp(seconds=seconds), "discover_time")
    assert raised.value.field == "discover_time"


def test_required_fails_when_missing_and_optional_is_none() -> None:
    with pytest.raises(ValidationError, match="is required"):
        required_time(incident(None), "discover_time")
    assert optional_time(incident(None), "discover_time") is None
    given = int(MOMENT.timestamp())
    assert required_time(incident(given), "discover_time") == MOMENT
    with pytest.raises(ValidationError, match="is not a valid time"):
        optional_time(incident(PAST_9999), "discover_time")
