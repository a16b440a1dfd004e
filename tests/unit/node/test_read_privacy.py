"""CAP-3: a read holds no personally identifying information, stored or sent."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from alpr.capture.v1 import capture_service_pb2
from alpr.federation.v1 import exchange_pb2
from alpr.search.v1 import search_service_pb2

# What CAP-1 asks a read to hold, and the bookkeeping around it: nothing else.
STORED_READ_COLUMNS = {
    "id", "plate", "confidence", "captured_at", "camera_id", "latitude", "longitude",
    "plate_image_sha256", "vehicle_image_sha256", "box_x0", "box_y0", "box_x1", "box_y1",
    "committed_at", "archived_at",
}  # fmt: skip
PERSONAL = ("owner", "registr", "name", "address", "vin", "driver", "birth", "licensee")


def personal_fields(message: Descriptor) -> list[str]:
    """Fields of `message` and the messages it holds whose names speak of a person."""
    found, pending, seen = [], [message], set()
    while pending:
        descriptor = pending.pop()
        if descriptor.full_name in seen:
            continue
        seen.add(descriptor.full_name)
        for field in descriptor.fields:
            if any(word in field.name for word in PERSONAL):
                found.append(f"{descriptor.name}.{field.name}")
            if field.message_type is not None and field.message_type.full_name.startswith("alpr."):
                pending.append(field.message_type)
    return found


class TestReadsHoldNoPersonalData:
    def test_cap3_the_stored_read_has_only_the_cap1_columns(self, engine: Engine) -> None:
        columns = {column["name"] for column in inspect(engine).get_columns("plate_read")}
        assert columns == STORED_READ_COLUMNS

    def test_cap3_no_read_message_carries_owner_or_registration(self) -> None:
        messages = (
            capture_service_pb2.PlateRead.DESCRIPTOR,
            capture_service_pb2.FramePlate.DESCRIPTOR,
            search_service_pb2.Read.DESCRIPTOR,
            exchange_pb2.SharedRead.DESCRIPTOR,
            exchange_pb2.ReadAnswer.DESCRIPTOR,
        )
        assert [field for message in messages for field in personal_fields(message)] == []
