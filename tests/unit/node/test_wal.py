"""SQLite checkpoints in a thread of their own: commits leave the log, the thread copies it."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from node.store import create_engine
from node.store.wal import BACKSTOP_PAGES, Checkpointer, checkpoint


def rows_in_file_alone(database: Path, scratch: Path) -> int:
    """The rows of table t in `database`'s file, without its log: what checkpoints copied."""
    copy = scratch / "copy.db"
    shutil.copyfile(database, copy)
    connection = sqlite3.connect(copy)
    try:
        if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 't'").fetchone() is None:
            return 0  # not even the table copied yet
        return int(connection.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        connection.close()
        copy.unlink()


def logged_only(database: Path, rows: int) -> sqlite3.Connection:
    """Make `database` with an empty table t in its file and `rows` rows in its log only.

    Returns a connection to close last: the last one closed checkpoints the log itself.
    """
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
    reader = sqlite3.connect(database)
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (0,)
    connection.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(rows)])
    connection.commit()
    connection.close()
    assert rows_in_file_alone(database, database.parent) == 0
    return reader


def eventually(condition: Callable[[], bool], within_seconds: float = 20) -> bool:
    """Whether `condition` holds within `within_seconds`, waiting on another thread's work."""
    deadline = time.monotonic() + within_seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class TestCheckpointer:
    def test_succeeds_copying_the_log_into_the_file_when_run(self, tmp_path: Path) -> None:
        database = tmp_path / "x.db"
        reader = logged_only(database, 3)
        checkpoints = Checkpointer(quiet_seconds=3600)
        checkpoints.note(database)
        checkpoints.run_noted()
        assert rows_in_file_alone(database, tmp_path) == 3
        reader.close()

    def test_succeeds_in_its_thread_once_commits_pause(self, tmp_path: Path) -> None:
        database = tmp_path / "x.db"
        reader = logged_only(database, 5)
        Checkpointer(quiet_seconds=0.01).note(database)
        assert eventually(lambda: rows_in_file_alone(database, tmp_path) == 5)
        reader.close()

    def test_succeeds_waking_its_thread_once_a_burst_of_commits(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each commit waking the thread cost a handoff between threads: only the first does."""
        woken: list[None] = []

        class CountedEvent(threading.Event):
            def set(self) -> None:
                woken.append(None)
                super().set()

        with monkeypatch.context() as patched:  # the checkpointer's event, not its thread's
            patched.setattr(threading, "Event", CountedEvent)
            checkpoints = Checkpointer(quiet_seconds=3600)
        for _ in range(100):
            checkpoints.note(tmp_path / "x.db")
        assert len(woken) == 1

    def test_succeeds_as_a_file_noted_is_forgotten_then_leaves_it_alone(
        self, tmp_path: Path
    ) -> None:
        """A process done writing leaves no log for the next one's commit to checkpoint."""
        database = tmp_path / "x.db"
        reader = logged_only(database, 3)
        checkpoints = Checkpointer(quiet_seconds=3600)
        checkpoints.note(database)
        checkpoints.forget(database)  # its engine disposed: the file may be deleted now
        assert rows_in_file_alone(database, tmp_path) == 3
        writer = sqlite3.connect(database)
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("INSERT INTO t VALUES (3)")
        writer.commit()
        writer.close()
        checkpoints.run_noted()
        assert rows_in_file_alone(database, tmp_path) == 3
        reader.close()

    def test_leaves_a_file_not_noted_alone_as_it_is_forgotten(self, tmp_path: Path) -> None:
        database = tmp_path / "x.db"
        reader = logged_only(database, 3)
        Checkpointer(quiet_seconds=3600).forget(database)
        assert rows_in_file_alone(database, tmp_path) == 0
        reader.close()

    def test_leaves_a_removed_file_removed(self, tmp_path: Path) -> None:
        gone = tmp_path / "gone.db"
        assert checkpoint(gone) is True  # nothing to try again
        assert not gone.exists()


class TestEngineCheckpoints:
    def test_sqlite_commits_leave_checkpoints_to_the_thread_with_a_backstop(
        self, tmp_path: Path
    ) -> None:
        database = tmp_path / "x.db"
        engine = create_engine(f"sqlite:///{database}")
        with engine.begin() as connection:
            assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar() == BACKSTOP_PAGES
            connection.execute(text("CREATE TABLE t (x)"))
            connection.execute(text("INSERT INTO t VALUES (1), (2)"))
        try:  # the engine's pool holds the connection open: its close checkpoints nothing
            # Two rows are far from SQLite's own checkpoint: the process's thread copies them.
            assert eventually(lambda: rows_in_file_alone(database, tmp_path) == 2)
        finally:
            engine.dispose()
