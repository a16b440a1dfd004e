"""The one place an SQLAlchemy engine is made, from a database URL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Select, Table, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlmodel import Session, SQLModel

from node.errors import ValidationError
from node.store.wal import BACKSTOP_PAGES, CHECKPOINTS

SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_CACHE_KIB = 64 * 1024
SQLITE_PAGE_BYTES = 16 * 1024
"""The page size of a SQLite file made from now on (a file keeps the size it was made with).

Hotlist chunks are rows of about 160 KB: a million-entry list's chunks were written in
0.77 s at SQLite's default 4 KiB pages and in 0.50 s at 16 KiB, fewer pages to chain
and log. Larger pages cost small transactions more (each changed page is logged whole).
"""
INSERT_BATCH = 20_000
SQLITE_KEPT = 5
"""SQLite connections a pool keeps open at most, as SQLAlchemy's default pool did."""
DEFAULT_CONNECTIONS = 16
"""Connections a pool keeps: one for each of a node's worker threads (`[server] worker_threads`)."""
SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def sqlite_url(path: Path) -> str:
    """The URL of a SQLite database file."""
    return f"sqlite:///{path.resolve()}"


def create_engine(url: str, *, connections: int = DEFAULT_CONNECTIONS) -> Engine:
    """Make an engine for `url`: a SQLite file or a PostgreSQL server.

    SQLite connections run in WAL mode with foreign keys enforced and a busy
    timeout, so a reader never blocks the writer and a brief lock is waited out; the
    log is checkpointed in a thread of its own (`node.store.wal`), not by commits.
    A ``postgresql://`` URL is driven by psycopg 3 (the ``postgres`` extra).

    The pool allows `connections` at once, one for each of the node's worker threads,
    and as many more: for the threads outside that pool (a pull's chunk writer, the
    scheduler's job store) and a session opened inside another. Past that a thread
    waits for one. SQLAlchemy's default, 5 and 10 more, was fewer than the default
    worker threads of a machine of 12 cores or more (`os.cpu_count() + 4`). PostgreSQL
    keeps `connections` open; SQLite at most `SQLITE_KEPT` (`_pool_size`).

    Raises:
        ValidationError: The URL is malformed or names another database.
    """
    try:
        parsed = sqlalchemy.make_url(url)
    except ArgumentError as error:
        raise ValidationError("store.url", f"{url!r} is not a database URL") from error
    dialect = parsed.get_backend_name()
    if dialect not in SUPPORTED_DIALECTS:
        raise ValidationError(
            "store.url", f"{dialect!r} is not supported; use sqlite:/// or postgresql://"
        )
    if dialect == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = sqlalchemy.create_engine(
            parsed,
            pool_pre_ping=dialect == "postgresql",
            **_pool_size(parsed, connections),
        )
    except (NoSuchModuleError, ModuleNotFoundError) as error:
        raise ValidationError(
            "store.url", f"no driver for {dialect}: install the 'postgres' extra ({error})"
        ) from error
    if dialect == "sqlite":
        event.listen(engine, "connect", _configure_sqlite)
        if parsed.database and parsed.database != ":memory:":
            database = Path(parsed.database).resolve()
            event.listen(engine, "commit", lambda _connection: CHECKPOINTS.note(database))
            event.listen(engine, "engine_disposed", lambda _engine: CHECKPOINTS.forget(database))
    return engine


def _pool_size(url: URL, connections: int) -> dict[str, int]:
    """The pool's size for `connections` worker threads: at most twice that many at once.

    A SQLite pool keeps at most `SQLITE_KEPT` open, each caching up to
    `SQLITE_CACHE_KIB` of pages for as long as it stays open; the others are opened at
    need and closed when returned. SQLAlchemy keeps an in-memory SQLite database in one
    connection a thread, unsized.
    """
    if url.get_backend_name() != "sqlite":
        return {"pool_size": connections, "max_overflow": connections}
    if url.database in (None, "", ":memory:"):
        return {}
    kept = min(connections, SQLITE_KEPT)
    return {"pool_size": kept, "max_overflow": 2 * connections - kept}


def _configure_sqlite(connection: Any, _record: object) -> None:  # noqa: ANN401 (DB-API connection)
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")  # before WAL: a new file takes it
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")  # the rest: `node.store.wal`
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def lock_for_write(session: Session) -> None:
    """Take the database's write lock now, before reading what the transaction will update.

    On PostgreSQL the caller's ``SELECT ... FOR UPDATE`` locks the row it reads; SQLite
    ignores FOR UPDATE, so there the transaction starts with ``BEGIN IMMEDIATE``. Call it
    first in a fresh session.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def write_transaction(engine: Engine, session: Session | None = None) -> Iterator[Session]:
    """`session`, the caller's transaction, if given; else a new one, committed on exit.

    How a store method joins a transaction its caller opened, so that writes which
    belong together (an answer's audit event, checkpoint and receipt) commit together,
    or runs on its own. A new transaction takes the write lock first (`lock_for_write`):
    whoever opens one and hands it on does so too.
    """
    if session is not None:
        yield session
        return
    with Session(engine) as own:
        lock_for_write(own)
        yield own
        own.commit()


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a SQLModel table class, for bulk statements."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)  # noqa: S101 (every table=True model has one)
    return table


def insert_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    """Insert many rows given as tuples, in batches, straight through the driver.

    For hundreds of thousands of rows the per-row work of SQLAlchemy's parameter
    handling costs more than the database itself; this builds one INSERT in the
    driver's parameter style and hands it batches of plain tuples.
    """
    connection = session.connection()
    style = connection.dialect.paramstyle
    marker = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(style)
    if marker is None:
        raise NotImplementedError(f"no bulk insert for parameter style {style!r}")
    statement = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 (names from our tables)
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    batch: list[Sequence[object]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == INSERT_BATCH:
            connection.exec_driver_sql(statement, batch)
            batch = []
    if batch:
        connection.exec_driver_sql(statement, batch)


def fetch_tuples(session: Session, query: Select[Any]) -> list[tuple[Any, ...]]:
    """All rows of `query` as plain tuples, read straight from the driver's cursor.

    For hundreds of thousands of rows, building SQLAlchemy Row objects costs twice
    what the database does. The query's parameters are rendered inline, so it must
    only take values of our own (numbers, never input text).
    """
    connection = session.connection()
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()
