"""Hotlist entry fields to bytes and back: what is encrypted at rest and in transit (HOT-2)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import NamedTuple

from google.protobuf.message import DecodeError

from alpr.common.v1 import hotlist_pb2
from node.errors import ValidationError
from node.hotlists.entry import (
    FORBIDDEN_LIST_TYPES,
    FORBIDDEN_REASON,
    MAX_CASE_NUMBER,
    MAX_CONTACT,
    MAX_REASON,
    HotlistEntry,
    ListType,
    PlatePattern,
)
from node.identity import STATE_CODES

# Entries per chunk, as lists are stored and sent.
CHUNK_SIZE = 1000


class EntryChunk(NamedTuple):
    """Up to `CHUNK_SIZE` entries as they are stored and sent, in one order.

    Attributes:
        size: How many entries.
        entry_ids: Their ids, joined by `join_column`.
        plates: Their plates or partial patterns, joined by `join_column`.
        fields: Their other fields, a serialized `HotlistEntryFieldsList`.
    """

    size: int
    entry_ids: bytes
    plates: bytes
    fields: bytes


def chunk_digest(entry_ids: bytes, plates: bytes, fields: bytes) -> bytes:
    """The SHA-256 naming a chunk's entries in clear: ids, plates and fields, each length-prefixed.

    A snapshot's manifest names each chunk by it, so the issuer can sign the manifest
    before encrypting (or even reading) a chunk, and the receiver checks each chunk once
    it has decrypted it.
    """
    digest = hashlib.sha256()
    for part in (entry_ids, plates, fields):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def entry_chunks(
    entry_ids: Sequence[str],
    plates: Sequence[str],
    fields: Sequence[hotlist_pb2.HotlistEntryFields],
) -> list[EntryChunk]:
    """Entries given column by column, in chunks of `CHUNK_SIZE`."""
    return [
        EntryChunk(
            len(fields[start : start + CHUNK_SIZE]),
            join_column(entry_ids[start : start + CHUNK_SIZE]),
            join_column(plates[start : start + CHUNK_SIZE]),
            hotlist_pb2.HotlistEntryFieldsList(
                fields=fields[start : start + CHUNK_SIZE]
            ).SerializeToString(),
        )
        for start in range(0, len(fields), CHUNK_SIZE)
    ]


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


_PLATE_TEXT = re.compile(r"[A-Z0-9?*]{1,16}")
_ALL_PLATES = re.compile(r"(?:[A-Z0-9]{1,8}\n)*[A-Z0-9]{1,8}")
_STATES_OR_EMPTY = STATE_CODES | {""}
_ALLOWED_TYPES = frozenset(t.value for t in ListType if t not in FORBIDDEN_LIST_TYPES)
_FORBIDDEN_TYPES = frozenset(t.value for t in FORBIDDEN_LIST_TYPES)
_TEXT_LIMITS = (("reason", MAX_REASON), ("case_number", MAX_CASE_NUMBER), ("contact", MAX_CONTACT))


def problem_with(plate: str, message: hotlist_pb2.HotlistEntryFields) -> str | None:
    """Why an entry received in bulk is unusable, or None: the checks that matter, fast.

    Refuses forbidden categories (ACC-7), unknown categories, malformed plates and
    patterns, unknown states and oversized text. The full `HotlistEntry` validation runs
    again when an entry is read back for a hit.
    """
    if message.list_type in _FORBIDDEN_TYPES:
        return f"list_type: {FORBIDDEN_REASON}"
    if message.list_type not in _ALLOWED_TYPES:
        return f"list_type: {message.list_type!r} is no list type"
    if not _plate_or_pattern(plate):
        return f"plate: {plate!r} is not a plate or a valid partial pattern"
    if message.state and message.state not in STATE_CODES:
        return f"state: {message.state!r} is not a state code"
    for field, limit in _TEXT_LIMITS:
        if len(getattr(message, field)) > limit:
            return f"{field}: longer than {limit} characters"
    return None


def problems_in_bulk(
    plates: Sequence[str], fields: Sequence[hotlist_pb2.HotlistEntryFields]
) -> list[str | None]:
    """`problem_with` for every entry, checking whole columns at once when they are clean.

    A million received entries are usually all of allowed types, well-formed plates and
    sizes: one regex over all plates and one pass over the fields show that. Only when
    something fails is every entry checked on its own.
    """
    # Whole plates only: the pattern's characters exclude "?" and "*".
    clean = _ALL_PLATES.fullmatch("\n".join(plates)) is not None and _fields_clean(fields)
    if clean:
        return [None] * len(plates)
    return [problem_with(plate, message) for plate, message in zip(plates, fields, strict=True)]


def _fields_clean(fields: Iterable[hotlist_pb2.HotlistEntryFields]) -> bool:
    """Whether every entry's category, state and text sizes pass `problem_with`'s checks.

    One pass reading each message once: every pass over a million protobuf messages makes
    a million wrapper objects, and this ran five. The limits are `_TEXT_LIMITS`, spelled
    out here because a loop over them per entry costs as much again.
    """
    allowed, states = _ALLOWED_TYPES, _STATES_OR_EMPTY
    for message in fields:
        if (
            message.list_type not in allowed
            or message.state not in states
            or len(message.reason) > MAX_REASON
            or len(message.case_number) > MAX_CASE_NUMBER
            or len(message.contact) > MAX_CONTACT
        ):
            return False
    return True


def _plate_or_pattern(text: str) -> bool:
    if not _PLATE_TEXT.fullmatch(text):
        return False
    if "?" not in text and "*" not in text:
        return True
    try:
        PlatePattern.parse(text)
    except ValidationError:
        return False
    return True


def join_column(texts: Iterable[str]) -> bytes:
    """Entry ids or plates as one stored value: newline-joined (neither holds a newline)."""
    return "\n".join(texts).encode()


def split_column(joined: bytes) -> list[str]:
    """The texts `join_column` joined."""
    return joined.decode().split("\n") if joined else []


def column_length(joined: bytes) -> int:
    """How many texts `join_column` joined, without splitting them."""
    return joined.count(b"\n") + 1 if joined else 0


def column_item(joined: bytes, position: int) -> str:
    """The text at `position` of those `join_column` joined, splitting no further."""
    return joined.split(b"\n", position + 1)[position].decode()


def frame_fields(fields: Sequence[bytes]) -> bytes:
    """Serialized `HotlistEntryFields` joined into one serialized `HotlistEntryFieldsList`.

    Equivalent to building the list message and serializing it, without parsing each
    entry's bytes first: the same bytes as a `HotlistEntryFieldsFrames`, made in C.
    """
    return hotlist_pb2.HotlistEntryFieldsFrames(fields=fields).SerializeToString()
