"""Fixtures shared by every test: databases on both engines, a federation PKI, nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from node.store import create_engine, sqlite_url, upgrade
from tests.support.clock import ManualClock
from tests.support.pki import Federation
from tests.support.postgres import ENV_URL, fresh_database, throwaway_cluster


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server URL: ALPR_TEST_POSTGRES_URL, or a cluster this session starts."""
    if ENV_URL in os.environ:
        yield os.environ[ENV_URL].rstrip("/")
        return
    with throwaway_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each engine: every store test runs on both."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "node.db")
        return
    yield request.getfixturevalue("postgres_url")


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, for what only PostgreSQL does (LISTEN/NOTIFY)."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture
def partner_database_url(request: pytest.FixtureRequest, database_url: str) -> Iterator[str]:
    """A second fresh database on the same engine as `database_url`, for a partner's node.

    On SQLite it is "" (a node keeps its own file in its directory); on PostgreSQL, a
    second database on the same server, so both ends of an exchange run on it.
    """
    if not database_url.startswith("postgresql"):
        yield ""
        return
    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database of each kind, migrated to the current schema."""
    engine = create_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    """A fresh federation CA in tmp_path."""
    return Federation.create(tmp_path)


@pytest.fixture
def clock() -> ManualClock:
    """A clock the test moves by hand, starting at tests.support.clock.START."""
    return ManualClock()
