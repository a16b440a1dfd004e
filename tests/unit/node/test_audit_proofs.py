"""Proofs from the audit log on SQLite and PostgreSQL: real logs prove, altered ones are caught."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from node.audit import AuditLog, AuditLogError, leaf_bytes
from node.errors import ValidationError
from node.merkle import EMPTY_ROOT, MerkleError, leaf_hash, verify_consistency
from node.store import create_engine, upgrade

NOW = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
ORI = "CA0194200"
USER = "spiffe://test.alpr/agency/CA0194200/user/jdoe"
EVENTS = 11


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def log(engine: Engine) -> AuditLog:
    log = AuditLog(engine, clock=fixed_clock)
    for number in range(EVENTS):
        log.append(
            "query",
            actor=USER,
            agency=ORI,
            purpose="investigation",
            case_number=f"24-{number:05d}",
            details={"plate": f"7ABC{number:03d}"},
        )
    return log


def tamper(engine: Engine, statement: str, **values: object) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), values)


class TestInclusionProof:
    def test_succeeds_for_every_event_at_every_size(self, log: AuditLog) -> None:
        events = log.events()
        for size in range(1, EVENTS + 1):
            root = log.recompute_root(size)
            for event in events[:size]:
                proof = log.inclusion_proof(event.seq, size)
                assert (proof.seq, proof.leaf_index, proof.tree_size) == (
                    event.seq,
                    event.seq - 1,
                    size,
                )
                assert proof.leaf_hash == leaf_hash(leaf_bytes(event)) == event.leaf_hash
                assert proof.root == root
                proof.verify()
                proof.verify(root)

    def test_succeeds_in_the_head_by_default(self, log: AuditLog) -> None:
        proof = log.inclusion_proof(4)
        assert (proof.tree_size, proof.root) == (EVENTS, log.head().root)
        proof.verify(log.head().root)

    def test_fails_against_another_root(self, log: AuditLog) -> None:
        proof = log.inclusion_proof(4)
        with pytest.raises(MerkleError, match="leads to root"):
            proof.verify(log.recompute_root(EVENTS - 1))

    @pytest.mark.parametrize(
        ("seq", "size", "field"),
        [(0, None, "seq"), (EVENTS + 1, None, "seq"), (5, 4, "seq"), (1, EVENTS + 1, "size")],
    )
    def test_fails_outside_the_log(
        self, log: AuditLog, seq: int, size: int | None, field: str
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            log.inclusion_proof(seq, size)
        assert raised.value.field == field

    def test_fails_in_an_empty_log(self, engine: Engine) -> None:
        with pytest.raises(ValidationError, match="size: must be 1 to 0"):
            AuditLog(engine, clock=fixed_clock).inclusion_proof(1)

    def test_aud5_fails_when_an_event_is_missing(self, log: AuditLog, engine: Engine) -> None:
        tamper(engine, "DELETE FROM audit_event WHERE seq = 6")
        log.inclusion_proof(3, 5).verify()
        with pytest.raises(AuditLogError, match="event 6 is missing") as raised:
            log.inclusion_proof(3)
        assert raised.value.seq == 6

    def test_aud5_fails_when_a_leaf_hash_is_rewritten(self, log: AuditLog, engine: Engine) -> None:
        tamper(engine, "UPDATE audit_event SET leaf_hash = :h WHERE seq = 3", h=bytes(32))
        with pytest.raises(AuditLogError, match="leaf hashes were rewritten"):
            log.inclusion_proof(1)


class TestConsistencyProof:
    def test_succeeds_between_every_pair_of_sizes(self, log: AuditLog) -> None:
        for new_size in range(EVENTS + 1):
            for old_size in range(new_size + 1):
                proof = log.consistency_proof(old_size, new_size)
                assert (proof.old_size, proof.new_size) == (old_size, new_size)
                assert proof.old_root == log.recompute_root(old_size)
                assert proof.new_root == log.recompute_root(new_size)
                verify_consistency(old_size, new_size, proof.old_root, proof.new_root, proof.hashes)

    def test_succeeds_from_a_head_a_partner_held_to_the_head_now(self, engine: Engine) -> None:
        log = AuditLog(engine, clock=fixed_clock)
        held = [log.append("login", actor=USER, agency=ORI) for _ in range(5)][-1]
        for _ in range(7):
            log.append("logout", actor=USER, agency=ORI)
        proof = log.consistency_proof(held.tree_size)
        assert (proof.new_size, proof.new_root) == (12, log.head().root)
        verify_consistency(held.tree_size, 12, held.root, log.head().root, proof.hashes)

    def test_succeeds_from_the_empty_tree(self, log: AuditLog) -> None:
        proof = log.consistency_proof(0)
        assert (proof.old_root, proof.hashes) == (EMPTY_ROOT, ())

    @pytest.mark.parametrize(
        ("old_size", "new_size", "field"),
        [
            (-1, None, "old_size"),
            (6, 5, "old_size"),
            (0, EVENTS + 1, "new_size"),
            (0, -1, "new_size"),
        ],
    )
    def test_fails_outside_the_log(
        self, log: AuditLog, old_size: int, new_size: int | None, field: str
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            log.consistency_proof(old_size, new_size)
        assert raised.value.field == field

    def test_aud5_fails_when_an_earlier_head_was_rewritten(self, log: AuditLog) -> None:
        proof = log.consistency_proof(5)
        forged_old_root = log.recompute_root(4)
        with pytest.raises(MerkleError):
            verify_consistency(5, EVENTS, forged_old_root, proof.new_root, proof.hashes)


class TestVerify:
    def test_aud5_fails_naming_an_altered_event_whose_proof_still_holds(
        self, log: AuditLog, engine: Engine
    ) -> None:
        tamper(engine, "UPDATE audit_event SET case_number = '24-99999' WHERE seq = 4")
        with pytest.raises(AuditLogError, match="event 4 was altered") as raised:
            log.verify()
        assert raised.value.seq == 4
        # The proof is of the stored leaf hash, which the altered fields no longer give.
        proof = log.inclusion_proof(4)
        proof.verify()
        [event] = log.events(after_seq=3, limit=1)
        assert leaf_hash(leaf_bytes(event)) != proof.leaf_hash
