"""The node's append-only audit log: every event a leaf of an RFC 9162 Merkle tree.

Each event is a row of `audit_event` numbered 1, 2, 3… with no gap (AUD-1); the row
`audit_head` holds the tree size and its `CompactRange`, so an append reads and writes
O(log n) hashes under one lock and never rereads the events; each append also stores
the hash of every perfect subtree it completes (`audit_subtree`, amortized one row), so a
proof reads O(log n) stored hashes, however long the log. Nothing here deletes or
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

import functools
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic
from sqlalchemy import Select, and_, bindparam, insert, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from node.audit_proofs import (
    ConsistencyProof,
    InclusionProof,
    Subtree,
    check_sizes,
    prove_consistency,
    prove_inclusion,
)
from node.errors import NodeError, ValidationError
from node.identity import validate_ori
from node.merkle import HASH_SIZE, CompactRange, MerkleError, leaf_hash, verify_consistency
from node.store.engine import table_of, write_transaction
from node.store.models import AuditEvent, AuditHead, AuditSubtree, utc

MAX_PAGE = 1000
_HEAD_ID = 1
_EVENTS, _HEADS, _SUBTREES = table_of(AuditEvent), table_of(AuditHead), table_of(AuditSubtree)
# Built once: an append runs these on every audited request.
_READ_HEAD = sa_select(_HEADS.c.size, _HEADS.c.frontier).where(_HEADS.c.id == _HEAD_ID)
_LOCK_HEAD = _READ_HEAD.with_for_update()
_INSERT_EVENT, _INSERT_SUBTREES = insert(_EVENTS), insert(_SUBTREES)
_READ_LEAVES = sa_select(_EVENTS.c.seq, _EVENTS.c.leaf_hash).where(
    _EVENTS.c.seq.in_(bindparam("seqs", expanding=True))
)
_UPDATE_HEAD = (
    update(_HEADS)
    .where(_HEADS.c.id == _HEAD_ID)
    .values(size=bindparam("new_size"), frontier=bindparam("new_frontier"))
)


@functools.cache
def _read_subtrees(count: int) -> Select[int, int, bytes]:
    """The statement that reads `count` stored subtrees by key, built once per count.

    An OR of key lookups, not a row-value IN, which SQLite answers by a scan.
    """
    level, index = _SUBTREES.c["level"], _SUBTREES.c["index"]
    return sa_select(level, index, _SUBTREES.c["hash"]).where(
        or_(*(and_(level == bindparam(f"level{i}"), index == bindparam(f"index{i}"))
              for i in range(count)))
    )  # fmt: skip


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
        session: Session | None = None,
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
            session: The caller's transaction (`write_transaction`), to commit the event
                with what it records; its own transaction otherwise.

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
        # Core statements, not ORM flushes: an append is on every request's path.
        with write_transaction(self._engine, session) as writing:
            connection = writing.connection()
            frontier = _loaded(connection.execute(_LOCK_HEAD).one_or_none())
            seq = event.seq = frontier.size + 1
            leaf = event.leaf_hash = leaf_hash(leaf_bytes(event))
            completed = frontier.append(leaf)
            connection.execute(_INSERT_EVENT, [event.model_dump()])
            if completed:
                connection.execute(
                    _INSERT_SUBTREES,
                    [
                        {"level": level, "index": (seq - 1) >> level, "hash": subtree}
                        for level, subtree in enumerate(completed, start=1)
                    ],
                )
            connection.execute(
                _UPDATE_HEAD, {"new_size": frontier.size, "new_frontier": frontier.to_bytes()}
            )
        return AuditRecord(
            seq=seq, recorded_at=recorded_at, leaf_hash=leaf, tree_size=seq, root=frontier.root()
        )

    def head(self) -> TreeHead:
        """The current tree head, from the head row alone.

        Raises:
            AuditLogError: The store has no audit head, or a malformed one.
        """
        with self._engine.connect() as connection:
            frontier = _loaded(connection.execute(_READ_HEAD).one_or_none())
        return TreeHead(size=frontier.size, root=frontier.root())

    def events(
        self, after_seq: int = 0, limit: int = MAX_PAGE, *, kinds: Collection[str] = ()
    ) -> list[AuditEvent]:
        """Up to `limit` events numbered above `after_seq`, in order, times in UTC.

        Args:
            after_seq: Start after this event.
            limit: At most this many.
            kinds: Only events of these kinds (by the indexed `kind`); every kind when empty.

        Raises:
            ValidationError: `after_seq` is negative or `limit` is not 1 to `MAX_PAGE`.
        """
        if after_seq < 0:
            raise ValidationError("after_seq", f"must be 0 or more, not {after_seq}")
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError("limit", f"must be 1 to {MAX_PAGE}, not {limit}")
        query = select(AuditEvent).where(col(AuditEvent.seq) > after_seq)
        if kinds:
            query = query.where(col(AuditEvent.kind).in_(sorted(kinds)))
        with Session(self._engine) as session:
            rows = list(session.exec(query.order_by(col(AuditEvent.seq)).limit(limit)))
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
        return self.roots_at([size])[size]

    def roots_at(self, sizes: Iterable[int]) -> dict[int, bytes]:
        """The root at each of `sizes`, recomputed as `recompute_root` does, in one pass.

        Raises:
            ValidationError: A size is negative.
            AuditLogError: An event up to the largest size is missing or its details are
                not JSON.
        """
        wanted = sorted(set(sizes))
        if not wanted:
            return {}
        if wanted[0] < 0:
            raise ValidationError("size", f"must be 0 or more, not {wanted[0]}")
        roots: dict[int, bytes] = {}
        frontier = CompactRange()
        replay = self._replay(wanted[-1])
        for target in wanted:
            while frontier.size < target:
                _event, recomputed = next(replay)
                frontier.append(recomputed)
            roots[target] = frontier.root()
        return roots

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

        It is built from O(log size) stored hashes: event `seq`'s leaf hash and those of
        the subtrees on its path (see `node.audit_proofs`), and checked before it is
        returned. An event whose fields were altered keeps its stored leaf hash, and a
        hash rewritten off the path is never read: `verify`, which reads every event, is
        what finds both.

        Raises:
            ValidationError: `size` is not 1 to the log's size, or `seq` not 1 to `size`.
            AuditLogError: An event or subtree the proof needs is missing, or the stored
                hashes do not lead to the proof's root or, at the log's size, the head's.
        """
        head = self.head()
        size = head.size if size is None else size
        check_sizes("size", size, head.size, least=1)
        proof = prove_inclusion(seq, size, lambda wanted: self._stored_hashes(wanted, size))
        _check_head(head, size, proof.root)
        try:
            proof.verify()
        except MerkleError as error:
            raise _rewritten(error) from error
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """The proof that the tree of `old_size` events is a prefix of that of `new_size`.

        `new_size` is the log's size by default. The proof comes with both roots; it is
        built from O(log new_size) stored hashes (see `node.audit_proofs`) and checked
        before it is returned.

        Raises:
            ValidationError: `new_size` is not 0 to the log's size, or `old_size` not
                0 to `new_size`.
            AuditLogError: An event or subtree the proof needs is missing, or the stored
                hashes do not lead to both roots or, at the log's size, to the head's.
        """
        head = self.head()
        new_size = head.size if new_size is None else new_size
        check_sizes("new_size", new_size, head.size, least=0)
        proof = prove_consistency(
            old_size, new_size, lambda wanted: self._stored_hashes(wanted, new_size)
        )
        _check_head(head, new_size, proof.new_root)
        try:
            verify_consistency(old_size, new_size, proof.old_root, proof.new_root, proof.hashes)
        except MerkleError as error:
            raise _rewritten(error) from error
        return proof

    def _stored_hashes(self, wanted: Collection[Subtree], size: int) -> dict[Subtree, bytes]:
        """The stored hash of each subtree in `wanted`, in two queries.

        Both statements are built once (`_READ_LEAVES`, `_read_subtrees`): a partner's
        answer carries a consistency proof, so this runs on every exchange.

        Raises:
            AuditLogError: A leaf's event or a subtree's row is missing.
        """
        seqs = sorted(index + 1 for level, index in wanted if level == 0)
        inner = sorted(subtree for subtree in wanted if subtree[0] > 0)
        with self._engine.connect() as connection:
            stored = {
                (0, seq - 1): bytes(leaf)
                for seq, leaf in connection.execute(_READ_LEAVES, {"seqs": seqs})
            }
            if inner:
                keys = {f"{name}{i}": value for i, key in enumerate(inner)
                        for name, value in zip(("level", "index"), key, strict=True)}  # fmt: skip
                rows = connection.execute(_read_subtrees(len(inner)), keys)
                stored.update(((level, index), bytes(subtree)) for level, index, subtree in rows)
        for level, index in sorted(wanted, key=lambda subtree: subtree[1] << subtree[0]):
            if (level, index) not in stored:
                first = (index << level) + 1
                if level == 0:
                    raise _missing(first, size)
                raise AuditLogError(
                    f"the audit log's stored subtree of events {first} to "
                    f"{first + (1 << level) - 1} is missing",
                    seq=first,
                )
        return stored

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


def _loaded(head: Sequence[Any] | None) -> CompactRange:
    """The frontier of the head row (size, frontier), checked against its size."""
    if head is None:
        raise AuditLogError("the store has no audit head: apply its migrations")
    size, stored = head
    try:
        frontier = CompactRange.from_bytes(stored)
    except MerkleError as error:
        raise AuditLogError(f"the audit head is malformed: {error}") from error
    if frontier.size != size:
        raise AuditLogError(
            f"the audit head says {size} events but its frontier covers {frontier.size}"
        )
    return frontier


def _check_head(head: TreeHead, size: int, root: bytes) -> None:
    if size == head.size and root != head.root:
        raise AuditLogError(
            f"the audit head's root {head.root.hex()} is not the root of the {size} stored "
            f"leaf hashes, {root.hex()}: leaf hashes were rewritten"
        )


def _rewritten(error: MerkleError) -> AuditLogError:
    return AuditLogError(f"the stored hashes do not agree ({error}): leaf hashes were rewritten")


def _missing(seq: int, size: int) -> AuditLogError:
    return AuditLogError(f"audit event {seq} is missing from a log of {size} events", seq=seq)


def _validated_event(**fields: object) -> AuditEvent:
    # seq and leaf_hash are placeholders until the head is locked.
    try:
        return AuditEvent.model_validate({**fields, "seq": 0, "leaf_hash": bytes(HASH_SIZE)})
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        raise ValidationError(str(first["loc"][0]), first["msg"]) from error
