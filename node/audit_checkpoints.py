"""The checkpoints a node signs of its own audit log: at intervals and in every receipt.

Each is a C2SP signed checkpoint (`node.checkpoint`) kept in the store, so an auditor's
`alpr audit verify` checks every head the node ever vouched for against the events, and
a rewritten log is caught by anyone holding one of them (AUD-5, AUD-7).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from node.audit import AuditLog, AuditLogError, TreeHead
from node.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    sign_note,
)
from node.clock import Clock
from node.ed25519 import Ed25519Signer
from node.store.models import AuditCheckpointRecord


def signed_checkpoint(signer: Ed25519Signer, origin: str, head: TreeHead) -> bytes:
    """The checkpoint of the log `origin` at `head`, as a note signed by `signer`."""
    body = Checkpoint(origin, head.size, head.root).body()
    return sign_note(body, [NoteSigner(origin, signer)])


class CheckpointStore:
    """Signs checkpoints of this node's audit log and keeps every one."""

    def __init__(self, engine: Engine, *, signer: Ed25519Signer, origin: str, clock: Clock) -> None:
        """Sign as `signer` for the log named `origin`, keeping checkpoints in `engine`."""
        self._engine = engine
        self._signer = signer
        self._origin = origin
        self._clock = clock

    def sign(self, head: TreeHead) -> bytes:
        """A signed checkpoint at `head`, kept; the last one again if it is at the same head."""
        with Session(self._engine) as session:
            last = session.exec(
                select(AuditCheckpointRecord).order_by(col(AuditCheckpointRecord.id).desc())
            ).first()
            if last is not None and (last.size, last.root) == (head.size, head.root):
                return last.note
            note = signed_checkpoint(self._signer, self._origin, head)
            session.add(
                AuditCheckpointRecord(
                    size=head.size, root=head.root, note=note, signed_at=self._clock()
                )
            )
            session.commit()
            return note

    def latest(self) -> bytes | None:
        """The most recent checkpoint signed, if any."""
        with Session(self._engine) as session:
            last = session.exec(
                select(AuditCheckpointRecord).order_by(col(AuditCheckpointRecord.id).desc())
            ).first()
            return last.note if last else None

    def verify(self, log: AuditLog) -> int:
        """Check every kept checkpoint: our signature, and its root against the events.

        Returns:
            How many checkpoints were checked.

        Raises:
            AuditLogError: A checkpoint does not verify, or names a root the events at its
                size do not give (the log was rewritten after it was signed).
        """
        with Session(self._engine) as session:
            kept = list(
                session.exec(select(AuditCheckpointRecord).order_by(col(AuditCheckpointRecord.id)))
            )
        verifier = NoteVerifier(self._origin, self._signer.public_key)
        size = log.head().size
        for record in kept:
            if record.size > size:
                raise AuditLogError(
                    f"checkpoint {record.id} vouched for {record.size} events, the log holds "
                    f"{size}: it was truncated after the checkpoint was signed"
                )
        roots = log.roots_at(record.size for record in kept)
        for record in kept:
            try:
                checkpoint, _ = open_checkpoint(record.note, self._origin, verifier)
            except CheckpointError as error:
                raise AuditLogError(f"checkpoint {record.id} does not verify: {error}") from error
            if (checkpoint.size, checkpoint.root) != (record.size, roots[record.size]):
                raise AuditLogError(
                    f"checkpoint {record.id} at size {record.size} names a root the events "
                    "no longer give: the log was rewritten after it was signed"
                )
        return len(kept)
