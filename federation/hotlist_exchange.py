"""Hotlists between agencies: signed, sealed snapshots and deltas, checked as they stream in.

The issuer signs each snapshot (HOT-7) and encrypts every field but the plate with a
fresh key sealed to the recipient (HOT-2); a snapshot is usable for 24 hours (HOT-6).

A snapshot (type v4) is a signed manifest followed by its chunks of at most a thousand
entries, each named in the manifest by the SHA-256 of its entries in clear
(`chunk_digest`). The manifest comes first: the receiver verifies signature, issuer,
recipient, agreement and expiry before it opens a single chunk, then decrypts each
chunk as it arrives, checks it against the manifest and checks its entries, while the
next is still on the wire, and hands its entries on to be written. Nothing is used until
every chunk has come and matched; entries of categories the receiver's policy forbids
are refused (ACC-7). A chunk is stored as it came unless it lost refused entries.

Naming chunks by their content in clear, not as encrypted for this recipient, lets the
issuer sign the manifest from digests it stored with its chunks, then read, encrypt and
send one chunk after another: it holds a few chunks at a time, not the list, and the
receiver works on the first while the issuer reads the next.

The receiver decrypts a chunk before checking it against the manifest, an exception to
"nothing is parsed before it is verified" that is safe: the fields are SecretBox-sealed
with the key the signed manifest sealed to us, so only the issuer (and we) could have
made a chunk that opens, and no entry is used or stored before its digest matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from alpr.common.v1 import hotlist_pb2
from alpr.federation.v1 import exchange_pb2
from federation.envelope import Envelope, parse_payload
from federation.errors import InvalidEnvelopeError
from federation.exchange import ALLOWED_SKEW, digest
from federation.peers import Peer
from node.ed25519 import DataKey, DecryptionError, Ed25519Signer
from node.hotlists.codec import (
    CHUNK_SIZE,
    EntryChunk,
    chunk_digest,
    column_length,
    entry_chunks,
    problems_in_bulk,
    split_column,
)
from node.hotlists.partner_store import ReceivedEntries, ReceivedList
from node.hotlists.store import OutgoingChanges

SNAPSHOT_TYPE = "application/vnd.alpr.hotlist-snapshot.v4+protobuf"
VALIDITY = timedelta(hours=24)
# The most entries a receiver takes in one snapshot: five times a statewide list.
MAX_SNAPSHOT_ENTRIES = 5_000_000
# The most entries added that an issuer sends as a delta. A receiver holds a delta in
# memory until it takes it, and streams a full snapshot to its store as it comes: past
# this, a full snapshot is sent instead.
MAX_DELTA_ENTRIES = 250_000


@dataclass(frozen=True)
class SignedSnapshot:
    """A snapshot as it is sent: the signed manifest, then the chunks it names."""

    manifest: Envelope
    chunks: Iterable[bytes]
    """Serialized `HotlistChunk`s, in the manifest's order; as sent, each is read and
    encrypted only when the iteration reaches it."""


def sign_snapshot(
    signer: Ed25519Signer,
    *,
    changes: OutgoingChanges,
    since_version: int,
    issuer_ori: str,
    recipient: Peer,
    agreement_id: str,
    now: datetime,
) -> SignedSnapshot:
    """A signed snapshot (since 0) or delta of our lists for `recipient`."""
    key = DataKey.generate()
    manifest = exchange_pb2.HotlistSnapshot(
        issuer_ori=issuer_ori,
        recipient_ori=recipient.ori,
        agreement_id=agreement_id,
        version=changes.version,
        since_version=since_version,
        sealed_key=recipient.key.seal(key.key),
        ended_entry_ids=changes.ended,
        chunk_digests=changes.digests,
        entry_count=changes.entry_count,
    )
    manifest.issued_at.FromDatetime(now)
    manifest.expires_at.FromDatetime(now + VALIDITY)
    signed = Envelope.sign(manifest.SerializeToString(), SNAPSHOT_TYPE, signer)
    return SignedSnapshot(signed, _encrypted(changes.chunks, key))


def _encrypted(chunks: Iterable[EntryChunk], key: DataKey) -> Iterator[bytes]:
    """Each chunk as sent: ids and plates in clear, fields encrypted with `key` (HOT-2)."""
    for chunk in chunks:
        yield exchange_pb2.HotlistChunk(
            entry_ids=chunk.entry_ids,
            plates=chunk.plates,
            encrypted_fields=key.encrypt(chunk.fields),
        ).SerializeToString()


@dataclass(frozen=True)
class OpenedSnapshot:
    """A verified snapshot, all come: how many entries it brought, and what was refused."""

    received: ReceivedList
    kept: int
    ended: list[str]
    refused: list[tuple[str, str, str]]  # (entry id, plate, reason)


def _life(snapshot: exchange_pb2.HotlistSnapshot, now: datetime) -> tuple[datetime, datetime]:
    """When the snapshot was issued and when it expires, if it may be used `now` (HOT-6).

    Its life is at most 24 hours from its issue, and its issue no later than now, give or
    take the clocks' allowed skew: an issuer whose clock runs ahead (or that dates its
    list in the future) would otherwise have its list used for longer than 24 hours.

    Raises:
        InvalidEnvelopeError: It expired, claims more than 24 hours, was issued in the
            future, or a time is out of range.
    """
    try:
        issued_at = snapshot.issued_at.ToDatetime(UTC)
        expires_at = snapshot.expires_at.ToDatetime(UTC)
    except ValueError as error:
        raise InvalidEnvelopeError(f"the snapshot's times are out of range: {error}") from error
    if issued_at > now + ALLOWED_SKEW:
        raise InvalidEnvelopeError(f"the snapshot claims to be issued in the future ({issued_at})")
    if not now < expires_at <= issued_at + VALIDITY:
        raise InvalidEnvelopeError(f"the snapshot expired or claims too long a life ({expires_at})")
    return issued_at, expires_at


class SnapshotReader:
    """Opens a snapshot as it streams in: the manifest first, then each chunk as it comes.

    Not thread-safe: chunks are added one at a time, in order.
    """

    def __init__(
        self,
        manifest: Envelope,
        *,
        issuer: Peer,
        recipient: Ed25519Signer,
        recipient_ori: str,
        agreement_id: str,
        sunsets_at: datetime,
        now: datetime,
    ) -> None:
        """Verify the manifest from `issuer` for us and unseal its key (HOT-7 before HOT-2).

        The list received is used until the snapshot expires, but never more than 24 hours
        after we received it (an issuer's clock may run ahead by the allowed skew) nor past
        the sunset of the agreement it came under (SHR-3): `received.expires_at`.

        Raises:
            InvalidEnvelopeError: Bad signature, wrong issuer, recipient or agreement, an
                expiry past or more than 24 hours after issue, an issue in the future, too
                many entries, or a key not sealed to us.
        """
        payload = manifest.verify([issuer.key], 1, SNAPSHOT_TYPE).payload
        snapshot = parse_payload(exchange_pb2.HotlistSnapshot, payload)
        if (snapshot.issuer_ori, snapshot.recipient_ori, snapshot.agreement_id) != (
            issuer.ori,
            recipient_ori,
            agreement_id,
        ):
            raise InvalidEnvelopeError(
                "the snapshot is not from its issuer to us under our agreement"
            )
        issued_at, expires_at = _life(snapshot, now)
        if snapshot.entry_count > MAX_SNAPSHOT_ENTRIES:
            raise InvalidEnvelopeError(
                f"the snapshot holds {snapshot.entry_count} entries, over {MAX_SNAPSHOT_ENTRIES}"
            )
        try:
            self._key = DataKey(recipient.unseal(snapshot.sealed_key))
        except DecryptionError as error:
            raise InvalidEnvelopeError(f"the snapshot's key does not open: {error}") from error
        self.received = ReceivedList(
            issuer_ori=issuer.ori,
            agreement_id=agreement_id,
            version=snapshot.version,
            since_version=snapshot.since_version,
            issued_at=issued_at,
            expires_at=min(expires_at, now + VALIDITY, sunsets_at),
            digest=digest(payload),
        )
        self._digests = list(snapshot.chunk_digests)
        self._entry_count = snapshot.entry_count
        self._ended = list(snapshot.ended_entry_ids)
        self._next = 0  # the chunk the manifest names next
        self._read = 0  # entries in the chunks added so far
        self._kept = 0  # of which not refused
        self._refused: list[tuple[str, str, str]] = []

    def add(self, data: bytes) -> ReceivedEntries:
        """Decrypt the next chunk, check it against the manifest, then check its entries.

        Returns the chunk's entries but those refused, fields decrypted: to store.

        Raises:
            InvalidEnvelopeError: The chunk does not open, is not the one the manifest
                names next, or holds malformed or too many entries.
        """
        position = self._next
        if position >= len(self._digests):
            raise InvalidEnvelopeError("the snapshot sent more chunks than its manifest names")
        self._next += 1
        chunk = parse_payload(exchange_pb2.HotlistChunk, data)
        try:
            plain = self._key.decrypt(chunk.encrypted_fields)
        except DecryptionError as error:
            raise InvalidEnvelopeError(f"the snapshot's chunk {position} does not open") from error
        if chunk_digest(chunk.entry_ids, chunk.plates, plain) != self._digests[position]:
            raise InvalidEnvelopeError(f"the snapshot's chunk {position} is not the one signed")
        fields = parse_payload(hotlist_pb2.HotlistEntryFieldsList, plain).fields
        try:
            plates = split_column(chunk.plates)
            chunk.entry_ids.decode()  # kept joined: an id is decoded when a hit names it
        except UnicodeDecodeError as error:
            raise InvalidEnvelopeError(
                f"the snapshot's chunk {position} holds ids or plates that are not UTF-8"
            ) from error
        if not 0 < len(fields) == column_length(chunk.entry_ids) == len(plates) <= CHUNK_SIZE:
            raise InvalidEnvelopeError(
                f"the snapshot's chunk {position} holds unequal or too many ids, plates and fields"
            )
        self._read += len(fields)
        if self._read > self._entry_count:
            raise InvalidEnvelopeError("the snapshot's chunks hold more entries than it says")
        problems = problems_in_bulk(plates, fields)
        kept = [i for i, problem in enumerate(problems) if problem is None]
        self._kept += len(kept)
        if len(kept) == len(fields):
            return ReceivedEntries(
                [EntryChunk(len(kept), chunk.entry_ids, chunk.plates, plain)], [plates]
            )
        ids = split_column(chunk.entry_ids)
        self._refused += [(ids[i], plates[i], p) for i, p in enumerate(problems) if p]
        kept_ids, kept_plates = [ids[i] for i in kept], [plates[i] for i in kept]
        return ReceivedEntries.of(entry_chunks(kept_ids, kept_plates, [fields[i] for i in kept]))

    def finish(self) -> OpenedSnapshot:
        """The snapshot, once every chunk the manifest names has come and matched.

        Raises:
            InvalidEnvelopeError: Chunks are missing.
        """
        if self._next != len(self._digests) or self._read != self._entry_count:
            raise InvalidEnvelopeError("the snapshot ended before all its chunks came")
        return OpenedSnapshot(self.received, self._kept, self._ended, self._refused)
