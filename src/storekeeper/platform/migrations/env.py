"""Alembic environment: storekeeper runs migrations in-process on a connection it passes in."""

from alembic import context

from storekeeper.platform.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
)
with context.begin_transaction():
    context.run_migrations()
