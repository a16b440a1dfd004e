"""The node's store: SQLModel tables on a SQLite file by default, PostgreSQL by URL."""

from node.store.engine import DEFAULT_CONNECTIONS, create_engine, sqlite_url
from node.store.migrate import upgrade

__all__ = ["DEFAULT_CONNECTIONS", "create_engine", "sqlite_url", "upgrade"]
