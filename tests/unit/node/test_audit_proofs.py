"""Proofs from the audit log on SQLite and PostgreSQL: real logs prove, altered ones are caught."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from node.audit import AuditLog, AuditLogError, leaf_bytes
from node.errors import ValidationError
from node.merkle import (
    EMPTY_ROOT,
    MerkleError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaves,
    verify_consistency,
)
from node.store import create_engine, upgrade
from node.store.migrate import MIGRATIONS

NOW = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
ORI = "CA0194200"
USER = "spiffe://test.alpr/agency/CA0194200/user/jdoe"
EVENTS = 11
LARGEST = 40
MIGRATION_0006 = MIGRATIONS / "versions" / "0006_audit_subtrees.py"


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def append_queries(log: AuditLog, count: int) -> None:
    for number in range(count):
        log.append(
            "query",
            actor=USER,
            agency=ORI,
            purpose="investigation",
            case_number=f"24-{number:05d}",
            details={"plate": f"7ABC{number:03d}"},
        )


@pytest.fixture
def log(engine: Engine) -> AuditLog:
    log = AuditLog(engine, clock=fixed_clock)
    append_queries(log, EVENTS)
    return log


def backfill(engine: Engine) -> None:
    """Run migration 0006's backfill, as upgrading a log that had no subtrees does."""
    spec = importlib.util.spec_from_file_location("migration_0006", MIGRATION_0006)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with engine.begin() as connection:
        migration.backfill(connection)


def subtree_rows(engine: Engine) -> list[tuple[int, int, bytes]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text('SELECT level, "index", hash FROM audit_subtree ORDER BY level, "index"')
        )
        return [(level, index, bytes(subtree)) for level, index, subtree in rows]


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

    def test_aud5_fails_when_an_event_on_the_path_is_missing(
        self, log: AuditLog, engine: Engine
    ) -> None:
        tamper(engine, "DELETE FROM audit_event WHERE seq = 6")
        log.inclusion_proof(3, 5).verify()
        # A proof reads only the hashes on its path: event 6 is leaf 5's sibling.
        log.inclusion_proof(3).verify()
        with pytest.raises(AuditLogError, match="event 6 is missing") as raised:
            log.inclusion_proof(5)
        assert raised.value.seq == 6

    @pytest.mark.parametrize("seq", [3, 4])
    def test_aud5_fails_when_a_leaf_hash_on_the_path_is_rewritten(
        self, log: AuditLog, engine: Engine, seq: int
    ) -> None:
        tamper(engine, "UPDATE audit_event SET leaf_hash = :h WHERE seq = 3", h=bytes(32))
        with pytest.raises(AuditLogError, match="leaf hashes were rewritten"):
            log.inclusion_proof(seq)

    def test_aud5_fails_when_a_stored_subtree_is_rewritten(
        self, log: AuditLog, engine: Engine
    ) -> None:
        tamper(
            engine,
            'UPDATE audit_subtree SET hash = :h WHERE level = 3 AND "index" = 0',
            h=bytes(32),
        )
        with pytest.raises(AuditLogError, match="leaf hashes were rewritten"):
            log.inclusion_proof(11)

    def test_aud5_fails_when_a_stored_subtree_is_missing(
        self, log: AuditLog, engine: Engine
    ) -> None:
        tamper(engine, 'DELETE FROM audit_subtree WHERE level = 2 AND "index" = 1')
        with pytest.raises(AuditLogError, match="subtree of events 5 to 8 is missing") as raised:
            log.inclusion_proof(1)
        assert raised.value.seq == 5


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


class TestStoredSubtrees:
    def test_succeeds_giving_the_reference_proofs_at_every_size(self, engine: Engine) -> None:
        log = AuditLog(engine, clock=fixed_clock)
        append_queries(log, LARGEST)
        leaves = [event.leaf_hash for event in log.events()]
        for size in range(1, LARGEST + 1):
            for seq in range(1, size + 1):
                proof = log.inclusion_proof(seq, size)
                assert proof.hashes == tuple(inclusion_proof(leaves, seq - 1, size))
                assert proof.root == root_from_leaves(leaves[:size])
            for old_size in range(size + 1):
                consistency = log.consistency_proof(old_size, size)
                assert consistency.hashes == tuple(consistency_proof(leaves, old_size, size))
                assert consistency.old_root == root_from_leaves(leaves[:old_size])

    def test_succeeds_storing_each_perfect_subtree_once(self, engine: Engine) -> None:
        log = AuditLog(engine, clock=fixed_clock)
        append_queries(log, LARGEST)
        leaves = [event.leaf_hash for event in log.events()]
        expected = [
            (level, index, root_from_leaves(leaves[index << level : (index + 1) << level]))
            for level in range(1, LARGEST.bit_length())
            for index in range(LARGEST >> level)
        ]
        assert subtree_rows(engine) == expected

    def test_succeeds_backfilling_what_appends_stored(self, engine: Engine) -> None:
        log = AuditLog(engine, clock=fixed_clock)
        append_queries(log, LARGEST - 1)
        appended = subtree_rows(engine)
        tamper(engine, "DELETE FROM audit_subtree")
        backfill(engine)
        assert subtree_rows(engine) == appended
        proof = log.consistency_proof(5)
        verify_consistency(5, LARGEST - 1, proof.old_root, log.head().root, proof.hashes)

    def test_succeeds_backfilling_up_to_the_first_missing_event(
        self, log: AuditLog, engine: Engine
    ) -> None:
        tamper(engine, "DELETE FROM audit_subtree")
        tamper(engine, "DELETE FROM audit_event WHERE seq = 6")
        backfill(engine)
        assert [(level, index) for level, index, _hash in subtree_rows(engine)] == [
            (1, 0),
            (1, 1),
            (2, 0),
        ]
