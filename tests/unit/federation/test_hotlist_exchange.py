"""Snapshots are verified before a single entry is used (HOT-7), sealed to one recipient (HOT-2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from alpr.common.v1 import hotlist_pb2
from alpr.federation.v1 import exchange_pb2
from federation.envelope import Envelope
from federation.errors import InvalidEnvelopeError
from federation.hotlist_exchange import (
    SNAPSHOT_TYPE,
    VALIDITY,
    OpenedSnapshot,
    open_snapshot,
    sign_snapshot,
)
from federation.peers import Peer
from node.ed25519 import DataKey, Ed25519Signer
from node.hotlists.codec import encode_fields, entry_from_message, frame_fields
from node.hotlists.entry import FORBIDDEN_REASON, HotlistEntry, ListType
from node.hotlists.partner_store import CHUNK_SIZE
from node.hotlists.store import Changes
from tests.support.clock import START
from tests.support.pki import LAPD, LASD

ISSUER, RECIPIENT, STRANGER = (Ed25519Signer.generate() for _ in range(3))
STOLEN = HotlistEntry(plate="7ABC123", list_type=ListType.STOLEN_VEHICLE, reason="armed")
CHANGES = Changes(
    version=3,
    entry_ids=["e-1"],
    plates=[STOLEN.plate],
    field_chunks=[frame_fields([encode_fields(STOLEN, "stolen")])],
    ended=["e-0"],
)


def peer(ori: str, signer: Ed25519Signer) -> Peer:
    return Peer(
        ori=ori,
        name=ori,
        endpoint="localhost:1",
        spiffe_id=f"spiffe://test.alpr/agency/{ori}",
        signing_public_key=signer.public_key.public_bytes,
    )


def snapshot(changes: Changes = CHANGES, signer: Ed25519Signer = ISSUER) -> Envelope:
    return sign_snapshot(
        signer,
        changes=changes,
        since_version=2,
        issuer_ori=LASD,
        recipient=peer(LAPD, RECIPIENT),
        agreement_id="a-1",
        now=START,
    )


def open_(envelope: Envelope, **changes: Any) -> OpenedSnapshot:
    arguments: dict[str, Any] = {
        "issuer": peer(LASD, ISSUER),
        "recipient": RECIPIENT,
        "recipient_ori": LAPD,
        "agreement_id": "a-1",
        "now": START + timedelta(hours=1),
    }
    return open_snapshot(envelope, **(arguments | changes))


def resign(envelope: Envelope, edit: Callable[[exchange_pb2.HotlistSnapshot], None]) -> Envelope:
    """The snapshot with a field changed by `edit`, re-signed by the true issuer."""
    message = exchange_pb2.HotlistSnapshot()
    message.ParseFromString(envelope.payload)
    edit(message)
    return Envelope.sign(message.SerializeToString(), SNAPSHOT_TYPE, ISSUER, prehashed=True)


class TestOpen:
    def test_succeeds_with_every_field_back(self) -> None:
        opened = open_(snapshot())
        entries = opened.entries
        assert (entries.entry_ids, entries.plates) == (["e-1"], ["7ABC123"])
        [(size, data)] = entries.chunks
        [fields] = hotlist_pb2.HotlistEntryFieldsList.FromString(data).fields
        assert size == 1
        assert (fields.list_name, entry_from_message("7ABC123", fields)) == ("stolen", STOLEN)
        assert opened.ended == ["e-0"]
        received = opened.received
        assert (received.version, received.since_version, received.expires_at) == (
            3,
            2,
            START + VALIDITY,
        )

    def test_hot2_fields_travel_encrypted_and_only_the_recipient_opens_them(self) -> None:
        envelope = snapshot()
        assert b"7ABC123" in envelope.payload
        assert b"armed" not in envelope.payload
        with pytest.raises(InvalidEnvelopeError, match="do not open"):
            open_(envelope, recipient=STRANGER)

    def test_hot7_fails_on_a_tampered_snapshot(self) -> None:
        envelope = snapshot()
        tampered = replace(envelope, payload=envelope.payload.replace(b"7ABC123", b"7ABC124"))
        with pytest.raises(InvalidEnvelopeError, match="found 0"):
            open_(tampered)

    def test_hot7_fails_when_signed_with_pure_ed25519(self) -> None:
        envelope = snapshot()
        plain = Envelope.sign(envelope.payload, SNAPSHOT_TYPE, ISSUER)
        with pytest.raises(InvalidEnvelopeError, match="found 0"):
            open_(plain)

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

    def test_hot6_fails_when_the_issuer_claims_more_than_24_hours(self) -> None:
        longer = resign(
            snapshot(), lambda m: m.expires_at.FromDatetime(START + VALIDITY + timedelta(seconds=1))
        )
        with pytest.raises(InvalidEnvelopeError, match="too long a life"):
            open_(longer)

    def test_acc7_a_forbidden_category_from_a_partner_is_refused(self) -> None:
        fields = [
            hotlist_pb2.HotlistEntryFields(list_type="stolen_vehicle"),
            hotlist_pb2.HotlistEntryFields(list_type="civil_immigration"),
        ]
        opened = open_(resign(snapshot(), carrying([fields], ["7ABC123", "4XYZ999"])))
        assert opened.entries.entry_ids == ["e-1"]
        assert opened.refused == [("e-2", "4XYZ999", f"list_type: {FORBIDDEN_REASON}")]
        [(size, data)] = opened.entries.chunks
        assert (size, len(hotlist_pb2.HotlistEntryFieldsList.FromString(data).fields)) == (1, 1)


def numbered(count: int, first: int = 0) -> list[hotlist_pb2.HotlistEntryFields]:
    """Fields whose reason names the entry: r<n> for entry e-<n+1>."""
    return [
        hotlist_pb2.HotlistEntryFields(list_type="stolen_vehicle", reason=f"r{first + i}")
        for i in range(count)
    ]


def carrying(
    chunks: list[list[hotlist_pb2.HotlistEntryFields]], plates: list[str]
) -> Callable[[exchange_pb2.HotlistSnapshot], None]:
    """An edit making a snapshot carry `plates` and these chunks of fields."""

    def edit(message: exchange_pb2.HotlistSnapshot) -> None:
        key = DataKey.generate()
        serialized = [
            hotlist_pb2.HotlistEntryFieldsList(fields=chunk).SerializeToString() for chunk in chunks
        ]
        message.entry_ids[:] = [f"e-{i + 1}" for i in range(len(plates))]
        message.plates[:] = plates
        message.sealed_key = RECIPIENT.public_key.seal(key.key)
        plain = hotlist_pb2.HotlistEntryFieldsChunks(chunks=serialized).SerializeToString()
        message.encrypted_fields = key.encrypt(plain)

    return edit


class TestChunks:
    def test_succeeds_keeping_chunks_as_sent_and_splitting_larger_ones(self) -> None:
        chunks = [numbered(3), numbered(CHUNK_SIZE + 500, first=3)]
        plates = [f"{n:07d}" for n in range(CHUNK_SIZE + 503)]
        opened = open_(resign(snapshot(), carrying(chunks, plates)))
        entries = opened.entries
        assert [size for size, _ in entries.chunks] == [3, CHUNK_SIZE, 500]
        sent = hotlist_pb2.HotlistEntryFieldsList(fields=chunks[0]).SerializeToString()
        assert entries.chunks[0][1] == sent  # stored as it came
        reasons = [
            fields.reason
            for _, data in entries.chunks
            for fields in hotlist_pb2.HotlistEntryFieldsList.FromString(data).fields
        ]
        assert reasons == [f"r{int(e.removeprefix('e-')) - 1}" for e in entries.entry_ids]
        assert entries.plates == plates

    @pytest.mark.parametrize(
        ("chunks", "plates"),
        [
            pytest.param([numbered(2), numbered(1)], ["7ABC123", "7ABC124"], id="more fields"),
            pytest.param([numbered(1)], ["7ABC123", "7ABC124"], id="fewer fields"),
        ],
    )
    def test_fails_when_chunks_and_plates_differ_in_number(
        self, chunks: list[list[hotlist_pb2.HotlistEntryFields]], plates: list[str]
    ) -> None:
        with pytest.raises(InvalidEnvelopeError, match="differ in number"):
            open_(resign(snapshot(), carrying(chunks, plates)))

    def test_fails_when_a_chunk_is_not_entry_fields(self) -> None:
        def garble(message: exchange_pb2.HotlistSnapshot) -> None:
            key = DataKey.generate()
            message.sealed_key = RECIPIENT.public_key.seal(key.key)
            plain = hotlist_pb2.HotlistEntryFieldsChunks(chunks=[b"\xff\xff"])
            message.encrypted_fields = key.encrypt(plain.SerializeToString())

        with pytest.raises(InvalidEnvelopeError, match="not a HotlistEntryFieldsList"):
            open_(resign(snapshot(), garble))
