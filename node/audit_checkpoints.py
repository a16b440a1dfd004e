"""The checkpoints a node signs of its own audit log: at intervals and in every receipt.

Each is a C2SP signed checkpoint (`node.checkpoint`) kept in the store, so an auditor's
`alpr audit verify` checks every head the node ever vouched for against the events, and
a rewritten log is caught by anyone holding one of them (AUD-5, AUD-7). Partners that
witnessed one of them send back their cosignature, kept here too and checked alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import insert
from sqlalchemy import select as sa_select
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
from node.store.engine import table_of, write_transaction
from node.store.models import AuditCheckpointRecord, AuditCosignatureRecord, LogAlarmRecord

_CHECKPOINTS = table_of(AuditCheckpointRecord)
# Built once: a receipt signs a checkpoint on every exchange answered. LIMIT 1, or the
# whole table would be read.
_LAST_SIGNED = (
    sa_select(_CHECKPOINTS.c.size, _CHECKPOINTS.c.root, _CHECKPOINTS.c.note)
    .order_by(_CHECKPOINTS.c.id.desc())
    .limit(1)
)
_INSERT_CHECKPOINT = insert(_CHECKPOINTS)


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

    def sign(self, head: TreeHead, session: Session | None = None) -> bytes:
        """A signed checkpoint at `head`, kept; the last one again if it is at the same head.

        In `session`, the caller's transaction, if given (a receipt's checkpoint commits
        with its audit event); in its own otherwise.
        """
        with write_transaction(self._engine, session) as writing:
            connection = writing.connection()
            last = connection.execute(_LAST_SIGNED).one_or_none()
            if last is not None and (last.size, last.root) == (head.size, head.root):
                return bytes(last.note)
            note = signed_checkpoint(self._signer, self._origin, head)
            connection.execute(
                _INSERT_CHECKPOINT,
                {"size": head.size, "root": head.root, "note": note, "signed_at": self._clock()},
            )
            return note

    def latest(self) -> bytes | None:
        """The most recent checkpoint signed, if any."""
        with self._engine.connect() as connection:
            last = connection.execute(_LAST_SIGNED).one_or_none()
        return bytes(last.note) if last else None

    @property
    def verifier(self) -> NoteVerifier:
        """Our log's key, named by its origin, as partners and auditors check it."""
        return NoteVerifier(self._origin, self._signer.public_key)

    def open(self, note: bytes, cosigners: tuple[NoteVerifier, ...] = ()) -> Checkpoint:
        """A checkpoint of our log that we signed (and, if named, `cosigners` did).

        Raises:
            CheckpointError: We did not sign it, a cosigner did not, or it is malformed.
        """
        checkpoint, _ = open_checkpoint(
            note, self._origin, self.verifier, cosigners, threshold=len(cosigners)
        )
        return checkpoint

    def accept_cosignature(self, note: bytes, *, witness_ori: str, witness: NoteVerifier) -> None:
        """Keep a partner's cosignature on a checkpoint we signed and kept (AUD-7).

        Raises:
            CheckpointError: The note is not ours cosigned by `witness`, or names a head
                we never signed.
        """
        checkpoint = self.open(note, (witness,))
        with Session(self._engine) as session:
            signed = session.exec(
                select(AuditCheckpointRecord).where(
                    AuditCheckpointRecord.size == checkpoint.size,
                    AuditCheckpointRecord.root == checkpoint.root,
                )
            ).first()
            if signed is None:
                raise CheckpointError(f"we signed no checkpoint at size {checkpoint.size}")
            session.add(
                AuditCosignatureRecord(
                    witness_ori=witness_ori,
                    size=checkpoint.size,
                    root=checkpoint.root,
                    note=note,
                    received_at=self._clock(),
                )
            )
            session.commit()

    def cosignatures(self) -> list[AuditCosignatureRecord]:
        """Every cosignature partners gave on our checkpoints, oldest first."""
        with Session(self._engine) as session:
            return list(
                session.exec(
                    select(AuditCosignatureRecord).order_by(col(AuditCosignatureRecord.id))
                )
            )

    def record_report(self, *, reporter_ori: str, held: bytes, offered: bytes, detail: str) -> None:
        """Keep a partner's report that two checkpoints of ours disagree, as evidence.

        Raises:
            CheckpointError: Either note is not a checkpoint we signed.
        """
        self.open(held)
        self.open(offered)
        with Session(self._engine) as session:
            session.add(
                LogAlarmRecord(
                    partner_ori=reporter_ori,
                    our_log=True,
                    held=held,
                    offered=offered,
                    detail=detail[:500],
                    raised_at=self._clock(),
                )
            )
            session.commit()

    def verify(self, log: AuditLog, witnesses: Mapping[str, NoteVerifier] | None = None) -> int:
        """Check every kept checkpoint and cosignature: signatures, and roots against the events.

        Args:
            log: Our audit log.
            witnesses: Each partner's witness key by ORI; a cosignature by an agency not
                named is checked for our signature and its root only.

        Returns:
            How many checkpoints and cosignatures were checked.

        Raises:
            AuditLogError: A checkpoint or cosignature does not verify, or names a root the
                events at its size do not give (the log was rewritten after it was signed).
        """
        with Session(self._engine) as session:
            kept = list(
                session.exec(select(AuditCheckpointRecord).order_by(col(AuditCheckpointRecord.id)))
            )
        heads: list[tuple[str, int, bytes, tuple[NoteVerifier, ...]]] = [
            (f"checkpoint {r.id}", r.size, r.note, ()) for r in kept
        ]
        for record in self.cosignatures():
            # A former partner's key may be gone: our own signature and the root still count.
            witness = (witnesses or {}).get(record.witness_ori)
            cosigners: tuple[NoteVerifier, ...] = () if witness is None else (witness,)
            heads.append((f"cosignature {record.id}", record.size, record.note, cosigners))
        size = log.head().size
        for name, at, _, _ in heads:
            if at > size:
                raise AuditLogError(
                    f"{name} vouched for {at} events, the log holds "
                    f"{size}: it was truncated after the checkpoint was signed"
                )
        roots = log.roots_at(at for _, at, _, _ in heads)
        for name, at, note, cosigners in heads:
            try:
                checkpoint = self.open(note, cosigners)
            except CheckpointError as error:
                raise AuditLogError(f"{name} does not verify: {error}") from error
            if (checkpoint.size, checkpoint.root) != (at, roots[at]):
                raise AuditLogError(
                    f"{name} at size {at} names a root the events "
                    "no longer give: the log was rewritten after it was signed"
                )
        return len(heads)
