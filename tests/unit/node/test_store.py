"""The store on SQLite and PostgreSQL: migrations from empty, models that agree, round trips."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from node.ed25519 import DataKey
from node.errors import ValidationError
from node.hotlists.codec import encode_fields, frame_fields
from node.hotlists.entry import HotlistEntry, ListType
from node.hotlists.partner_store import PartnerHotlists
from node.hotlists.store import HotlistStore
from node.owner import OwnerMismatchError, check_owner, record_owner
from node.store import create_engine, upgrade
from node.store.migrate import current_revision, downgrade, head, schema_differences
from node.store.models import NodeIdentity, utc
from node.store.sharing import HeldQueryRecord
from tests.support.in_force import agreement_in_force

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEY = bytes(range(32))


class TestMigrations:
    def test_succeeds_from_empty_to_head_matching_the_models(self, database_url: str) -> None:
        engine = create_engine(database_url)
        assert current_revision(engine) is None
        assert upgrade(engine) == head()
        assert current_revision(engine) == head()
        assert schema_differences(engine) == []
        assert upgrade(engine) == head()  # a second start changes nothing
        engine.dispose()

    def test_succeeds_giving_a_query_held_before_0018_its_held_moment_as_window(
        self, database_url: str
    ) -> None:
        engine = create_engine(database_url)
        upgrade(engine, to="0017")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO held_query (exchange_id, partner_ori, reference, requesting_user,"
                    " purpose, case_number, plate, held_at, outcome) VALUES ('x-1', 'CA0190000',"
                    " 'ref-1', 'detective', 'Criminal investigations', '26-1', '7ABC123', :at, '')"
                ),
                {"at": NOW},
            )
        upgrade(engine)
        with Session(engine) as session:
            held = session.get(HeldQueryRecord, "x-1")
        assert held is not None
        assert (utc(held.since), utc(held.until)) == (NOW, NOW)
        engine.dispose()

    def test_succeeds_giving_hotlist_chunks_of_0019_their_version_ids_and_plates(
        self, database_url: str
    ) -> None:
        """A full snapshot and a delta read the same from chunks migrated as from new ones."""
        engine = create_engine(database_url)
        upgrade(engine, to="0019")
        key = DataKey.generate()
        entry = HotlistEntry(plate="7ABC123", state="CA", list_type=ListType.STOLEN_VEHICLE)
        fields = key.encrypt(frame_fields([encode_fields(entry, "stolen")] * 2))
        # Chunk 1 added e1 and e2 at version 1; chunk 2 added e3 at version 2; e2 then
        # ended at version 3 and e3 at version 4.
        entries = [("e1", 1, 0, 1, None), ("e2", 1, 1, 3, NOW), ("e3", 2, 0, 4, NOW)]
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO hotlist (id, name, description, created_at)"
                     " VALUES (1, 'stolen', '', :at)"), {"at": NOW}
            )  # fmt: skip
            for chunk_id in (1, 2):
                connection.execute(
                    text("INSERT INTO hotlist_chunk (id, fields) VALUES (:id, :fields)"),
                    {"id": chunk_id, "fields": fields},
                )
            for entry_id, chunk_id, slot, version, ended_at in entries:
                connection.execute(
                    text("INSERT INTO hotlist_entry (id, hotlist_id, plate, is_partial, chunk_id,"
                         " slot, version, created_at, ended_at, ended_how) VALUES (:id, 1,"
                         " '7ABC123', false, :chunk, :slot, :version, :at, :ended, '')"),
                    {"id": entry_id, "chunk": chunk_id, "slot": slot, "version": version,
                     "at": NOW, "ended": ended_at},
                )  # fmt: skip
            connection.execute(text("INSERT INTO hotlist_version (id, version) VALUES (1, 4)"))
        upgrade(engine)
        store = HotlistStore(engine, data_key=key, clock=lambda: NOW)
        full = store.changes_since(0)
        assert (full.entry_ids, full.entries(), full.ended) == (["e1"], [entry], [])
        delta = store.changes_since(1)
        assert (delta.entry_ids, delta.ended) == ([], ["e2", "e3"])
        engine.dispose()

    def test_succeeds_keeping_partner_lists_of_0022_and_their_chunks_down_again(
        self, database_url: str
    ) -> None:
        """Chunks held before 0023 stay the list's; a downgrade drops only what no list takes."""
        engine = create_engine(database_url)
        upgrade(engine, to="0022")
        key = DataKey.generate()
        entry = HotlistEntry(plate="7ABC123", list_type=ListType.STOLEN_VEHICLE)
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO partner_hotlist (issuer_ori, version, issued_at, expires_at,"
                     " received_at, agreement_id, snapshot_digest) VALUES ('CA0190000', 1,"
                     " :now, :expires, :now, 'a-1', :digest)"),
                {"now": NOW, "expires": NOW + timedelta(hours=24), "digest": b"d" * 32},
            )  # fmt: skip
            connection.execute(
                text("INSERT INTO partner_chunk (issuer_ori, chunk, size, entry_ids, plates,"
                     " fields) VALUES ('CA0190000', 0, 1, :ids, :plates, :fields)"),
                {"ids": b"e-1", "plates": b"7ABC123",
                 "fields": key.encrypt(frame_fields([encode_fields(entry, "stolen")]))},
            )  # fmt: skip
        upgrade(engine)
        agreement_in_force(engine, "CA0190000", starts_at=NOW, sunsets_at=NOW + timedelta(days=1))
        lists = PartnerHotlists(engine, data_key=key, clock=lambda: NOW)
        assert [(m.entry_id, m.entry) for m in lists.find("7ABC123")] == [("e-1", entry)]
        assert lists.entry_count("CA0190000") == 1
        with engine.begin() as connection:  # a snapshot half received: chunks of no list
            connection.execute(
                text("INSERT INTO partner_chunk (issuer_ori, chunk, size, entry_ids, plates,"
                     " fields, generation) VALUES ('CA0190000', 1, 1, 'e-2', '7ABC123', :f, 7)"),
                {"f": b"x"},
            )  # fmt: skip
        assert lists.entry_count("CA0190000") == 1
        downgrade(engine, to="0022")
        with engine.connect() as connection:
            held = connection.execute(text("SELECT entry_ids FROM partner_chunk")).scalars().all()
        assert held == [b"e-1"]
        engine.dispose()


class TestRoundTrip:
    def test_succeeds(self, database_url: str) -> None:
        engine = create_engine(database_url)
        upgrade(engine)
        record_owner(
            engine, ori="CA0194200", name="LAPD", federation="test.alpr", public_key=KEY, now=NOW
        )
        with Session(engine) as session:
            owner = session.get(NodeIdentity, 1)
        assert owner is not None
        assert (owner.ori, owner.name, owner.signing_public_key) == ("CA0194200", "LAPD", KEY)
        assert utc(owner.created_at) == NOW
        engine.dispose()

    def test_sec2_only_the_public_key_is_stored(self, database_url: str) -> None:
        engine = create_engine(database_url)
        upgrade(engine)
        record_owner(
            engine, ori="CA0194200", name="LAPD", federation="test.alpr", public_key=KEY, now=NOW
        )
        with engine.connect() as connection:
            columns = connection.execute(text("SELECT * FROM node_identity")).keys()
        assert "signing_public_key" in columns
        assert not [c for c in columns if "private" in c or "secret" in c or "seed" in c]
        engine.dispose()


class TestOwner:
    @pytest.fixture
    def engine_with_owner(self, database_url: str) -> Iterator[Engine]:
        engine = create_engine(database_url)
        upgrade(engine)
        record_owner(
            engine, ori="CA0194200", name="LAPD", federation="test.alpr", public_key=KEY, now=NOW
        )
        yield engine
        engine.dispose()

    def test_succeeds(self, engine_with_owner: Engine) -> None:
        assert (
            check_owner(
                engine_with_owner, ori="CA0194200", federation="test.alpr", public_key=KEY
            ).name
            == "LAPD"
        )

    def test_fails_for_another_agency(self, engine_with_owner: Engine) -> None:
        with pytest.raises(OwnerMismatchError, match="belongs to CA0194200"):
            check_owner(engine_with_owner, ori="CA0190000", federation="test.alpr", public_key=KEY)

    def test_fails_for_another_signing_key(self, engine_with_owner: Engine) -> None:
        with pytest.raises(OwnerMismatchError, match="signing key"):
            check_owner(
                engine_with_owner, ori="CA0194200", federation="test.alpr", public_key=bytes(32)
            )


class TestEngine:
    def test_sqlite_runs_in_wal_with_foreign_keys_and_a_busy_timeout(self, tmp_path: Path) -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        engine.dispose()

    def test_a_new_sqlite_file_takes_16k_pages_and_an_old_one_keeps_its_own(
        self, tmp_path: Path
    ) -> None:
        old = sqlite3.connect(tmp_path / "old.db")
        old.execute("CREATE TABLE t (x)")  # made at SQLite's default page size
        old.close()
        for name, size in (("new.db", 16384), ("old.db", 4096)):
            engine = create_engine(f"sqlite:///{tmp_path / name}")
            with engine.begin() as connection:
                connection.execute(text("CREATE TABLE IF NOT EXISTS u (y)"))
                assert connection.execute(text("PRAGMA page_size")).scalar() == size
            engine.dispose()

    @pytest.mark.parametrize("connections", [3, 8])
    def test_allows_a_connection_for_each_worker_thread_and_as_many_more_at_need(
        self, database_url: str, connections: int
    ) -> None:
        """SQLite keeps at most 5 open, each caching up to 64 MiB of pages while it is."""
        engine = create_engine(database_url, connections=connections)
        held = [engine.connect() for _ in range(2 * connections)]
        try:
            kept = min(connections, 5) if database_url.startswith("sqlite") else connections
            assert engine.pool.size() == kept  # type: ignore[attr-defined]
            assert engine.pool.checkedout() == 2 * connections  # type: ignore[attr-defined]
        finally:
            for connection in held:
                connection.close()
            engine.dispose()

    @pytest.mark.parametrize("url", ["mysql://x/y", "not a url", "oracle://u@h/db"])
    def test_fails_for_an_unsupported_url(self, url: str) -> None:
        with pytest.raises(ValidationError) as raised:
            create_engine(url)
        assert raised.value.field == "store.url"
