"""The checkpoints a node signs of its own log, on SQLite and PostgreSQL (AUD-5, AUD-7)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from node.audit import AuditLog, AuditLogError
from node.audit_checkpoints import CheckpointStore, signed_checkpoint
from node.checkpoint import (
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    add_signatures,
    log_origin,
    open_checkpoint,
    witness_name,
)
from node.ed25519 import Ed25519Signer
from tests.support.clock import ManualClock
from tests.support.forgery import truncate_log
from tests.support.pki import FEDERATION, LAPD, LASD

ORIGIN = log_origin(FEDERATION, LAPD)
SIGNER = Ed25519Signer.generate()


def grow(log: AuditLog, count: int) -> None:
    for n in range(count):
        log.append("login", actor=f"spiffe://{FEDERATION}/agency/{LAPD}/user/u{n}", agency=LAPD)


@pytest.fixture
def log(engine: Engine, clock: ManualClock) -> AuditLog:
    return AuditLog(engine, clock=clock)


@pytest.fixture
def store(engine: Engine, clock: ManualClock) -> CheckpointStore:
    return CheckpointStore(engine, signer=SIGNER, origin=ORIGIN, clock=clock)


class TestCheckpointStore:
    def test_succeeds_signing_keeping_and_verifying(
        self, log: AuditLog, store: CheckpointStore
    ) -> None:
        assert store.latest() is None
        grow(log, 3)
        first = store.sign(log.head())
        assert store.sign(log.head()) == first  # the same head is not signed twice
        grow(log, 4)
        second = store.sign(log.head())
        assert store.latest() == second
        checkpoint, _ = open_checkpoint(second, ORIGIN, NoteVerifier(ORIGIN, SIGNER.public_key))
        assert (checkpoint.size, checkpoint.root) == (7, log.head().root)
        assert store.verify(log) == 2

    def test_aud5_fails_when_an_event_under_a_checkpoint_was_rewritten(
        self, log: AuditLog, store: CheckpointStore, engine: Engine
    ) -> None:
        grow(log, 5)
        store.sign(log.head())
        with engine.begin() as connection:
            connection.execute(text("UPDATE audit_event SET actor = 'x' WHERE seq = 2"))
        with pytest.raises(AuditLogError, match="rewritten after it was signed"):
            store.verify(log)

    def test_aud5_fails_when_the_log_was_truncated_below_a_checkpoint(
        self, log: AuditLog, store: CheckpointStore, engine: Engine
    ) -> None:
        grow(log, 5)
        store.sign(log.head())
        truncate_log(engine, 3)
        log.verify()  # the shortened log is consistent with itself...
        with pytest.raises(AuditLogError, match="truncated"):
            store.verify(log)  # ...but not with what the node signed

    def test_fails_on_a_checkpoint_signed_by_another_key(
        self, log: AuditLog, engine: Engine, clock: ManualClock
    ) -> None:
        grow(log, 2)
        CheckpointStore(engine, signer=Ed25519Signer.generate(), origin=ORIGIN, clock=clock).sign(
            log.head()
        )
        with pytest.raises(AuditLogError, match="does not verify"):
            CheckpointStore(engine, signer=SIGNER, origin=ORIGIN, clock=clock).verify(log)


WITNESS = Ed25519Signer.generate()
WITNESS_KEY = NoteVerifier(witness_name(FEDERATION, LASD), WITNESS.public_key)


def cosign(note: bytes, signer: Ed25519Signer = WITNESS) -> bytes:
    return add_signatures(note, [NoteSigner(witness_name(FEDERATION, LASD), signer)])


class TestCosignatures:
    def test_aud7_succeeds_keeping_a_partners_cosignature_that_verify_checks(
        self, log: AuditLog, store: CheckpointStore
    ) -> None:
        grow(log, 4)
        note = store.sign(log.head())
        store.accept_cosignature(cosign(note), witness_ori=LASD, witness=WITNESS_KEY)
        [kept] = store.cosignatures()
        assert (kept.witness_ori, kept.size, kept.root) == (LASD, 4, log.head().root)
        assert store.verify(log, {LASD: WITNESS_KEY}) == 2  # the checkpoint and its cosignature

    def test_aud7_fails_for_a_head_we_never_signed(
        self, log: AuditLog, store: CheckpointStore, engine: Engine, clock: ManualClock
    ) -> None:
        grow(log, 4)
        store.sign(log.head())
        grow(log, 1)
        # Signed with our key, but never by this node's store: not a head it vouched for.
        unsigned = signed_checkpoint(SIGNER, ORIGIN, log.head())
        with pytest.raises(CheckpointError, match="no checkpoint at size 5"):
            store.accept_cosignature(cosign(unsigned), witness_ori=LASD, witness=WITNESS_KEY)

    def test_fails_for_a_note_the_witness_did_not_cosign(
        self, log: AuditLog, store: CheckpointStore
    ) -> None:
        grow(log, 2)
        note = store.sign(log.head())
        with pytest.raises(CheckpointError):
            store.accept_cosignature(note, witness_ori=LASD, witness=WITNESS_KEY)
        other = cosign(note, Ed25519Signer.generate())
        with pytest.raises(CheckpointError):
            store.accept_cosignature(other, witness_ori=LASD, witness=WITNESS_KEY)
        assert store.cosignatures() == []

    def test_aud7_verify_fails_on_an_altered_cosignature(
        self, log: AuditLog, store: CheckpointStore, engine: Engine
    ) -> None:
        grow(log, 3)
        note = store.sign(log.head())
        store.accept_cosignature(cosign(note), witness_ori=LASD, witness=WITNESS_KEY)
        forged = cosign(note, Ed25519Signer.generate())
        with engine.begin() as connection:
            connection.execute(text("UPDATE audit_cosignature SET note = :n"), {"n": forged})
        with pytest.raises(AuditLogError, match="cosignature 1 does not verify"):
            store.verify(log, {LASD: WITNESS_KEY})

    def test_aud7_keeps_a_partners_report_of_two_checkpoints_that_disagree(
        self, log: AuditLog, store: CheckpointStore, engine: Engine
    ) -> None:
        grow(log, 3)
        held = store.sign(log.head())
        grow(log, 1)
        offered = store.sign(log.head())
        store.record_report(reporter_ori=LASD, held=held, offered=offered, detail="no proof")
        with engine.connect() as connection:
            row = connection.execute(text("SELECT partner_ori, our_log FROM log_alarm")).one()
        assert (row[0], bool(row[1])) == (LASD, True)
        not_ours = signed_checkpoint(WITNESS, ORIGIN, log.head())
        with pytest.raises(CheckpointError):
            store.record_report(reporter_ori=LASD, held=held, offered=not_ours, detail="")
