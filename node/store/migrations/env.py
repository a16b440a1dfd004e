"""Alembic environment: runs migrations on the engine `node.store.migrate` hands it."""

from alembic import context
from sqlmodel import SQLModel

from node.store import capture_models, hotlist_models, models, sharing, user_models  # noqa: F401 (registers every table on SQLModel.metadata)

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
