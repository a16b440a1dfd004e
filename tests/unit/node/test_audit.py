"""The append-only audit log on SQLite and PostgreSQL: appends, heads, tampering found."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from federation.terms import MAX_TEXT
from node.audit import AuditLog, AuditLogError, TreeHead, leaf_bytes
from node.errors import ValidationError
from node.merkle import EMPTY_ROOT, leaf_hash, root_from_leaves
from node.profile import builtin_profiles, load_profile
from node.store import create_engine, upgrade

NOW = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
ORI = "CA0194200"
USER = "spiffe://test.alpr/agency/CA0194200/user/jdoe"


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture
def log(engine: Engine) -> AuditLog:
    return AuditLog(engine, clock=fixed_clock)


def append_queries(log: AuditLog, count: int) -> None:
    for number in range(count):
        log.append(
            "query",
            actor=USER,
            agency=ORI,
            peer_ip="10.0.0.7",
            purpose="investigation",
            case_number=f"24-{number:05d}",
            details={"plate": f"7ABC{number:03d}"},
        )


def tamper(engine: Engine, statement: str, **values: object) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), values)


class TestAppend:
    def test_succeeds_numbering_from_one_with_the_head_after_each(self, log: AuditLog) -> None:
        assert log.head() == TreeHead(size=0, root=EMPTY_ROOT)
        records = [log.append("job.run", actor="system", agency=ORI) for _ in range(5)]
        leaves = [record.leaf_hash for record in records]
        for size, record in enumerate(records, start=1):
            assert (record.seq, record.tree_size) == (size, size)
            assert record.root == root_from_leaves(leaves[:size])
        assert log.head() == TreeHead(size=5, root=records[-1].root)

    def test_aud1_succeeds_storing_who_when_where_why_and_what(self, log: AuditLog) -> None:
        record = log.append(
            "query",
            actor=USER,
            agency=ORI,
            peer_ip="2001:db8::7",
            purpose="investigation",
            case_number="24-00042",
            details={"plate": "7ABC123", "partners": ["CA0190000"]},
        )
        [event] = log.events()
        assert (event.seq, event.recorded_at, event.leaf_hash) == (1, NOW, record.leaf_hash)
        assert (event.kind, event.actor, event.agency) == ("query", USER, ORI)
        assert (event.peer_ip, event.purpose, event.case_number) == (
            "2001:db8::7",
            "investigation",
            "24-00042",
        )
        assert event.details == '{"partners":["CA0190000"],"plate":"7ABC123"}'

    def test_aud1_succeeds_storing_the_longest_purpose_a_profile_or_agreement_names(
        self, log: AuditLog
    ) -> None:
        longest = max(
            (
                purpose
                for path in builtin_profiles().values()
                for purpose in load_profile(path).access.purposes
            ),
            key=len,
        )
        assert len(longest) > 64  # the bound this once had
        log.append("query", actor=USER, agency=ORI, purpose=longest)
        log.append("query", actor=USER, agency=ORI, purpose="p" * MAX_TEXT)
        assert [event.purpose for event in log.events()] == [longest, "p" * MAX_TEXT]

    def test_succeeds_hashing_the_documented_canonical_bytes(self, log: AuditLog) -> None:
        record = log.append("login", actor=USER, agency=ORI, details={"b": 1, "a": "é"})
        expected = (
            b'{"actor":"spiffe://test.alpr/agency/CA0194200/user/jdoe","agency":"CA0194200",'
            b'"case_number":"","details":{"a":"\\u00e9","b":1},"kind":"login","peer_ip":"",'
            b'"purpose":"","recorded_at":"2026-11-25T12:00:00.123456Z","seq":1}'
        )
        [event] = log.events()
        assert leaf_bytes(event) == expected
        assert record.leaf_hash == leaf_hash(expected)

    def test_succeeds_recording_a_zoned_clock_in_utc(self, engine: Engine) -> None:
        pacific = NOW.astimezone(timezone(timedelta(hours=-8)))
        log = AuditLog(engine, clock=lambda: pacific)
        assert log.append("login", actor=USER, agency=ORI).recorded_at == NOW
        [event] = log.events()
        assert event.recorded_at == NOW
        assert event.recorded_at.tzinfo == UTC
        log.verify()

    @pytest.mark.parametrize(
        ("field", "overrides"),
        [
            ("kind", {"kind": ""}),
            ("kind", {"kind": "k" * 65}),
            ("actor", {"actor": ""}),
            ("agency", {"agency": "lapd"}),
            ("peer_ip", {"peer_ip": "1" * 65}),
            ("purpose", {"purpose": "p" * (MAX_TEXT + 1)}),
            ("case_number", {"case_number": "9" * 65}),
            ("details", {"details": {"when": NOW}}),
            ("details", {"details": {"score": float("nan")}}),
        ],
    )
    def test_fails_for_a_bad_field_and_appends_nothing(
        self, log: AuditLog, field: str, overrides: dict[str, object]
    ) -> None:
        arguments: dict[str, object] = {"kind": "login", "actor": USER, "agency": ORI}
        arguments |= overrides
        with pytest.raises(ValidationError) as raised:
            log.append(**arguments)  # type: ignore[arg-type]
        assert raised.value.field == field
        assert log.head().size == 0

    def test_fails_for_a_clock_without_a_time_zone(self, engine: Engine) -> None:
        log = AuditLog(engine, clock=lambda: NOW.replace(tzinfo=None))
        with pytest.raises(ValidationError) as raised:
            log.append("login", actor=USER, agency=ORI)
        assert raised.value.field == "clock"


class TestConcurrentAppends:
    def test_succeeds_with_no_gap_and_no_duplicate(self, database_url: str, engine: Engine) -> None:
        """Writers on engines of their own, as separate gateway processes would be."""
        writers, each = 4, 25
        start = threading.Barrier(writers)

        def write(_writer: int) -> list[int]:
            own = create_engine(database_url)
            try:
                log = AuditLog(own, clock=fixed_clock)
                start.wait()
                return [log.append("query", actor=USER, agency=ORI).seq for _ in range(each)]
            finally:
                own.dispose()

        with ThreadPoolExecutor(writers) as pool:
            seqs = [seq for batch in pool.map(write, range(writers)) for seq in batch]
        assert sorted(seqs) == list(range(1, writers * each + 1))
        log = AuditLog(engine, clock=fixed_clock)
        assert [event.seq for event in log.events()] == sorted(seqs)
        assert log.head().size == writers * each
        log.verify()


class TestEvents:
    def test_succeeds_paging_in_order(self, log: AuditLog) -> None:
        append_queries(log, 7)
        assert [event.seq for event in log.events(after_seq=2, limit=3)] == [3, 4, 5]
        assert [event.seq for event in log.events(after_seq=5)] == [6, 7]
        assert log.events(after_seq=7) == []

    @pytest.mark.parametrize(
        ("field", "after_seq", "limit"),
        [("after_seq", -1, 10), ("limit", 0, 0), ("limit", 0, 1001)],
    )
    def test_fails_for_a_bad_page(
        self, log: AuditLog, field: str, after_seq: int, limit: int
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            log.events(after_seq=after_seq, limit=limit)
        assert raised.value.field == field


class TestRecomputeRoot:
    def test_succeeds_matching_every_past_head(self, log: AuditLog) -> None:
        assert log.recompute_root() == EMPTY_ROOT
        roots = [log.append("login", actor=USER, agency=ORI).root for _ in range(6)]
        assert log.recompute_root() == roots[-1]
        for size, root in enumerate(roots, start=1):
            assert log.recompute_root(size) == root
        assert log.recompute_root(0) == EMPTY_ROOT
        assert log.roots_at([6, 0, 3, 3]) == {0: EMPTY_ROOT, 3: roots[2], 6: roots[5]}

    def test_fails_beyond_the_log(self, log: AuditLog) -> None:
        append_queries(log, 2)
        with pytest.raises(AuditLogError, match="event 3 is missing") as raised:
            log.recompute_root(3)
        assert raised.value.seq == 3

    def test_fails_for_a_negative_size(self, log: AuditLog) -> None:
        with pytest.raises(ValidationError):
            log.recompute_root(-1)


class TestVerify:
    @pytest.mark.parametrize("count", [0, 1, 5])
    def test_succeeds_on_an_untouched_log(self, log: AuditLog, count: int) -> None:
        append_queries(log, count)
        log.verify()

    @pytest.mark.parametrize(
        ("column", "value"),
        [
            ("purpose", "commercial"),
            ("actor", "spiffe://test.alpr/agency/CA0194200/user/mallory"),
            ("details", '{"plate":"7ABC999"}'),
            ("details", "not json"),
            ("recorded_at", datetime(2026, 11, 24, tzinfo=UTC)),
            ("kind", "login"),
        ],
    )
    def test_aud5_fails_naming_an_altered_event(
        self, log: AuditLog, engine: Engine, column: str, value: object
    ) -> None:
        append_queries(log, 5)
        root = log.head().root
        tamper(engine, f"UPDATE audit_event SET {column} = :value WHERE seq = 3", value=value)  # noqa: S608 (a column from the table above)
        with pytest.raises(AuditLogError, match="event 3 was altered") as raised:
            log.verify()
        assert raised.value.seq == 3
        if column != "details" or value != "not json":
            assert log.recompute_root() != root

    @pytest.mark.parametrize("seq", [1, 3, 5])
    def test_aud5_fails_naming_a_deleted_event(
        self, log: AuditLog, engine: Engine, seq: int
    ) -> None:
        append_queries(log, 5)
        tamper(engine, "DELETE FROM audit_event WHERE seq = :seq", seq=seq)
        with pytest.raises(AuditLogError, match=f"event {seq} is missing") as raised:
            log.verify()
        assert raised.value.seq == seq

    def test_aud5_fails_naming_reordered_events(self, log: AuditLog, engine: Engine) -> None:
        append_queries(log, 5)
        for old, new in [(2, -1), (3, 2), (-1, 3)]:
            tamper(engine, "UPDATE audit_event SET seq = :new WHERE seq = :old", old=old, new=new)
        with pytest.raises(AuditLogError, match="event 2 was altered") as raised:
            log.verify()
        assert raised.value.seq == 2

    def test_aud5_fails_when_an_event_is_rewritten_with_its_leaf_hash(
        self, log: AuditLog, engine: Engine
    ) -> None:
        append_queries(log, 5)
        event = log.events(after_seq=3, limit=1)[0]
        event.purpose = "commercial"
        tamper(
            engine,
            "UPDATE audit_event SET purpose = :purpose, leaf_hash = :leaf WHERE seq = 4",
            purpose=event.purpose,
            leaf=leaf_hash(leaf_bytes(event)),
        )
        with pytest.raises(AuditLogError, match="head's root") as raised:
            log.verify()
        assert raised.value.seq is None

    def test_aud5_fails_when_the_head_is_cut_short(self, log: AuditLog, engine: Engine) -> None:
        append_queries(log, 5)
        tamper(engine, "UPDATE audit_head SET size = 4")
        with pytest.raises(AuditLogError, match="frontier covers 5"):
            log.verify()


class TestRetention:
    def test_aud2_offers_no_way_to_change_or_remove_an_event(self) -> None:
        public = {name for name in dir(AuditLog) if not name.startswith("_")}
        assert public == {
            "append",
            "consistency_proof",
            "events",
            "head",
            "inclusion_proof",
            "recompute_root",
            "roots_at",
            "verify",
        }

    def test_aud2_events_survive_a_restart(self, database_url: str, log: AuditLog) -> None:
        append_queries(log, 3)
        before = [(event.seq, event.leaf_hash) for event in log.events()]
        reopened = create_engine(database_url)
        try:
            upgrade(reopened)
            again = AuditLog(reopened, clock=fixed_clock)
            assert [(event.seq, event.leaf_hash) for event in again.events()] == before
            again.verify()
        finally:
            reopened.dispose()
