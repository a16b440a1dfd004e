"""The one place an SQLAlchemy engine is made, from a database URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Table, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlmodel import Session, SQLModel

from node.errors import ValidationError

SQLITE_BUSY_TIMEOUT_MS = 5000
SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def sqlite_url(path: Path) -> str:
    """The URL of a SQLite database file."""
    return f"sqlite:///{path.resolve()}"


def create_engine(url: str) -> Engine:
    """Make an engine for `url`: a SQLite file or a PostgreSQL server.

    SQLite connections run in WAL mode with foreign keys enforced and a busy
    timeout, so a reader never blocks the writer and a brief lock is waited out.
    A ``postgresql://`` URL is driven by psycopg 3 (the ``postgres`` extra).

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
        engine = sqlalchemy.create_engine(parsed, pool_pre_ping=dialect == "postgresql")
    except (NoSuchModuleError, ModuleNotFoundError) as error:
        raise ValidationError(
            "store.url", f"no driver for {dialect}: install the 'postgres' extra ({error})"
        ) from error
    if dialect == "sqlite":
        event.listen(engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(connection: Any, _record: object) -> None:  # noqa: ANN401 (DB-API connection)
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
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


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a SQLModel table class, for bulk statements."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)  # noqa: S101 (every table=True model has one)
    return table
