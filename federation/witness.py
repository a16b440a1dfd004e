"""Partners witness each other's audit logs (AUD-7), as transparency-log witnesses do.

Every receipt a partner gives us carries its signed checkpoint, and a scheduled job
asks each partner for its latest. `Witness.observe` checks a checkpoint against the
last one of that partner's log we hold: a consistency proof from the smaller to the
larger tree (RFC 9162 §2.1.4), fetched from the partner and verified here. A checkpoint
that extends what we held is kept and cosigned, and the cosignature goes back to the
partner; one that does not is refused, kept with the one we held as evidence, audited,
and reported to the partner, whose own operators then see the alarm. So a node that
rewrites or truncates its log after a partner witnessed it is caught on the next
exchange, or at the next scheduled look.

Every checkpoint is checked, but a partner's log is cosigned at most once per
`COSIGN_INTERVAL` (as transparency-log witnesses cosign at intervals, not per entry): a
consistent extension inside the interval is kept as verified, so the next one is checked
against it, and the cosignature (our audit event, a round trip, the partner's write) waits
for the first extension after the interval, or the scheduled look. Cosigning every
exchange cost more than the rest of a plate query's closing work.

`WitnessedLog` is the other side: what we answer partners that witness our log. These
calls need a registered peer and nothing more: the log outlives any agreement.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, insert
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from alpr.federation.v1 import exchange_pb2
from alpr.federation.v1 import federation_service_pb2 as pb
from federation.client import PartnerClient, PartnerRefusedError
from federation.envelope import Envelope, parse_payload
from federation.exchange import MAX_BATCH, ExchangeLedger
from federation.peers import Peer
from node.audit import AuditLog, leaf_bytes
from node.audit_checkpoints import CheckpointStore
from node.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    add_signatures,
    log_origin,
    open_checkpoint,
    witness_name,
)
from node.clock import Clock
from node.ed25519 import Ed25519Signer
from node.errors import NotFoundError, UnavailableError, ValidationError
from node.merkle import MerkleError, leaf_hash, verify_consistency, verify_inclusion
from node.store.engine import table_of
from node.store.models import LogAlarmRecord, WitnessedCheckpointRecord, utc

log = logging.getLogger(__name__)

MAX_NOTE_BYTES = 8 * 1024
"""A checkpoint with a hundred signatures is under 8 KiB; anything larger is refused."""

COSIGN_INTERVAL = timedelta(minutes=1)
Span = tuple[int, int]
"""A consistency proof's (old size, new size) of a log."""
_WITNESSED = table_of(WitnessedCheckpointRecord)
_INSERT_WITNESSED = insert(_WITNESSED)
_READ_HELD = (
    sa_select(_WITNESSED.c.size, _WITNESSED.c.root, _WITNESSED.c.note)
    .where(_WITNESSED.c.partner_ori == bindparam("partner_ori"))
    .order_by(_WITNESSED.c.size.desc())
    .limit(1)
)


class _Held(NamedTuple):
    """The largest checkpoint of a partner's log we witnessed."""

    size: int
    root: bytes
    note: bytes


class Witnessed(enum.Enum):
    """What became of a partner's checkpoint we looked at."""

    COSIGNED = "cosigned"
    """The first we saw of its log, or a consistent extension: kept and cosigned."""
    VERIFIED = "verified"
    """A consistent extension within `COSIGN_INTERVAL` of our last cosignature: kept."""
    CONSISTENT = "consistent"
    """No newer than the head we witnessed, and a prefix of it: nothing to do."""
    INCONSISTENT = "inconsistent"
    """Not consistent with what we hold: refused, kept as evidence, alarm raised."""


def witness_verifier(peer: Peer) -> NoteVerifier:
    """The key `peer` cosigns our checkpoints with, under its witness name."""
    return NoteVerifier(witness_name(peer.federation, peer.ori), peer.key)


def check_note_size(note: bytes, field: str) -> bytes:
    """`note`, if it is not empty and not too large for a checkpoint.

    Raises:
        ValidationError: It is empty or larger than `MAX_NOTE_BYTES`.
    """
    if not note or len(note) > MAX_NOTE_BYTES:
        raise ValidationError(field, f"must be a signed checkpoint of 1 to {MAX_NOTE_BYTES} bytes")
    return note


@dataclass(frozen=True)
class InclusionAnswer:
    """A proof that the audit event of an exchange is in a log, to a checkpoint of it."""

    audit_seq: int
    event: bytes
    hashes: tuple[bytes, ...]
    checkpoint: bytes

    def to_proto(self) -> pb.GetInclusionProofResponse:
        """As FederationService.GetInclusionProof answers it."""
        return pb.GetInclusionProofResponse(
            audit_seq=self.audit_seq,
            event=self.event,
            hashes=self.hashes,
            checkpoint=self.checkpoint,
        )

    @classmethod
    def from_proto(cls, message: pb.GetInclusionProofResponse) -> InclusionAnswer:
        """From FederationService.GetInclusionProof's answer (not yet verified)."""
        return cls(message.audit_seq, message.event, tuple(message.hashes), message.checkpoint)


class Witness:
    """Witnesses partners' audit logs: checks each checkpoint for consistency, cosigns."""

    def __init__(
        self,
        engine: Engine,
        *,
        federation: str,
        ori: str,
        signer: Ed25519Signer,
        audit: AuditLog,
        client: PartnerClient,
        clock: Clock,
        cosign_interval: timedelta = COSIGN_INTERVAL,
    ) -> None:
        """Witness as agency `ori` of `federation`, cosigning with `signer`.

        Args:
            engine: Where witnessed checkpoints and alarms are kept.
            federation: The federation's trust domain.
            ori: Our agency.
            signer: Our node's key.
            audit: Our audit log: cosignatures and alarms are events in it.
            client: How partners are reached.
            clock: The node's clock.
            cosign_interval: The least time between two cosignatures of one partner's log.
        """
        self._engine = engine
        self._ori = ori
        self._signer = NoteSigner(witness_name(federation, ori), signer)
        self._audit = audit
        self._client = client
        self._clock = clock
        self._cosign_interval = cosign_interval
        self._cosigned_at: dict[str, datetime] = {}
        self._sizes: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def held(self, partner_ori: str) -> WitnessedCheckpointRecord | None:
        """The largest checkpoint of `partner_ori`'s log we witnessed, if any."""
        with Session(self._engine) as session:
            return session.exec(
                select(WitnessedCheckpointRecord)
                .where(WitnessedCheckpointRecord.partner_ori == partner_ori)
                .order_by(col(WitnessedCheckpointRecord.size).desc())
                .limit(1)
            ).first()

    def _held_head(self, partner_ori: str) -> _Held | None:
        """`held`'s size, root and note alone: what every exchange's witnessing reads."""
        with self._engine.connect() as connection:
            row = connection.execute(_READ_HELD, {"partner_ori": partner_ori}).one_or_none()
        return None if row is None else _Held(int(row.size), bytes(row.root), bytes(row.note))

    async def held_size(self, partner_ori: str) -> int:
        """The size of the largest checkpoint of `partner_ori`'s log we witnessed, or 0.

        Remembered from the store once, then from what we keep: a request names it so its
        answer carries the consistency proof (a size already passed, where another process
        serves our agency too, costs only a proof asked for apart).
        """
        if partner_ori not in self._sizes:
            held = await asyncio.to_thread(self._held_head, partner_ori)
            self._sizes.setdefault(partner_ori, 0 if held is None else held.size)
        return self._sizes[partner_ori]

    def alarms(self) -> list[LogAlarmRecord]:
        """Every alarm raised about a log, ours or a partner's, oldest first."""
        with Session(self._engine) as session:
            return list(session.exec(select(LogAlarmRecord).order_by(col(LogAlarmRecord.id))))

    async def observe(self, peer: Peer, note: bytes) -> Witnessed:
        """Witness `peer`'s signed checkpoint `note` against the last one of its we hold.

        Raises:
            CheckpointError: `note` is not a checkpoint of `peer`'s log signed by it.
            UnavailableError: The partner could not be asked for a consistency proof.
            PartnerRefusedError: It refused to give one.
        """
        [witnessed] = await self.observe_many(peer, [note])
        return witnessed

    async def observe_many(
        self,
        peer: Peer,
        notes: Sequence[bytes],
        given: Mapping[Span, Sequence[bytes]] | None = None,
    ) -> list[Witnessed]:
        """Witness several of `peer`'s checkpoints at once (those of a batch of receipts).

        The largest of them and of the one we hold is the head: every other is checked to
        be a prefix of it, all with one call for the consistency proofs (none when `given`,
        the unverified proofs that came with the partner's answers by their (old, new)
        sizes, holds every one needed), and the head, if it is one of `notes` and new, is
        kept. Each note gets its outcome, in order.

        Raises:
            CheckpointError: A note is not a checkpoint of `peer`'s log signed by it.
            UnavailableError: The partner could not be asked for consistency proofs.
            PartnerRefusedError: It refused to give them.
            ValidationError: `notes` is empty or holds more than `MAX_BATCH`.
        """
        if not 1 <= len(notes) <= MAX_BATCH:
            raise ValidationError("checkpoints", f"witness 1 to {MAX_BATCH} at once")
        # One look at a partner's log at a time: two that each checked against the same
        # head while the partner stalled them could each keep a fork of it.
        async with self._locks.setdefault(peer.ori, asyncio.Lock()):
            return await self._observe_many(peer, notes, given or {})

    async def _observe_many(
        self, peer: Peer, notes: Sequence[bytes], given: Mapping[Span, Sequence[bytes]]
    ) -> list[Witnessed]:
        origin = log_origin(peer.federation, peer.ori)
        verifier = NoteVerifier(origin, peer.key)
        offered = [
            open_checkpoint(check_note_size(note, "checkpoint"), origin, verifier)[0]
            for note in notes
        ]
        held = await asyncio.to_thread(self._held_head, peer.ori)  # off the event loop
        known = [(c.size, c.root, note) for c, note in zip(offered, notes, strict=True)]
        if held is not None:
            known.append((held.size, held.root, held.note))
        head_size, head_root, head_note = max(known, key=lambda checkpoint: checkpoint[0])
        held_note = held.note if held is not None else None
        older = sorted({size for size, _, _ in known if size < head_size})
        try:
            proofs = await self._proofs(peer, older, head_size, given)
        except PartnerRefusedError as error:
            if held is None or head_size != held.size:
                raise
            # A refusal alone proves nothing; its own signed head smaller than one it
            # signed before does: it cannot prove it ever had the events we witnessed.
            latest = await self._client.checkpoint(peer)
            current = open_checkpoint(check_note_size(latest, "checkpoint"), origin, verifier)[0]
            if current.size >= held.size:
                raise
            detail = (
                f"the log shrank: it signs {current.size} events now, after the {held.size} "
                f"we witnessed, and cannot prove they extend them ({error.diagnostics()})"
            )
            await self._alarm(peer, held.note, latest, detail)
            return [Witnessed.INCONSISTENT] * len(notes)
        # Each checkpoint must be a prefix of the head; a failure keeps both as evidence.
        checks = [(c.size, c.root, note, note) for c, note in zip(offered, notes, strict=True)]
        if held is not None:
            checks.append((held.size, held.root, held.note, head_note))
        failed: set[bytes] = set()
        for size, root, note, blamed in checks:
            try:
                verify_consistency(size, head_size, root, head_root, proofs.get(size, []))
            except MerkleError as error:
                detail = f"no consistency from {size} to {head_size} events: {error}"
                evidence = (note, head_note) if note is held_note else (head_note, note)
                await self._alarm(peer, *evidence, detail)
                failed.add(blamed)
        outcomes = [
            Witnessed.INCONSISTENT if note in failed else Witnessed.CONSISTENT for note in notes
        ]
        if not failed and (held is None or head_size > held.size):
            newest = notes.index(head_note)
            outcomes[newest] = await self._keep(peer, offered[newest], head_note)
        return outcomes

    async def _proofs(
        self, peer: Peer, old_sizes: list[int], new_size: int, given: Mapping[Span, Sequence[bytes]]
    ) -> dict[int, Sequence[bytes]]:
        """The partner's consistency paths from each of `old_sizes` to `new_size`, unverified.

        Those `given` are taken from there; the partner is asked for the others.
        """
        proofs = {old: given[old, new_size] for old in old_sizes if (old, new_size) in given}
        missing = [old for old in old_sizes if old not in proofs]
        if not missing:
            return proofs
        asked = await self._client.consistency_proofs(peer, missing, new_size)
        if len(asked) != len(missing):
            raise PartnerRefusedError(
                f"partner {peer.ori} gave {len(asked)} proofs for {len(missing)} sizes"
            )
        return proofs | dict(zip(missing, asked, strict=True))

    async def observe_latest(self, peer: Peer) -> Witnessed:
        """Ask `peer` for its latest checkpoint and witness it.

        Raises:
            CheckpointError: Its answer is not a checkpoint of its log signed by it.
            UnavailableError: The partner cannot be reached.
            PartnerRefusedError: It refused.
        """
        return await self.observe(peer, await self._client.checkpoint(peer))

    async def prove_exchange(self, peer: Peer, exchange_id: str) -> Checkpoint:
        """Ask `peer` to prove its audit event of our exchange is in its log, and check it.

        Returns:
            The partner's signed checkpoint the event is proved to be under.

        Raises:
            UnavailableError: The partner cannot be reached.
            PartnerRefusedError: It refused (NOT_FOUND: it answered us no such exchange).
            CheckpointError: The checkpoint is not the partner's.
            MerkleError: The proof does not lead from the event to its root.
            ValidationError: The proved event does not name the exchange.
        """
        answer = await self._client.inclusion_proof(peer, exchange_id)
        return verify_inclusion_answer(InclusionAnswer.from_proto(answer), peer, exchange_id)

    async def _keep(self, peer: Peer, checkpoint: Checkpoint, note: bytes) -> Witnessed:
        """Keep a checkpoint that extends what we held; cosign it if the interval has passed."""
        now = self._clock()
        last = self._cosigned_at.get(peer.ori) or await asyncio.to_thread(
            self._last_cosigned, peer.ori
        )
        cosign = last is None or now - last >= self._cosign_interval
        kept = add_signatures(note, [self._signer]) if cosign else note
        row = {
            "partner_ori": peer.ori,
            "size": checkpoint.size,
            "root": checkpoint.root,
            "note": kept,
            "cosigned": cosign,
            "witnessed_at": now,
        }
        await asyncio.to_thread(self._insert, row)  # every exchange: off the event loop
        self._sizes[peer.ori] = max(self._sizes.get(peer.ori, 0), checkpoint.size)
        if not cosign:
            return Witnessed.VERIFIED
        self._cosigned_at[peer.ori] = now
        await self._cosign(peer, checkpoint, kept)
        return Witnessed.COSIGNED

    def _insert(self, row: Mapping[str, object]) -> None:
        with self._engine.begin() as connection:
            connection.execute(_INSERT_WITNESSED, row)

    def _last_cosigned(self, partner_ori: str) -> datetime | None:
        """When we last cosigned `partner_ori`'s log, from the store (once per partner)."""
        with Session(self._engine) as session:
            last = session.exec(
                select(WitnessedCheckpointRecord.witnessed_at)
                .where(
                    WitnessedCheckpointRecord.partner_ori == partner_ori,
                    col(WitnessedCheckpointRecord.cosigned),
                )
                .order_by(col(WitnessedCheckpointRecord.size).desc())
                .limit(1)
            ).first()
        return None if last is None else utc(last)

    async def _cosign(self, peer: Peer, checkpoint: Checkpoint, cosigned: bytes) -> None:
        """Audit our cosignature of `checkpoint` (kept) and give it to the partner."""
        await asyncio.to_thread(
            self._audit.append,
            "witness.cosigned",
            actor=peer.spiffe_id,
            agency=self._ori,
            details={"partner": peer.ori, "size": checkpoint.size, "root": checkpoint.root.hex()},
        )
        try:
            await self._client.cosign_checkpoint(peer, cosigned)
        except (UnavailableError, PartnerRefusedError) as error:
            # We witnessed it either way; the partner lacks one cosignature.
            log.warning("cosignature not delivered to %s: %s", peer.ori, error.diagnostics())

    def _keep_alarm(self, peer: Peer, held: bytes, offered: bytes, detail: str) -> None:
        """Keep both checkpoints as evidence, and audit the alarm."""
        with Session(self._engine) as session:
            session.add(
                LogAlarmRecord(
                    partner_ori=peer.ori,
                    our_log=False,
                    held=held,
                    offered=offered,
                    detail=detail[:500],
                    raised_at=self._clock(),
                )
            )
            session.commit()
        self._audit.append(
            "witness.inconsistent",
            actor=peer.spiffe_id,
            agency=self._ori,
            details={"partner": peer.ori, "detail": detail},
        )

    async def _alarm(self, peer: Peer, held: bytes, offered: bytes, detail: str) -> None:
        """Keep both checkpoints as evidence, audit the alarm, and tell the partner."""
        await asyncio.to_thread(self._keep_alarm, peer, held, offered, detail)
        log.error("partner %s's audit log is not consistent with what we witnessed", peer.ori)
        try:
            await self._client.report_inconsistency(peer, held, offered, detail)
        except (UnavailableError, PartnerRefusedError) as error:
            log.warning("alarm not delivered to %s: %s", peer.ori, error.diagnostics())


class WitnessedLog:
    """What we answer partners that witness our audit log."""

    def __init__(
        self,
        *,
        ori: str,
        audit: AuditLog,
        checkpoints: CheckpointStore,
        ledger: ExchangeLedger,
    ) -> None:
        """Answer for agency `ori`'s log `audit`, its `checkpoints` and exchange `ledger`."""
        self._ori = ori
        self._audit = audit
        self._checkpoints = checkpoints
        self._ledger = ledger

    def checkpoint(self) -> bytes:
        """Our log's head, as a signed checkpoint."""
        return self._checkpoints.sign(self._audit.head())

    def consistency(self, old_sizes: Sequence[int], new_size: int) -> list[tuple[bytes, ...]]:
        """The consistency paths from our log at each of `old_sizes` to it at `new_size`.

        Raises:
            ValidationError: There are none or more than `MAX_BATCH` old sizes, or one is
                not ``0 <= old_size <= new_size <= our size``.
        """
        if not 1 <= len(old_sizes) <= MAX_BATCH:
            raise ValidationError("old_sizes", f"ask for 1 to {MAX_BATCH} proofs at once")
        return [self._audit.consistency_proof(old, new_size).hashes for old in old_sizes]

    def inclusion(self, peer: Peer, exchange_id: str) -> InclusionAnswer:
        """Prove our audit event of an exchange we answered for `peer` is in our log.

        Raises:
            NotFoundError: We answered `peer` no exchange of that id.
        """
        found = self._ledger.answered(peer.ori, exchange_id)
        if found is None:
            raise NotFoundError(f"we answered you no exchange {exchange_id!r}")
        receipt = parse_payload(exchange_pb2.Receipt, Envelope.from_bytes(found.receipt).payload)
        head = self._audit.head()
        note = self._checkpoints.sign(head)
        proof = self._audit.inclusion_proof(receipt.audit_seq, head.size)
        [event] = self._audit.events(after_seq=receipt.audit_seq - 1, limit=1)
        return InclusionAnswer(receipt.audit_seq, leaf_bytes(event), proof.hashes, note)

    def cosigned(self, peer: Peer, note: bytes) -> None:
        """Keep `peer`'s cosignature on a checkpoint of ours, and audit it.

        Raises:
            ValidationError: `note` is not a checkpoint we signed, cosigned by `peer`.
        """
        try:
            self._checkpoints.accept_cosignature(
                check_note_size(note, "checkpoint"),
                witness_ori=peer.ori,
                witness=witness_verifier(peer),
            )
        except CheckpointError as error:
            raise ValidationError("checkpoint", error.diagnostics()) from error
        self._audit.append(
            "audit.cosigned", actor=peer.spiffe_id, agency=peer.ori, details={"witness": peer.ori}
        )

    def reported(self, peer: Peer, held: bytes, offered: bytes, detail: str) -> None:
        """Keep `peer`'s report that two checkpoints of ours disagree, and raise the alarm.

        Raises:
            ValidationError: Either is not a checkpoint we signed.
        """
        try:
            self._checkpoints.record_report(
                reporter_ori=peer.ori,
                held=check_note_size(held, "held"),
                offered=check_note_size(offered, "offered"),
                detail=detail,
            )
        except CheckpointError as error:
            raise ValidationError("held", error.diagnostics()) from error
        self._audit.append(
            "audit.inconsistency_reported",
            actor=peer.spiffe_id,
            agency=peer.ori,
            details={"reporter": peer.ori, "detail": detail[:500]},
        )
        log.error("partner %s reports two checkpoints of our audit log that disagree", peer.ori)


def verify_inclusion_answer(
    answer: InclusionAnswer, responder: Peer, exchange_id: str
) -> Checkpoint:
    """Check a partner's inclusion proof for our exchange, with nothing but the answer.

    The event must be the partner's audit event naming `exchange_id`, its leaf must
    lead by the proof to the root of a checkpoint the partner signed.

    Raises:
        CheckpointError: The checkpoint is not the partner's.
        MerkleError: The proof does not lead from the event to that root.
        ValidationError: The event does not name the exchange.
    """
    origin = log_origin(responder.federation, responder.ori)
    checkpoint, _ = open_checkpoint(answer.checkpoint, origin, NoteVerifier(origin, responder.key))
    verify_inclusion(
        leaf_hash(answer.event),
        answer.audit_seq - 1,
        checkpoint.size,
        answer.hashes,
        checkpoint.root,
    )
    details = _event_details(answer.event)
    if details.get("exchange_id") != exchange_id:
        raise ValidationError("event", f"the proved event does not name exchange {exchange_id}")
    return checkpoint


def _event_details(event: bytes) -> dict[str, object]:
    try:
        parsed = json.loads(event)
    except ValueError as error:
        raise ValidationError("event", "the proved event is not JSON") from error
    details = parsed.get("details") if isinstance(parsed, dict) else None
    return details if isinstance(details, dict) else {}
