"""The node's tables.

Every change to a table here comes with an alembic revision in
`node/store/migrations/versions/`; a test fails when the two disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Index
from sqlmodel import Field, SQLModel


def utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (SQLite hands back naive ones)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class NodeIdentity(SQLModel, table=True):
    """Whose database this is: one row, written by `alpr init`.

    `alpr serve` refuses to start when its configuration names another agency or
    another signing key, so a node can never be pointed at a partner's data. Only
    the public key is kept; the private key stays in its 0600 file (SEC-2).
    """

    __tablename__ = "node_identity"

    id: int = Field(default=1, primary_key=True)
    ori: str = Field(max_length=9)
    name: str = Field(max_length=200)
    federation: str = Field(max_length=253)
    signing_public_key: bytes
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


class AuditEvent(SQLModel, table=True):
    """One event of the append-only audit log: a leaf of its Merkle tree (AUD-1, AUD-5).

    `seq` starts at 1 and grows by one with no gap; it is assigned by `node.audit`, never
    by the database. `leaf_hash` is the RFC 9162 leaf hash of the event's canonical bytes
    (`node.audit.leaf_bytes`), so a changed field no longer matches it. Rows are never
    updated or deleted by the code: audit records outlive data retention (AUD-2).
    """

    __tablename__ = "audit_event"

    seq: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    recorded_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    kind: str = Field(min_length=1, max_length=64, index=True)
    actor: str = Field(min_length=1, max_length=2048)
    agency: str = Field(max_length=9)
    peer_ip: str = Field(default="", max_length=64)
    # As long as an agreement's purpose may be (federation.terms.MAX_TEXT): profiles name
    # purposes of up to 98 characters.
    purpose: str = Field(default="", max_length=500)
    case_number: str = Field(default="", max_length=64)
    details: str = "{}"
    leaf_hash: bytes = Field(min_length=32, max_length=32)


class AuditHead(SQLModel, table=True):
    """The audit log's current tree head: one row, updated with every append.

    It holds the tree size and the serialized `node.merkle.CompactRange`, so an append
    reads and writes O(log n) hashes and never the events themselves.
    """

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    size: int = Field(sa_type=BigInteger)
    frontier: bytes


class AuditSubtree(SQLModel, table=True):
    """The hash of one perfect subtree of the audit log's Merkle tree, stored as it completes.

    Row (`level`, `index`) is the root of the ``2**level`` leaves from leaf
    ``index * 2**level`` (events ``index * 2**level + 1`` on). Leaves (level 0) are not
    stored here: they are `AuditEvent.leaf_hash`. With these, `node.audit` builds any
    proof from O(log n) stored hashes. Like the events, rows are never updated or
    deleted by the code.
    """

    __tablename__ = "audit_subtree"

    level: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    index: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    hash: bytes


class AuditCheckpointRecord(SQLModel, table=True):
    """A checkpoint of the audit log that the node signed: at intervals and in each receipt.

    Kept so that `alpr audit verify` can check every head the node ever vouched for
    against the events, and so partners' cosignatures can be matched to them (AUD-7).
    """

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    size: int = Field(sa_type=BigInteger, index=True)
    root: bytes
    note: bytes
    signed_at: datetime = Field(sa_type=DateTime(timezone=True))


class AuditCosignatureRecord(SQLModel, table=True):
    """A partner's cosignature on a checkpoint we signed: it witnessed our log to there (AUD-7)."""

    __tablename__ = "audit_cosignature"

    id: int | None = Field(default=None, primary_key=True)
    witness_ori: str = Field(max_length=9, index=True)
    size: int = Field(sa_type=BigInteger)
    root: bytes
    note: bytes
    received_at: datetime = Field(sa_type=DateTime(timezone=True))


class WitnessedCheckpointRecord(SQLModel, table=True):
    """A partner's checkpoint we verified as consistent with what we held (AUD-7).

    `note` carries our cosignature when `cosigned`: a log is cosigned at intervals, and
    the checkpoints between are kept verified so the next is checked against the latest.
    """

    __tablename__ = "witnessed_checkpoint"
    # Every exchange asks for the largest checkpoint held of its partner: an index walk.
    __table_args__ = (Index("ix_witnessed_checkpoint_partner_size", "partner_ori", "size"),)

    id: int | None = Field(default=None, primary_key=True)
    partner_ori: str = Field(max_length=9)
    size: int = Field(sa_type=BigInteger)
    root: bytes
    note: bytes
    cosigned: bool = True
    witnessed_at: datetime = Field(sa_type=DateTime(timezone=True))


class LogAlarmRecord(SQLModel, table=True):
    """Two checkpoints of one log that cannot both be true: evidence that it was rewritten.

    Raised by a witness against a partner's log (`partner_ori` is the log's agency), or
    reported to us by a partner about our own log (`partner_ori` is the reporter).
    """

    __tablename__ = "log_alarm"

    id: int | None = Field(default=None, primary_key=True)
    partner_ori: str = Field(max_length=9, index=True)
    our_log: bool
    held: bytes
    offered: bytes
    detail: str = Field(max_length=500)
    raised_at: datetime = Field(sa_type=DateTime(timezone=True))


class SchedulerLease(SQLModel, table=True):
    """Which of the processes serving the agency runs the scheduled jobs, and until when.

    One row at most. Its holder renews it; another process takes it over once it expires.
    """

    __tablename__ = "scheduler_lease"

    id: int = Field(default=1, primary_key=True)
    holder: str = Field(max_length=200)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
