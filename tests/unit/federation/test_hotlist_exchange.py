"""Snapshots are verified before a single entry is used (HOT-7), sealed to one recipient (HOT-2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, NamedTuple

import pytest

from alpr.common.v1 import hotlist_pb2
from alpr.federation.v1 import exchange_pb2
from federation.envelope import Envelope
from federation.errors import InvalidEnvelopeError
from federation.exchange import ALLOWED_SKEW
from federation.hotlist_exchange import (
    MAX_SNAPSHOT_ENTRIES,
    SNAPSHOT_TYPE,
    VALIDITY,
    OpenedSnapshot,
    SignedSnapshot,
    SnapshotReader,
    sign_snapshot,
)
from node.ed25519 import DataKey, Ed25519Signer
from node.hotlists.codec import (
    CHUNK_SIZE,
    EntryChunk,
    chunk_digest,
    encode_fields,
    entry_from_message,
    frame_fields,
    join_column,
)
from node.hotlists.entry import FORBIDDEN_REASON, HotlistEntry, ListType
from node.hotlists.partner_store import ReceivedEntries, ReceivedList
from node.hotlists.store import Changes, OutgoingChanges
from tests.support.clock import START
from tests.support.pki import LAPD, LASD, partner_peer

ISSUER, RECIPIENT, STRANGER = (Ed25519Signer.generate() for _ in range(3))
STOLEN = HotlistEntry(plate="7ABC123", list_type=ListType.STOLEN_VEHICLE, reason="armed")
CHANGES = Changes(
    version=3,
    chunks=[
        EntryChunk(
            1, b"e-1", STOLEN.plate.encode(), frame_fields([encode_fields(STOLEN, "stolen")])
        )
    ],
    ended=["e-0"],
)


def snapshot(changes: Changes = CHANGES, signer: Ed25519Signer = ISSUER) -> SignedSnapshot:
    signed = sign_snapshot(
        signer,
        changes=OutgoingChanges.of(changes),
        since_version=2,
        issuer_ori=LASD,
        recipient=partner_peer(LAPD, RECIPIENT.public_key.public_bytes),
        agreement_id="a-1",
        now=START,
    )
    return replace(signed, chunks=list(signed.chunks))  # sent once, opened by several tests


def reader(manifest: Envelope, **changes: Any) -> SnapshotReader:
    arguments: dict[str, Any] = {
        "issuer": partner_peer(LASD, ISSUER.public_key.public_bytes),
        "recipient": RECIPIENT,
        "recipient_ori": LAPD,
        "agreement_id": "a-1",
        "sunsets_at": START + timedelta(days=90),
        "now": START + timedelta(hours=1),
    }
    return SnapshotReader(manifest, **(arguments | changes))


class Opened(NamedTuple):
    """What a reader made of a snapshot, and the entries it handed on, joined."""

    snapshot: OpenedSnapshot
    entries: ReceivedEntries

    @property
    def received(self) -> ReceivedList:
        return self.snapshot.received

    @property
    def ended(self) -> list[str]:
        return self.snapshot.ended

    @property
    def refused(self) -> list[tuple[str, str, str]]:
        return self.snapshot.refused


def open_(signed: SignedSnapshot, **changes: Any) -> Opened:
    """Open `signed` as a receiver would: the manifest, then each chunk in turn."""
    opening = reader(signed.manifest, **changes)
    handed_on = [opening.add(chunk) for chunk in signed.chunks]
    opened = opening.finish()
    entries = ReceivedEntries.joined(handed_on) if handed_on else ReceivedEntries([], [])
    assert opened.kept == len(entries.entry_ids)
    return Opened(opened, entries)


def resign(
    signed: SignedSnapshot, edit: Callable[[exchange_pb2.HotlistSnapshot], None]
) -> SignedSnapshot:
    """The snapshot with its manifest changed by `edit`, re-signed by the true issuer."""
    message = exchange_pb2.HotlistSnapshot.FromString(signed.manifest.payload)
    edit(message)
    manifest = Envelope.sign(message.SerializeToString(), SNAPSHOT_TYPE, ISSUER)
    return SignedSnapshot(manifest, signed.chunks)


class TestOpen:
    def test_succeeds_with_every_field_back(self) -> None:
        opened = open_(snapshot())
        entries = opened.entries
        assert (entries.entry_ids, entries.plates) == (["e-1"], ["7ABC123"])
        [chunk] = entries.chunks
        [fields] = hotlist_pb2.HotlistEntryFieldsList.FromString(chunk.fields).fields
        assert (chunk.size, chunk.entry_ids, chunk.plates) == (1, b"e-1", b"7ABC123")
        assert (fields.list_name, entry_from_message("7ABC123", fields)) == ("stolen", STOLEN)
        assert opened.ended == ["e-0"]
        received = opened.received
        assert (received.version, received.since_version, received.expires_at) == (
            3,
            2,
            START + VALIDITY,
        )

    def test_hot2_fields_travel_encrypted_and_only_the_recipient_opens_them(self) -> None:
        signed = snapshot()
        [chunk] = signed.chunks
        assert b"7ABC123" in chunk
        assert b"armed" not in chunk
        assert b"armed" not in signed.manifest.payload
        with pytest.raises(InvalidEnvelopeError, match="does not open"):
            open_(signed, recipient=STRANGER)

    def test_hot7_fails_on_a_tampered_manifest(self) -> None:
        signed = snapshot()
        payload = signed.manifest.payload.replace(b"e-0", b"e-9")
        tampered = replace(signed, manifest=replace(signed.manifest, payload=payload))
        with pytest.raises(InvalidEnvelopeError, match="found 0"):
            open_(tampered)

    def test_hot7_fails_on_a_tampered_chunk_before_its_entries_are_used(self) -> None:
        signed = snapshot()
        [chunk] = signed.chunks
        tampered = replace(signed, chunks=[chunk.replace(b"7ABC123", b"7ABC124")])
        with pytest.raises(InvalidEnvelopeError, match="chunk 0 is not the one signed"):
            open_(tampered)

    def test_hot7_fails_on_tampered_encrypted_fields(self) -> None:
        signed = snapshot()
        [chunk] = signed.chunks
        message = exchange_pb2.HotlistChunk.FromString(chunk)
        sealed = message.encrypted_fields
        message.encrypted_fields = sealed[:-1] + bytes([sealed[-1] ^ 1])
        with pytest.raises(InvalidEnvelopeError, match="chunk 0 does not open"):
            open_(replace(signed, chunks=[message.SerializeToString()]))

    def test_hot7_fails_when_signed_by_another_agency(self) -> None:
        with pytest.raises(InvalidEnvelopeError):
            open_(snapshot(signer=STRANGER))

    @pytest.mark.parametrize(
        ("changes", "match"),
        [
            ({"recipient_ori": LASD}, "not from its issuer to us"),
            ({"agreement_id": "a-2"}, "not from its issuer to us"),
            ({"now": START + VALIDITY}, "expired"),
        ],
        ids=["another recipient", "another agreement", "expired"],
    )
    def test_hot7_fails_on_recipient_agreement_or_expiry(
        self, changes: dict[str, object], match: str
    ) -> None:
        with pytest.raises(InvalidEnvelopeError, match=match):
            open_(snapshot(), **changes)

    def test_hot7_fails_when_chunks_are_missing_added_or_reordered(self) -> None:
        chunks = [numbered(2), numbered(3, first=2)]
        signed = carrying(chunks, [f"{n:07d}" for n in range(5)])
        first, second = signed.chunks
        with pytest.raises(InvalidEnvelopeError, match="ended before all its chunks"):
            open_(replace(signed, chunks=[first]))
        with pytest.raises(InvalidEnvelopeError, match="more chunks than its manifest"):
            open_(replace(signed, chunks=[first, second, second]))
        with pytest.raises(InvalidEnvelopeError, match="chunk 0 is not the one signed"):
            open_(replace(signed, chunks=[second, first]))

    def test_fails_when_the_manifest_claims_too_many_entries(self) -> None:
        def inflate(message: exchange_pb2.HotlistSnapshot) -> None:
            message.entry_count = MAX_SNAPSHOT_ENTRIES + 1

        with pytest.raises(InvalidEnvelopeError, match="over 5000000"):
            reader(resign(snapshot(), inflate).manifest)

    def test_hot6_fails_when_the_issuer_claims_more_than_24_hours(self) -> None:
        longer = resign(
            snapshot(), lambda m: m.expires_at.FromDatetime(START + VALIDITY + timedelta(seconds=1))
        )
        with pytest.raises(InvalidEnvelopeError, match="too long a life"):
            open_(longer)

    def test_hot6_fails_when_the_issuer_dates_its_list_in_the_future(self) -> None:
        """Else a list from an issuer whose clock runs ahead is used past 24 hours."""
        ahead = ALLOWED_SKEW + timedelta(seconds=1)

        def dated_ahead(message: exchange_pb2.HotlistSnapshot) -> None:
            message.issued_at.FromDatetime(START + ahead)
            message.expires_at.FromDatetime(START + ahead + VALIDITY)

        with pytest.raises(InvalidEnvelopeError, match="issued in the future"):
            open_(resign(snapshot(), dated_ahead), now=START)

    def test_a_clock_ahead_within_the_allowed_skew_is_taken(self) -> None:
        def dated_ahead(message: exchange_pb2.HotlistSnapshot) -> None:
            message.issued_at.FromDatetime(START + ALLOWED_SKEW)
            message.expires_at.FromDatetime(START + ALLOWED_SKEW + VALIDITY)

        opened = open_(resign(snapshot(), dated_ahead), now=START)
        assert opened.received.issued_at == START + ALLOWED_SKEW
        assert opened.received.expires_at == START + VALIDITY  # 24 h from receipt, not issue

    def test_shr3_a_list_is_used_no_longer_than_its_agreement(self) -> None:
        sunset = START + timedelta(hours=3)
        opened = open_(snapshot(), now=START + timedelta(hours=1), sunsets_at=sunset)
        assert opened.received.expires_at == sunset

    def test_fails_on_a_time_out_of_range(self) -> None:
        def far(message: exchange_pb2.HotlistSnapshot) -> None:
            message.expires_at.seconds = 10**12

        with pytest.raises(InvalidEnvelopeError, match="out of range"):
            open_(resign(snapshot(), far))

    def test_acc7_a_forbidden_category_from_a_partner_is_refused(self) -> None:
        fields = [
            hotlist_pb2.HotlistEntryFields(list_type="stolen_vehicle"),
            hotlist_pb2.HotlistEntryFields(list_type="civil_immigration"),
        ]
        opened = open_(carrying([fields], ["7ABC123", "4XYZ999"]))
        assert opened.entries.entry_ids == ["e-1"]
        assert opened.refused == [("e-2", "4XYZ999", f"list_type: {FORBIDDEN_REASON}")]
        [chunk] = opened.entries.chunks
        fields_kept = hotlist_pb2.HotlistEntryFieldsList.FromString(chunk.fields).fields
        assert (chunk.size, chunk.entry_ids, chunk.plates, len(fields_kept)) == (
            1,
            b"e-1",
            b"7ABC123",
            1,
        )


def numbered(count: int, first: int = 0) -> list[hotlist_pb2.HotlistEntryFields]:
    """Fields whose reason names the entry: r<n> for entry e-<n+1>."""
    return [
        hotlist_pb2.HotlistEntryFields(list_type="stolen_vehicle", reason=f"r{first + i}")
        for i in range(count)
    ]


def carrying(
    chunks: Sequence[Sequence[hotlist_pb2.HotlistEntryFields]],
    plates: list[str],
    *,
    entry_count: int | None = None,
) -> SignedSnapshot:
    """A snapshot signed by the issuer whose chunks carry `plates` and these fields.

    Entry ids are e-1, e-2 … in order; each chunk takes as many plates as it has fields
    (the last takes the rest). The manifest counts `entry_count` entries, by default
    as many as there are plates.
    """
    key = DataKey.generate()
    serialized, digests, start = [], [], 0
    for number, fields in enumerate(chunks, 1):
        stop = len(plates) if number == len(chunks) else start + len(fields)
        ids, joined_plates = (
            join_column(f"e-{i + 1}" for i in range(start, stop)),
            join_column(plates[start:stop]),
        )
        plain = hotlist_pb2.HotlistEntryFieldsList(fields=fields).SerializeToString()
        chunk = exchange_pb2.HotlistChunk(
            entry_ids=ids, plates=joined_plates, encrypted_fields=key.encrypt(plain)
        )
        serialized.append(chunk.SerializeToString())
        digests.append(chunk_digest(ids, joined_plates, plain))
        start = stop

    def edit(message: exchange_pb2.HotlistSnapshot) -> None:
        message.sealed_key = RECIPIENT.public_key.seal(key.key)
        message.chunk_digests[:] = digests
        message.entry_count = len(plates) if entry_count is None else entry_count

    return resign(SignedSnapshot(snapshot().manifest, serialized), edit)


class TestChunks:
    def test_succeeds_keeping_chunks_as_sent(self) -> None:
        chunks = [numbered(3), numbered(CHUNK_SIZE, first=3)]
        plates = [f"{n:07d}" for n in range(CHUNK_SIZE + 3)]
        entries = open_(carrying(chunks, plates)).entries
        assert [chunk.size for chunk in entries.chunks] == [3, CHUNK_SIZE]
        sent = hotlist_pb2.HotlistEntryFieldsList(fields=chunks[0]).SerializeToString()
        assert entries.chunks[0].fields == sent  # stored as it came
        assert entries.chunks[0].plates == join_column(plates[:3])
        reasons = [
            fields.reason
            for chunk in entries.chunks
            for fields in hotlist_pb2.HotlistEntryFieldsList.FromString(chunk.fields).fields
        ]
        assert reasons == [f"r{int(e.removeprefix('e-')) - 1}" for e in entries.entry_ids]
        assert entries.plates == plates

    @pytest.mark.parametrize(
        ("chunks", "plates"),
        [
            pytest.param([numbered(2)], ["7ABC123"], id="more fields"),
            pytest.param([numbered(1)], ["7ABC123", "7ABC124"], id="fewer fields"),
            pytest.param(
                [numbered(CHUNK_SIZE + 1)],
                [f"{n:07d}" for n in range(CHUNK_SIZE + 1)],
                id="over a thousand",
            ),
        ],
    )
    def test_fails_when_a_chunks_ids_plates_and_fields_differ_or_are_too_many(
        self, chunks: list[list[hotlist_pb2.HotlistEntryFields]], plates: list[str]
    ) -> None:
        with pytest.raises(InvalidEnvelopeError, match="unequal or too many"):
            open_(carrying(chunks, plates))

    @pytest.mark.parametrize(
        ("entry_count", "match"), [(2, "more entries than it says"), (4, "ended before")]
    )
    def test_fails_when_the_chunks_hold_another_number_than_the_manifest_says(
        self, entry_count: int, match: str
    ) -> None:
        signed = carrying([numbered(3)], ["7ABC123", "7ABC124", "7ABC125"], entry_count=entry_count)
        with pytest.raises(InvalidEnvelopeError, match=match):
            open_(signed)

    def test_fails_when_a_chunk_is_not_entry_fields(self) -> None:
        with pytest.raises(InvalidEnvelopeError, match="not a HotlistEntryFieldsList"):
            open_(one_chunk(b"e-1", b"7ABC123", b"\xff\xff"))

    @pytest.mark.parametrize(
        ("entry_ids", "plates"),
        [(b"e-\xff", b"7ABC123"), (b"e-1", b"7ABC\xff")],
        ids=["id", "plate"],
    )
    def test_fails_when_a_chunks_ids_or_plates_are_not_utf8(
        self, entry_ids: bytes, plates: bytes
    ) -> None:
        fields = hotlist_pb2.HotlistEntryFieldsList(fields=numbered(1)).SerializeToString()
        with pytest.raises(InvalidEnvelopeError, match="not UTF-8"):
            open_(one_chunk(entry_ids, plates, fields))


def one_chunk(entry_ids: bytes, plates: bytes, plain: bytes) -> SignedSnapshot:
    """A snapshot signed by the issuer of one chunk of these bytes, fields `plain`."""
    key = DataKey.generate()
    chunk = exchange_pb2.HotlistChunk(
        entry_ids=entry_ids, plates=plates, encrypted_fields=key.encrypt(plain)
    ).SerializeToString()

    def edit(message: exchange_pb2.HotlistSnapshot) -> None:
        message.sealed_key = RECIPIENT.public_key.seal(key.key)
        message.chunk_digests[:] = [chunk_digest(entry_ids, plates, plain)]
        message.entry_count = 1

    return resign(SignedSnapshot(snapshot().manifest, [chunk]), edit)
