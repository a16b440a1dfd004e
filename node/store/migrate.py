"""Bring a database's schema up to date with alembic, from code rather than alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from node.store import capture_models, hotlist_models, models, sharing, user_models  # noqa: F401 (registers every table on SQLModel.metadata)

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, *, to: str | None = None) -> str:
    """Apply every pending revision, or those up to `to`; the revision the database is now at."""
    command.upgrade(_config(engine), to or "head")
    return to or head()


def downgrade(engine: Engine, *, to: str) -> None:
    """Take the database back to revision `to`: how a migration's way down is tested."""
    command.downgrade(_config(engine), to)


def head() -> str:
    """The newest revision the code knows."""
    revision = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert revision is not None, "no migrations"  # noqa: S101 (a packaging defect, not input)
    return revision


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_differences(engine: Engine) -> list[object]:
    """What differs between the tables in `models` and the migrated database."""
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))
