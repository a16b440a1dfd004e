"""Hotlists between agencies: signed, sealed snapshots and deltas, and the pull that fetches them.

The issuer signs each snapshot (HOT-7) and encrypts every field but the plate once,
with a fresh key sealed to the recipient (HOT-2); a snapshot is usable for 24 hours
(HOT-6). The receiver verifies signature, issuer, recipient, agreement and expiry
before a single entry is stored or used, and refuses entries of categories its policy
forbids (ACC-7), auditing each refusal.

The fields travel in chunks of at most a thousand entries (`HotlistEntryFieldsChunks`,
snapshot type v2): the issuer sends the chunks it stores, and the receiver checks every
entry of a chunk and stores the chunk's bytes as they came, re-serializing only a chunk
that lost refused entries or is too large. Snapshots are signed prehashed (Ed25519ph
over the same DSSE encoding, see `federation.envelope`): one hashing pass each side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from alpr.common.v1 import hotlist_pb2
from alpr.federation.v1 import exchange_pb2
from federation.envelope import Envelope, parse_payload
from federation.errors import InvalidEnvelopeError
from federation.exchange import digest
from federation.peers import Peer
from node.ed25519 import DataKey, DecryptionError, Ed25519Signer
from node.hotlists.codec import frame_fields, problems_in_bulk
from node.hotlists.partner_store import CHUNK_SIZE, ReceivedEntries, ReceivedList, chunk_fields
from node.hotlists.store import Changes

SNAPSHOT_TYPE = "application/vnd.alpr.hotlist-snapshot.v2+protobuf"
VALIDITY = timedelta(hours=24)


def sign_snapshot(
    signer: Ed25519Signer,
    *,
    changes: Changes,
    since_version: int,
    issuer_ori: str,
    recipient: Peer,
    agreement_id: str,
    now: datetime,
) -> Envelope:
    """A signed snapshot (since 0) or delta of our lists for `recipient`."""
    key = DataKey.generate()
    snapshot = exchange_pb2.HotlistSnapshot(
        issuer_ori=issuer_ori,
        recipient_ori=recipient.ori,
        agreement_id=agreement_id,
        version=changes.version,
        since_version=since_version,
        sealed_key=recipient.key.seal(key.key),
        entry_ids=changes.entry_ids,
        plates=changes.plates,
        # Framed as a serialized HotlistEntryFieldsChunks, without copying 100 MB into a message.
        encrypted_fields=key.encrypt(frame_fields(changes.field_chunks)),
        ended_entry_ids=changes.ended,
    )
    snapshot.issued_at.FromDatetime(now)
    snapshot.expires_at.FromDatetime(now + VALIDITY)
    return Envelope.sign(snapshot.SerializeToString(), SNAPSHOT_TYPE, signer, prehashed=True)


@dataclass(frozen=True)
class OpenedSnapshot:
    """A verified, decrypted snapshot: what to store, and what was refused."""

    received: ReceivedList
    entries: ReceivedEntries
    ended: list[str]
    refused: list[tuple[str, str, str]]  # (entry id, plate, reason)


def open_snapshot(
    envelope: Envelope,
    *,
    issuer: Peer,
    recipient: Ed25519Signer,
    recipient_ori: str,
    agreement_id: str,
    now: datetime,
) -> OpenedSnapshot:
    """Verify a snapshot from `issuer` for us, then decrypt it (HOT-7 before HOT-2).

    Raises:
        InvalidEnvelopeError: Bad signature, wrong issuer, recipient or agreement, an
            expiry past or more than 24 hours after issue, or undecryptable fields.
    """
    payload = envelope.verify([issuer.key], 1, SNAPSHOT_TYPE, prehashed=True).payload
    snapshot = parse_payload(exchange_pb2.HotlistSnapshot, payload)
    if (snapshot.issuer_ori, snapshot.recipient_ori, snapshot.agreement_id) != (
        issuer.ori,
        recipient_ori,
        agreement_id,
    ):
        raise InvalidEnvelopeError("the snapshot is not from its issuer to us under our agreement")
    issued_at = snapshot.issued_at.ToDatetime(UTC)
    expires_at = snapshot.expires_at.ToDatetime(UTC)
    if not now < expires_at <= issued_at + VALIDITY:
        raise InvalidEnvelopeError(f"the snapshot expired or claims too long a life ({expires_at})")
    if len(snapshot.plates) != len(snapshot.entry_ids):
        raise InvalidEnvelopeError("the snapshot's plates and entry ids differ in number")
    entries, refused = _checked_entries(
        list(snapshot.entry_ids), list(snapshot.plates), _decrypt_chunks(snapshot, recipient)
    )
    received = ReceivedList(
        issuer_ori=issuer.ori,
        agreement_id=agreement_id,
        version=snapshot.version,
        since_version=snapshot.since_version,
        issued_at=issued_at,
        expires_at=expires_at,
        digest=digest(payload),
    )
    return OpenedSnapshot(received, entries, list(snapshot.ended_entry_ids), refused)


def _checked_entries(
    entry_ids: list[str], plates: list[str], chunks: Iterable[bytes]
) -> tuple[ReceivedEntries, list[tuple[str, str, str]]]:
    """The entries to store, chunk by chunk, and those refused (ACC-7).

    Each chunk is parsed and checked on its own and its message wrappers dropped before
    the next, which keeps a million entries from being held as objects at once.

    Raises:
        InvalidEnvelopeError: A chunk is not entry fields, or the chunks hold another
            number of entries than there are plates.
    """
    kept_ids: list[str] = []
    kept_plates: list[str] = []
    kept_chunks: list[tuple[int, bytes]] = []
    refused: list[tuple[str, str, str]] = []
    start = 0
    for data in chunks:
        fields = parse_payload(hotlist_pb2.HotlistEntryFieldsList, data).fields
        stop = start + len(fields)
        if stop > len(plates):
            raise InvalidEnvelopeError("the snapshot's fields and plates differ in number")
        problems = problems_in_bulk(plates[start:stop], fields)
        kept = [i for i, problem in enumerate(problems, start) if problem is None]
        refused += [(entry_ids[i], plates[i], p) for i, p in enumerate(problems, start) if p]
        kept_ids += [entry_ids[i] for i in kept]
        kept_plates += [plates[i] for i in kept]
        if kept and len(kept) == len(fields) <= CHUNK_SIZE:
            kept_chunks.append((len(kept), data))  # stored as it came
        elif kept:
            kept_chunks += chunk_fields([fields[i - start] for i in kept])
        start = stop
    if start != len(plates):
        raise InvalidEnvelopeError("the snapshot's fields and plates differ in number")
    return ReceivedEntries(kept_ids, kept_plates, kept_chunks), refused


def _decrypt_chunks(
    snapshot: exchange_pb2.HotlistSnapshot, recipient: Ed25519Signer
) -> list[bytes]:
    try:
        key = DataKey(recipient.unseal(snapshot.sealed_key))
        plain = key.decrypt(snapshot.encrypted_fields)
    except DecryptionError as error:
        raise InvalidEnvelopeError(f"the snapshot's fields do not open: {error}") from error
    return list(parse_payload(hotlist_pb2.HotlistEntryFieldsChunks, plain).chunks)
