"""The node's append-only audit log: every event a leaf of an RFC 9162 Merkle tree.

Each event is a row of `audit_event` numbered 1, 2, 3… with no gap (AUD-1); the row
`audit_head` holds the tree size and its `CompactRange`, so an append reads and writes
O(log n) hashes under one lock and never rereads the events. Nothing here deletes or
changes an event (AUD-2). `AuditLog.verify` replays the events from their fields, so a
record altered, removed or moved in the database is found (AUD-5); a log rewritten
together with its head is caught by the signed checkpoints partners hold.
`AuditLog.inclusion_proof` and `AuditLog.consistency_proof` prove an event's place in
the tree and the tree's growth (see `node.audit_proofs`).

The leaf of an event is `node.merkle.leaf_hash` over `leaf_bytes(event)`: the canonical
JSON (keys sorted, no spaces, ASCII) of the object with keys ``actor``, ``agency``,
``case_number``, ``details`` (the details object itself, not its text), ``kind``,
``peer_ip``, ``purpose``, ``recorded_at`` (ISO-8601 in UTC with microseconds, e.g.
``2026-11-25T12:00:00.000000Z``) and ``seq``. Anyone holding the rows can recompute it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pydantic
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from node.audit_proofs import (
    ConsistencyProof,
    InclusionProof,
    check_sizes,
    prove_consistency,
    prove_inclusion,
)
from node.errors import NodeError, ValidationError
from node.identity import validate_ori
from node.merkle import HASH_SIZE, CompactRange, MerkleError, leaf_hash
from node.store.engine import lock_for_write
from node.store.models import AuditEvent, AuditHead, utc

MAX_PAGE = 1000
_HEAD_ID = 1


class AuditLogError(NodeError):
    """The audit log does not hold together: an event altered or missing, or a wrong head.

    Attributes:
        seq: The first event found wrong, or None when the fault is the head's.
    """

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        """Say what is wrong and, where one is, with which event."""
        super().__init__(message)
        self.seq = seq


@dataclass(frozen=True)
class TreeHead:
    """The log's size and Merkle root at one moment."""

    size: int
    root: bytes


@dataclass(frozen=True)
class AuditRecord:
    """An event just appended, and the tree head right after it."""

    seq: int
    recorded_at: datetime
    leaf_hash: bytes
    tree_size: int
    root: bytes


def canonical_json(value: object) -> str:
    """`value` as canonical JSON: keys sorted, no spaces, ASCII only, no NaN.

    Raises:
        TypeError: `value` holds something JSON cannot represent.
        ValueError: `value` holds NaN or an infinity.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def leaf_bytes(event: AuditEvent) -> bytes:
    """The bytes an event's leaf hash covers (the module docstring gives their form).

    Raises:
        AuditLogError: The stored details are not JSON.
    """
    try:
        details = json.loads(event.details)
    except ValueError as error:
        raise AuditLogError(
            f"audit event {event.seq} was altered: its details are not JSON", seq=event.seq
        ) from error
    return canonical_json(
        {
            "actor": event.actor,
            "agency": event.agency,
            "case_number": event.case_number,
            "details": details,
            "kind": event.kind,
            "peer_ip": event.peer_ip,
            "purpose": event.purpose,
            "recorded_at": utc(event.recorded_at).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "seq": event.seq,
        }
    ).encode("ascii")


class AuditLog:
    """The audit log in a node's database, shared safely by threads and processes."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime]) -> None:
        """Use the migrated database behind `engine`.

        Args:
            engine: The node's store, migrated to a revision with the audit tables.
            clock: Gives each event its time; it must return timezone-aware datetimes.
        """
        self._engine = engine
        self._clock = clock

    def append(
        self,
        kind: str,
        *,
        actor: str,
        agency: str,
        peer_ip: str = "",
        purpose: str = "",
        case_number: str = "",
        details: Mapping[str, object] | None = None,
    ) -> AuditRecord:
        """Record one event, as the next leaf of the tree, in one transaction.

        Args:
            kind: What happened, e.g. ``login``, ``query``, ``exchange.denied``.
            actor: The SPIFFE ID of the principal who acted, or ``system``.
            agency: The ORI of the actor's agency.
            peer_ip: The address the request came from, if any.
            purpose: The authorized purpose the actor stated, if any (ACC-6).
            case_number: The case or incident number the actor stated, if any.
            details: Whatever else the event needs (a plate, a partner), as JSON.

        Returns:
            The event's number, time and leaf hash, and the tree head it made.

        Raises:
            ValidationError: A field is empty, too long or not JSON, or the clock
                gave a time without a time zone.
            AuditLogError: The store has no audit head, or a malformed one.
        """
        moment = self._clock()
        if moment.tzinfo is None:
            raise ValidationError("clock", "gave a naive datetime; an audit time needs a zone")
        recorded_at = moment.astimezone(UTC)
        try:
            details_json = canonical_json(dict(details or {}))
        except (TypeError, ValueError) as error:
            raise ValidationError("details", f"not representable as JSON ({error})") from error
        event = _validated_event(
            recorded_at=recorded_at,
            kind=kind,
            actor=actor,
            agency=validate_ori(agency, "agency"),
            peer_ip=peer_ip,
            purpose=purpose,
            case_number=case_number,
            details=details_json,
        )
        with Session(self._engine) as session:
            lock_for_write(session)
            head, frontier = _loaded(
                session.exec(
                    select(AuditHead).where(AuditHead.id == _HEAD_ID).with_for_update()
                ).one_or_none()
            )
            seq = event.seq = frontier.size + 1
            leaf = event.leaf_hash = leaf_hash(leaf_bytes(event))
            frontier.append(leaf)
            head.size, head.frontier = frontier.size, frontier.to_bytes()
            session.add(event)
            session.add(head)
            session.commit()
        return AuditRecord(
            seq=seq, recorded_at=recorded_at, leaf_hash=leaf, tree_size=seq, root=frontier.root()
        )

    def head(self) -> TreeHead:
        """The current tree head, from the head row alone.

        Raises:
            AuditLogError: The store has no audit head, or a malformed one.
        """
        with Session(self._engine) as session:
            _head, frontier = _loaded(session.get(AuditHead, _HEAD_ID))
        return TreeHead(size=frontier.size, root=frontier.root())

    def events(self, after_seq: int = 0, limit: int = MAX_PAGE) -> list[AuditEvent]:
        """Up to `limit` events numbered above `after_seq`, in order, times in UTC.

        Raises:
            ValidationError: `after_seq` is negative or `limit` is not 1 to `MAX_PAGE`.
        """
        if after_seq < 0:
            raise ValidationError("after_seq", f"must be 0 or more, not {after_seq}")
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError("limit", f"must be 1 to {MAX_PAGE}, not {limit}")
        with Session(self._engine) as session:
            rows = list(
                session.exec(
                    select(AuditEvent)
                    .where(col(AuditEvent.seq) > after_seq)
                    .order_by(col(AuditEvent.seq))
                    .limit(limit)
                )
            )
            session.expunge_all()
        for row in rows:
            row.recorded_at = utc(row.recorded_at)
        return rows

    def recompute_root(self, size: int | None = None) -> bytes:
        """The root of the first `size` events (all by default), from their fields alone.

        Stored leaf hashes are ignored: each is recomputed from the event, so an
        altered row gives another root than the one recorded when it was appended.

        Raises:
            ValidationError: `size` is negative.
            AuditLogError: An event up to `size` is missing or its details are not JSON.
        """
        if size is None:
            size = self.head().size
        if size < 0:
            raise ValidationError("size", f"must be 0 or more, not {size}")
        frontier = CompactRange()
        for _event, recomputed in self._replay(size):
            frontier.append(recomputed)
        return frontier.root()

    def verify(self) -> None:
        """Check every event against its leaf hash, and all of them against the head (AUD-5).

        Raises:
            AuditLogError: Naming the first event that is missing or whose fields no
                longer match its leaf hash, or saying the head does not match the events.
        """
        head = self.head()
        frontier = CompactRange()
        for event, recomputed in self._replay(head.size):
            if event.leaf_hash != recomputed:
                raise AuditLogError(
                    f"audit event {event.seq} was altered: its fields do not match its leaf hash",
                    seq=event.seq,
                )
            frontier.append(recomputed)
        if frontier.root() != head.root:
            raise AuditLogError(
                f"the audit head's root {head.root.hex()} is not the root of its {head.size} "
                f"events, {frontier.root().hex()}: leaf hashes were rewritten"
            )

    def inclusion_proof(self, seq: int, size: int | None = None) -> InclusionProof:
        """The proof that event `seq` is in the tree of the first `size` events (all by default).

        It is built from the stored leaf hashes, reading the first `size` of them (see
        `node.audit_proofs`). An event whose fields were altered keeps its stored leaf
        hash: `verify` is what finds it.

        Raises:
            ValidationError: `size` is not 1 to the log's size, or `seq` not 1 to `size`.
            AuditLogError: An event up to `size` is missing, or the stored leaf hashes
                do not give the head's root.
        """
        head = self.head()
        size = head.size if size is None else size
        check_sizes("size", size, head.size, least=1)
        proof = prove_inclusion(self._leaf_hashes(size), seq)
        _check_head(head, size, proof.root)
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """The proof that the tree of `old_size` events is a prefix of that of `new_size`.

        `new_size` is the log's size by default. The proof comes with both roots; it is
        built from the first `new_size` stored leaf hashes (see `node.audit_proofs`).

        Raises:
            ValidationError: `new_size` is not 0 to the log's size, or `old_size` not
                0 to `new_size`.
            AuditLogError: An event up to `new_size` is missing, or the stored leaf
                hashes do not give the head's root.
        """
        head = self.head()
        new_size = head.size if new_size is None else new_size
        check_sizes("new_size", new_size, head.size, least=0)
        proof = prove_consistency(self._leaf_hashes(new_size), old_size)
        _check_head(head, new_size, proof.new_root)
        return proof

    def _leaf_hashes(self, size: int) -> list[bytes]:
        """The stored leaf hashes of events 1 to `size`, in order."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(col(AuditEvent.seq), col(AuditEvent.leaf_hash))
                .where(col(AuditEvent.seq) <= size)
                .order_by(col(AuditEvent.seq))
            ).all()
        for expected, (seq, _leaf) in enumerate(rows, start=1):
            if seq != expected:
                raise _missing(expected, size)
        if len(rows) != size:
            raise _missing(len(rows) + 1, size)
        return [leaf for _seq, leaf in rows]

    def _replay(self, size: int) -> Iterator[tuple[AuditEvent, bytes]]:
        """Events 1 to `size` in order, each with its leaf hash recomputed from its fields."""
        expected = 1
        while expected <= size:
            page = self.events(after_seq=expected - 1, limit=min(MAX_PAGE, size - expected + 1))
            if not page:
                raise _missing(expected, size)
            for event in page:
                if event.seq != expected:
                    raise _missing(expected, size)
                yield event, leaf_hash(leaf_bytes(event))
                expected += 1


def _loaded(head: AuditHead | None) -> tuple[AuditHead, CompactRange]:
    if head is None:
        raise AuditLogError("the store has no audit head: apply its migrations")
    try:
        frontier = CompactRange.from_bytes(head.frontier)
    except MerkleError as error:
        raise AuditLogError(f"the audit head is malformed: {error}") from error
    if frontier.size != head.size:
        raise AuditLogError(
            f"the audit head says {head.size} events but its frontier covers {frontier.size}"
        )
    return head, frontier


def _check_head(head: TreeHead, size: int, root: bytes) -> None:
    if size == head.size and root != head.root:
        raise AuditLogError(
            f"the audit head's root {head.root.hex()} is not the root of the {size} stored "
            f"leaf hashes, {root.hex()}: leaf hashes were rewritten"
        )


def _missing(seq: int, size: int) -> AuditLogError:
    return AuditLogError(f"audit event {seq} is missing from a log of {size} events", seq=seq)


def _validated_event(**fields: object) -> AuditEvent:
    # seq and leaf_hash are placeholders until the head is locked.
    try:
        return AuditEvent.model_validate({**fields, "seq": 0, "leaf_hash": bytes(HASH_SIZE)})
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        raise ValidationError(str(first["loc"][0]), first["msg"]) from error
