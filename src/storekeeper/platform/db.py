"""Open the platform database and migrate it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from storekeeper.errors import PlatformError

if TYPE_CHECKING:
    from storekeeper.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest migration; kept here so checking the schema needs no Alembic import.
HEAD_REVISION = "0006"


def make_engine(url: str) -> Engine:
    """Create the platform database engine (SQLite gets WAL and a busy timeout for concurrent CLIs)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise PlatformError(
            "database.url is not a valid database URL (not shown: it may hold a password).",
            hint="storekeeper settings --set database.url postgresql+psycopg://USER:PASSWORD@HOST:PORT/DBNAME",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    return create_engine(parsed, pool_size=5, max_overflow=5, pool_pre_ping=True)


def current_revision(engine: Engine) -> str | None:
    """Return the migration the platform database is at (None when it has no schema)."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError as err:
        raise PlatformError(
            f"Cannot reach the platform database ({engine.url.render_as_string(hide_password=True)}): "
            f"{str(err.orig).strip().splitlines()[0] if err.orig else err}",
            hint="check database.url (storekeeper settings --get database.url) and that its server is running",
        ) from None


def check_schema(engine: Engine) -> None:
    """Raise a PlatformError naming the fix unless the platform database is migrated to head."""
    rev = current_revision(engine)
    if rev is None:
        raise PlatformError(
            "The platform database has not been set up.",
            hint="storekeeper db configure",
        )
    if rev != HEAD_REVISION:
        raise PlatformError(
            f"The platform database is at migration {rev}; this storekeeper needs {HEAD_REVISION}.",
            hint="storekeeper db upgrade",
        )


def create_database_if_missing(url: str) -> bool:
    """Create the platform database itself on a PostgreSQL server when it is missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return False
    import psycopg
    from psycopg import sql

    target = parsed.database
    try:
        with psycopg.connect(
            host=parsed.host or "localhost",
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone():
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
            return True
    except psycopg.Error as err:
        raise PlatformError(
            f'Cannot create the platform database "{target}" on {parsed.host}:{parsed.port or 5432}: '
            f"{str(err).strip().splitlines()[0]}",
            hint="create it by hand, or give database.url a user allowed to CREATE DATABASE",
        ) from None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the platform database; return (revision before, revision after)."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    before = current_revision(engine)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except SQLAlchemyError as err:
        raise PlatformError(
            f"Migrating the platform database failed: {err}", hint="storekeeper --debug db upgrade"
        ) from err
    return before, current_revision(engine)


@dataclass(frozen=True)
class SchemaChange:
    """What :func:`ensure_schema` did: ``created`` the database itself, and the migration ``before`` and ``after``."""

    created: bool
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        """Return whether the database was created or migrated."""
        return self.created or self.before != self.after


def ensure_schema(config: Config, revision: str = "head") -> SchemaChange:
    """Create the platform database of ``config`` if it is missing, then migrate it to ``revision``.

    Example::

        change = ensure_schema(load_config())
        print(f"at migration {change.after}" + (f" (was {change.before})" if change.changed else ""))
    """
    created = create_database_if_missing(config.database_url)
    engine = make_engine(config.database_url)
    try:
        before, after = upgrade(engine, revision)
    finally:
        engine.dispose()
    return SchemaChange(created=created, before=before, after=after)
