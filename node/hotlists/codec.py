"""Hotlist entry fields to bytes and back: what is encrypted at rest and in transit (HOT-2)."""

from __future__ import annotations

from datetime import UTC

from google.protobuf.message import DecodeError

from alpr.common.v1 import hotlist_pb2
from node.errors import ValidationError
from node.hotlists.entry import HotlistEntry, ListType


def fields_message(entry: HotlistEntry, list_name: str) -> hotlist_pb2.HotlistEntryFields:
    """The non-plate fields of `entry`, as a message."""
    message = hotlist_pb2.HotlistEntryFields(
        state=entry.state,
        list_type=entry.list_type.value,
        reason=entry.reason,
        case_number=entry.case_number,
        ncic_number=entry.ncic_number,
        contact=entry.contact,
        list_name=list_name,
    )
    if entry.expires_at is not None:
        message.expires_at.FromDatetime(entry.expires_at)
    return message


def entry_from_message(plate: str, message: hotlist_pb2.HotlistEntryFields) -> HotlistEntry:
    """The entry for `plate` with the fields in `message`, validated.

    Raises:
        ValidationError: A field is invalid, or the category is forbidden (ACC-7).
    """
    try:
        list_type = ListType(message.list_type)
    except ValueError as error:
        raise ValidationError("list_type", f"{message.list_type!r} is no list type") from error
    return HotlistEntry(
        plate=plate,
        state=message.state,
        list_type=list_type,
        reason=message.reason,
        case_number=message.case_number,
        ncic_number=message.ncic_number,
        expires_at=message.expires_at.ToDatetime(UTC) if message.HasField("expires_at") else None,
        contact=message.contact,
    )


def encode_fields(entry: HotlistEntry, list_name: str) -> bytes:
    """The non-plate fields of `entry`, serialized for encryption."""
    return fields_message(entry, list_name).SerializeToString()


def decode_fields(plate: str, data: bytes) -> tuple[HotlistEntry, str]:
    """The entry and its list name from `encode_fields`' bytes.

    Raises:
        ValidationError: The bytes are not entry fields, or describe an invalid entry.
    """
    message = hotlist_pb2.HotlistEntryFields()
    try:
        message.ParseFromString(data)
    except DecodeError as error:
        raise ValidationError("fields", "not hotlist entry fields") from error
    return entry_from_message(plate, message), message.list_name
