"""Provision stores on a PostgreSQL server through psycopg 3.

Every identifier reaches SQL as :class:`psycopg.sql.Identifier`; values are
bound parameters. Server-level work (CREATE/DROP DATABASE, advisory locks)
runs on autocommit connections to the service's maintenance database.

State marker: each database storekeeper creates carries a comment
(``COMMENT ON DATABASE``) saying ``storekeeper:created APP/STORE`` or
``storekeeper:initialized APP/STORE``. The owner keeps two apps whose names
concatenate to the same database name (``my`` + ``first_app_db`` and
``my_first_app`` + ``db``) from touching each other's store. It lives on the server beside the data, so a
crash between an initializer's success and the platform database's record
cannot make a later sync treat initialized data as new; a database without the
``initialized`` marker is only ever recreated empty before a first-time run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from sqlalchemy.engine import URL

from storekeeper.errors import ServiceError, StoreError

MARKER_PREFIX = "storekeeper:"
CREATED = "created"
INITIALIZED = "initialized"
#: How long a sync waits for another process working on the same store.
LOCK_TIMEOUT_MS = 10 * 60 * 1000


@dataclass(frozen=True)
class Marker:
    """What a database's comment says about it: made by storekeeper? in which state? for whom?"""

    exists: bool
    #: "created", "initialized", "template:<hash>"; None when storekeeper did not make it.
    state: str | None = None
    #: "app/store" that owns it; None for markers written before owners were recorded.
    owner: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """A service's connection details with the password decrypted (never shown)."""

    id: int
    name: str
    host: str
    port: int
    username: str
    password: str | None
    maintenance_db: str = "postgres"
    sslmode: str | None = None
    connect_timeout: int = 10
    pool_size: int = 5
    driver: str = "psycopg"
    version: int = 1

    def __repr__(self) -> str:  # keep the password out of tracebacks and logs
        return f"ServiceSpec(name={self.name!r}, host={self.host!r}, port={self.port}, username={self.username!r})"

    @property
    def where(self) -> str:
        """Name the service for messages: name, host and port, never the password."""
        return f'service "{self.name}" ({self.host}:{self.port})'


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def lock_key(dbname: str) -> int:
    """Return the advisory-lock key (signed 64-bit) of a store's database name."""
    digest = hashlib.blake2b(f"storekeeper:{dbname}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresBackend:
    """Create, drop, inspect and lock stores on one PostgreSQL service."""

    name = "postgresql"

    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec

    # -- connections ---------------------------------------------------------------

    def connect(self, dbname: str | None = None) -> psycopg.Connection[Any]:
        """Open an autocommit connection (default: the maintenance database)."""
        spec = self.spec
        params: dict[str, Any] = {
            "host": spec.host,
            "port": spec.port,
            "user": spec.username,
            "dbname": dbname or spec.maintenance_db,
            "connect_timeout": spec.connect_timeout,
            "application_name": "storekeeper",
        }
        if spec.password is not None:
            params["password"] = spec.password
        if spec.sslmode:
            params["sslmode"] = spec.sslmode
        try:
            return psycopg.connect(autocommit=True, **params)
        except psycopg.OperationalError as err:
            raise ServiceError.unreachable(spec.name, spec.where, spec.username, dbname, first_line(err)) from None

    def url(self, dbname: str | None = None) -> URL:
        """Return the SQLAlchemy URL of a database on this service (maintenance database by default)."""
        spec = self.spec
        query = {"sslmode": spec.sslmode} if spec.sslmode else {}
        return URL.create(
            f"postgresql+{spec.driver}",
            username=spec.username,
            password=spec.password,
            host=spec.host,
            port=spec.port,
            database=dbname or spec.maintenance_db,
            query=query,
        )

    # -- inspection ----------------------------------------------------------------

    @staticmethod
    def existing(conn: psycopg.Connection[Any], names: Iterable[str]) -> set[str]:
        """Return which of ``names`` exist as databases."""
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (list(names),)).fetchall()
        return {r[0] for r in rows}

    @staticmethod
    def marker(conn: psycopg.Connection[Any], dbname: str) -> Marker:
        """Read a database's storekeeper marker (state and owning app/store)."""
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (dbname,)
        ).fetchone()
        if row is None:
            return Marker(exists=False)
        comment = row[0] or ""
        if not comment.startswith(MARKER_PREFIX):
            return Marker(exists=True)
        state, _, owner = comment[len(MARKER_PREFIX) :].partition(" ")
        return Marker(exists=True, state=state, owner=owner or None)

    @staticmethod
    def set_marker(conn: psycopg.Connection[Any], dbname: str, state: str, owner: str | None = None) -> None:
        """Record a database's state (and owner, ``app/store``) in its comment."""
        text = MARKER_PREFIX + state + (f" {owner}" if owner else "")
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(dbname), sql.Literal(text)))

    @staticmethod
    def sizes(conn: psycopg.Connection[Any], names: Iterable[str]) -> dict[str, int]:
        rows = conn.execute(
            "SELECT datname, pg_database_size(oid) FROM pg_database WHERE datname = ANY(%s)", (list(names),)
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    # -- provisioning --------------------------------------------------------------

    def create_database(
        self, conn: psycopg.Connection[Any], dbname: str, *, what: str, owner: str | None = None
    ) -> None:
        """Create an empty database marked as created (not yet initialized)."""
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        except pgerrors.InsufficientPrivilege:
            raise StoreError(
                f'Cannot create {what}: user "{self.spec.username}" of {self.spec.where} may not CREATE DATABASE.',
                hint=f'on the server: ALTER ROLE "{self.spec.username}" CREATEDB;  or assign a service whose '
                "user may (storekeeper app-settings set ...)",
                service=self.spec.name,
            ) from None
        except psycopg.Error as err:
            raise StoreError(
                f"Cannot create {what} on {self.spec.where}: {first_line(err)}",
                hint=f"storekeeper services test {self.spec.name}",
                service=self.spec.name,
            ) from None
        self.set_marker(conn, dbname, CREATED, owner)

    def drop_database(self, conn: psycopg.Connection[Any], dbname: str, *, what: str) -> bool:
        """Lock out new connections, then drop the database even if sessions are open."""
        if not self.existing(conn, [dbname]):
            return False
        try:
            # Refusing new connections first means nobody can slip in between the
            # termination of open sessions (WITH FORCE) and the drop itself.
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(dbname)))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        except pgerrors.InsufficientPrivilege:
            raise StoreError(
                f'Cannot drop {what}: user "{self.spec.username}" of {self.spec.where} does not own it.',
                hint="drop it as its owner or a superuser, or assign the service that created it",
                service=self.spec.name,
            ) from None
        except psycopg.Error as err:
            raise StoreError(
                f"Cannot drop {what} on {self.spec.where}: {first_line(err)}", service=self.spec.name
            ) from None
        return True

    def enable_postgis(self, dbname: str, *, what: str) -> None:
        """Create the PostGIS extension in a database (idempotent)."""
        with self.connect(dbname) as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            except (pgerrors.UndefinedFile, pgerrors.FeatureNotSupported):
                major = conn.info.server_version // 10000  # e.g. 150018 -> 15
                raise StoreError(
                    f"Cannot make spatial {what}: the PostGIS extension is not installed on {self.spec.where} "
                    f"(PostgreSQL {major}).",
                    hint=f"install PostGIS for PostgreSQL {major} on the database server (Debian/Ubuntu: "
                    f"apt-get install postgresql-{major}-postgis-3), then run the sync again",
                    service=self.spec.name,
                ) from None
            except pgerrors.InsufficientPrivilege:
                raise StoreError(
                    f'Cannot make spatial {what}: user "{self.spec.username}" of {self.spec.where} may not '
                    "CREATE EXTENSION postgis (PostGIS is not a trusted extension).",
                    hint=f'make the service user a superuser (ALTER ROLE "{self.spec.username}" SUPERUSER) or '
                    "assign a service whose user is one",
                    service=self.spec.name,
                ) from None

    @contextmanager
    def store_lock(self, dbname: str) -> Iterator[psycopg.Connection[Any]]:
        """Hold a session advisory lock on a store's name, in the maintenance database.

        Advisory locks are per database, and the store's own database may not
        exist yet (or is about to be dropped), so every process takes the lock
        in the maintenance database. The yielded connection is the one holding it.
        """
        conn = self.connect()
        try:
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{LOCK_TIMEOUT_MS}ms")))
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(dbname),))
            except pgerrors.LockNotAvailable:
                raise StoreError(
                    f'Timed out waiting for another process working on database "{dbname}" on {self.spec.where}.',
                    hint="wait for the other sync to finish, then run it again",
                    service=self.spec.name,
                ) from None
            yield conn
        finally:
            conn.close()  # closing the session releases the advisory lock

    def server_report(self) -> dict[str, Any]:
        """Connect and report version, privileges, PostGIS and connection headroom."""
        with self.connect() as conn:
            row = conn.execute(
                """
                SELECT current_setting('server_version'),
                       r.rolsuper, r.rolcreatedb, r.rolcreaterole,
                       current_setting('max_connections')::int,
                       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
                       (SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'),
                       current_setting('superuser_reserved_connections')::int
                FROM pg_roles r WHERE r.rolname = current_user
                """
            ).fetchone()
        assert row is not None
        version, superuser, createdb, createrole, max_conn, in_use, postgis, reserved = row
        return {
            "server_version": version,
            "superuser": bool(superuser),
            "can_create_database": bool(superuser or createdb),
            "can_create_role": bool(superuser or createrole),
            "postgis_available": postgis is not None,
            "postgis_version": postgis,
            # PostGIS is not a trusted extension: only a superuser may create it.
            "can_create_postgis": bool(superuser) and postgis is not None,
            "max_connections": max_conn,
            "superuser_reserved_connections": reserved,
            "connections_in_use": in_use,
        }
