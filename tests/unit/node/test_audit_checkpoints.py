"""The checkpoints a node signs of its own log, on SQLite and PostgreSQL (AUD-5, AUD-7)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from node.audit import AuditLog, AuditLogError
from node.audit_checkpoints import CheckpointStore
from node.checkpoint import NoteVerifier, log_origin, open_checkpoint
from node.ed25519 import Ed25519Signer
from node.merkle import CompactRange
from tests.support.clock import ManualClock
from tests.support.pki import FEDERATION, LAPD

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
        # Truncate to 3 events the way a careful forger would: events, subtrees and head.
        with engine.begin() as connection:
            kept = connection.execute(
                text("SELECT leaf_hash FROM audit_event WHERE seq <= 3 ORDER BY seq")
            ).scalars()
            frontier = CompactRange()
            for leaf in kept:
                frontier.append(bytes(leaf))
            connection.execute(text("DELETE FROM audit_event WHERE seq > 3"))
            connection.execute(text("DELETE FROM audit_subtree"))
            connection.execute(
                text("UPDATE audit_head SET size = 3, frontier = :f"), {"f": frontier.to_bytes()}
            )
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
