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

Store roles: when the service user may create roles, each store has its own
login role, named like its database, marked ``storekeeper:role APP/STORE``
(``COMMENT ON ROLE``). It owns the database and everything in it, is the only
role besides the owner-by-membership service user that may connect to it, and
is no superuser and may not create databases or roles. Passwords reach the
server only as SCRAM-SHA-256 verifiers computed here, never in plain text.

PostGIS: it is not a trusted extension, so a service user that may not
``CREATE EXTENSION postgis`` (no superuser; managed clouds may grant it) gets
spatial stores by cloning :data:`POSTGIS_TEMPLATE`, a database an admin made
once with PostGIS in it (``storekeeper services prepare-postgis``, see
:meth:`PostgresBackend.prepare_postgis`). PostGIS's own objects stay the
admin's; store roles use them as PUBLIC may.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from sqlalchemy.engine import URL

from storekeeper.errors import ServiceError, StoreError

MARKER_PREFIX = "storekeeper:"
CREATED = "created"
INITIALIZED = "initialized"
#: A database another tool made, being handed to its store (``storekeeper apps adopt``): ours, never to be
#: recreated; the adoption (or a sync) finishes it.
ADOPTING = "adopting"
ROLE = "role"
#: How a marker names the installation that made the object.
INSTALLATION_KEY = "installation="
#: ``pg_database.datconnlimit`` of a database whose drop was cut short (PostgreSQL 15.4 and later).
INVALID_CONNLIMIT = -2
#: SCRAM-SHA-256 iterations of the verifiers we send (PostgreSQL's default).
SCRAM_ITERATIONS = 4096
#: Where storekeeper takes its advisory locks: a database no store role may connect to. The
#: hyphen keeps its name apart from every store's (letters, digits and _ only).
COORDINATION_DB = "storekeeper-coordination"
#: (host, port, service user) -> the database this process locks in on that server.
_coordination: dict[tuple[str, int, str], str] = {}
_coordination_lock = threading.Lock()
#: Idle lock connections kept for the next store_lock, per (process, host, port, user), while a
#: :func:`reusing_lock_connections` block runs: a sync of many stores opens a few connections, not
#: one per store. Each was reset (DISCARD ALL, which also releases its advisory locks) first.
_idle_lock_conns: dict[tuple[int, str, int, str], list[psycopg.Connection[Any]]] = {}
_reusers = 0
#: At most this many idle lock connections are kept per server and user.
IDLE_LOCK_CONNS = 4
#: How long a sync waits for another process working on the same store.
LOCK_TIMEOUT_MS = 10 * 60 * 1000
#: The database spatial stores are cloned from when the service user may not create PostGIS.
#: The hyphen keeps its name apart from every store's.
POSTGIS_TEMPLATE = "storekeeper-postgis"
#: Its marker's state (``storekeeper:postgis-template VERSION``), written last when it is complete.
POSTGIS_TEMPLATE_STATE = "postgis-template"
#: How a service gets PostGIS into a spatial store (``services test`` reports it).
DIRECT, TEMPLATE, NO_POSTGIS = "direct", "template", "none"
#: Services (host, port, user) whose user was refused CREATE EXTENSION postgis while a PostGIS
#: template was ready: later spatial stores are cloned straight from it.
_postgis_from_template: set[tuple[str, int, str]] = set()
#: Services whose user a probe found may create PostGIS (kept: a refusal is cheap to find again, a
#: success runs PostGIS's whole install script).
_postgis_probed: set[tuple[str, int, str]] = set()


@dataclass(frozen=True)
class Marker:
    """What a database's (or role's) comment says about it: made by storekeeper? which? in which state? for whom?

    The comment reads ``storekeeper:STATE APP/STORE installation=ID``; markers written
    before installations had ids lack the last part, and the oldest lack the owner too.
    """

    exists: bool
    #: "created", "initialized", "adopting", "role", "template:<hash>"; None when storekeeper did not make it.
    state: str | None = None
    #: "app/store" that owns it; None for markers written before owners were recorded.
    owner: str | None = None
    #: The id of the installation that made it; None for markers written before installation ids.
    installation: str | None = None
    #: PostgreSQL marks a database whose DROP DATABASE was cut short invalid: it can only be dropped.
    invalid: bool = False
    #: False for a database that refuses connections (``ALLOW_CONNECTIONS false``: a drop was about to start).
    allows_connections: bool = True

    @classmethod
    def read(cls, row: tuple[Any, ...] | None) -> Marker:
        """Parse a catalog row: (comment) for a role, (comment, datconnlimit, datallowconn) for a database.

        None: no such object.
        """
        if row is None:
            return cls(exists=False)
        comment = row[0] or ""
        invalid = len(row) > 1 and row[1] == INVALID_CONNLIMIT
        allows = len(row) < 3 or bool(row[2])
        if not comment.startswith(MARKER_PREFIX):
            return cls(exists=True, invalid=invalid, allows_connections=allows)
        state, *rest = comment[len(MARKER_PREFIX) :].split(" ")
        owner = installation = None
        for word in rest:
            if word.startswith(INSTALLATION_KEY):
                installation = word[len(INSTALLATION_KEY) :] or None
            elif word and owner is None:
                owner = word
        return cls(
            exists=True,
            state=state,
            owner=owner,
            installation=installation,
            invalid=invalid,
            allows_connections=allows,
        )

    @property
    def storekeepers(self) -> bool:
        """True when some storekeeper made it (whichever installation)."""
        return self.exists and self.state is not None

    def foreign_to(self, installation: str | None) -> bool:
        """True when another installation made it (markers from before installation ids are not foreign)."""
        return self.installation is not None and installation is not None and self.installation != installation


def marker_text(state: str, owner: str | None = None, installation: str | None = None) -> str:
    """Return the comment that marks a database or role (see :class:`Marker`)."""
    text = MARKER_PREFIX + state
    if owner:
        text += f" {owner}"
    if installation:
        text += f" {INSTALLATION_KEY}{installation}"
    return text


@dataclass(frozen=True)
class PostgisTemplate:
    """What the server's :data:`POSTGIS_TEMPLATE` database looks like."""

    #: "absent", "ready" or "broken".
    state: str
    #: Why a broken template cannot be used.
    problem: str | None = None
    owner: str | None = None
    #: The PostGIS version it was made with (from its marker).
    version: str | None = None

    @property
    def ready(self) -> bool:
        return self.state == "ready"


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
    #: A new password being rotated in: tried when the current one is refused (a rotation cut short).
    pending_password: str | None = field(default=None, repr=False)
    #: The installation whose stores these are: written into every marker, checked before any change.
    installation: str | None = None

    def __repr__(self) -> str:  # keep the password out of tracebacks and logs
        return f"ServiceSpec(name={self.name!r}, host={self.host!r}, port={self.port}, username={self.username!r})"

    @property
    def where(self) -> str:
        """Name the service for messages: name, host and port, never the password."""
        return f'service "{self.name}" ({self.host}:{self.port})'


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def new_password() -> str:
    """Return a random password for a store role (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(32)


def scram_verifier(password: str, *, iterations: int = SCRAM_ITERATIONS, salt: bytes | None = None) -> str:
    """Return the SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (so the server never sees it)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def lock_key(dbname: str) -> int:
    """Return the advisory-lock key (signed 64-bit) of a store's database name."""
    digest = hashlib.blake2b(f"storekeeper:{dbname}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


#: Objects in the current database owned by the current user, as (ALTER keyword, qualified name),
#: skipping system schemas and extension members. Schemas first, then relations, routines, types.
_OWNED_OBJECTS = """
WITH ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e')
SELECT 'SCHEMA', quote_ident(n.nspname) FROM pg_namespace n
 WHERE n.nspowner = to_regrole(current_user) AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_namespace'::regclass AND objid = n.oid)
UNION ALL
SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                      WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relowner = to_regrole(current_user) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
   AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_class'::regclass AND objid = c.oid)
   AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
            AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
       p.oid::regprocedure::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.proowner = to_regrole(current_user) AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_proc'::regclass AND objid = p.oid)
UNION ALL
SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype::text
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typowner = to_regrole(current_user)
   AND (t.typtype IN ('e', 'd', 'r')
        OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
   AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_type'::regclass AND objid = t.oid)
"""


#: The tables (and views, sequences that belong to no column) of the current database outside the system
#: schemas and extensions, as (qualified name, owner); ``public.`` is left out of the name.
_USER_TABLES = """
SELECT CASE WHEN n.nspname = 'public' THEN quote_ident(c.relname)
            ELSE quote_ident(n.nspname) || '.' || quote_ident(c.relname) END,
       pg_get_userbyid(c.relowner)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype = 'e')
 ORDER BY 1
"""


@dataclass(frozen=True)
class Survey:
    """What a database another tool made holds, as :meth:`PostgresBackend.survey` found it."""

    #: The role that owns the database; None: there is no such database.
    owner: str | None
    #: True when the service user may hand the database over (a superuser, or a member of its owner).
    may_take: bool
    #: Its tables and views outside the system schemas and extensions (``public.`` left out).
    tables: list[str] = field(default_factory=list)
    #: Those owned by neither the service user nor the store's role, as (name, owner): adopting cannot move them.
    others: list[tuple[str, str]] = field(default_factory=list)
    #: The PostGIS version installed in it; None: no PostGIS.
    postgis: str | None = None
    #: How many objects the service user owns in it (what adopting hands to the store's role).
    objects: int = 0


class PostgresBackend:
    """Create, drop, inspect and lock stores on one PostgreSQL service."""

    name = "postgresql"

    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec

    # -- connections ---------------------------------------------------------------

    def connect(self, dbname: str | None = None) -> psycopg.Connection[Any]:
        """Open an autocommit connection (default: the maintenance database)."""
        spec = self.spec
        params = self._login_params(spec.username, spec.password, dbname)
        try:
            return psycopg.connect(autocommit=True, **params)
        except UnicodeError as err:  # a host recorded before hosts were checked: "label empty or too long"
            raise ServiceError.unreachable(
                spec.name, spec.where, spec.username, dbname, f"bad host name ({err})"
            ) from None
        except psycopg.OperationalError as err:
            if spec.pending_password is not None:
                # A password rotation was cut short after the server took the new password.
                try:
                    return psycopg.connect(autocommit=True, **{**params, "password": spec.pending_password})
                except psycopg.OperationalError:
                    pass
            raise ServiceError.unreachable(spec.name, spec.where, spec.username, dbname, first_line(err)) from None

    def url(self, dbname: str | None = None, *, login: tuple[str, str] | None = None) -> URL:
        """Return the SQLAlchemy URL of a database on this service (maintenance database by default).

        ``login`` is a store role's (name, password); by default the service user's.
        """
        spec = self.spec
        query = {"sslmode": spec.sslmode} if spec.sslmode else {}
        username, password = login if login is not None else (spec.username, spec.password)
        return URL.create(
            f"postgresql+{spec.driver}",
            username=username,
            password=password,
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
            "SELECT shobj_description(oid, 'pg_database'), datconnlimit, datallowconn FROM pg_database "
            "WHERE datname = %s",
            (dbname,),
        ).fetchone()
        return Marker.read(row)

    @staticmethod
    def markers(
        conn: psycopg.Connection[Any], names: Iterable[str], *, sizes: bool = True
    ) -> dict[str, tuple[Marker, int | None]]:
        """Read the markers (and sizes, where this user may see them) of the databases of ``names`` that exist.

        One query per server. The markers alone take well under a millisecond;
        sizes cost a walk of each database's files (about 2 ms each), so a
        readiness check leaves them out.
        """
        size = (
            "CASE WHEN datconnlimit <> %s AND has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END"
            if sizes
            else "%s::int"
        )
        rows = conn.execute(
            f"SELECT datname, shobj_description(oid, 'pg_database'), datconnlimit, datallowconn, {size} "
            "FROM pg_database WHERE datname = ANY(%s)",
            (INVALID_CONNLIMIT if sizes else None, list(names)),
        ).fetchall()
        return {r[0]: (Marker.read((r[1], r[2], r[3])), r[4]) for r in rows}

    def set_marker(self, conn: psycopg.Connection[Any], dbname: str, state: str, owner: str | None = None) -> None:
        """Record a database's state (and owner, ``app/store``, and this installation) in its comment."""
        text = marker_text(state, owner, self.spec.installation)
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(dbname), sql.Literal(text)))

    def allow_connections(self, conn: psycopg.Connection[Any], dbname: str) -> None:
        """Let a database be connected to again (a drop that set ``ALLOW_CONNECTIONS false`` was cut short)."""
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(dbname)))

    def foreign(self, marker: Marker) -> bool:
        """True when another installation made the object (markers without an installation are not foreign)."""
        return marker.foreign_to(self.spec.installation)

    # -- provisioning --------------------------------------------------------------

    def create_database(
        self,
        conn: psycopg.Connection[Any],
        dbname: str,
        *,
        what: str,
        owner: str | None = None,
        role: str | None = None,
        template: str | None = None,
        strategy: str | None = None,
    ) -> None:
        """Create a database (empty, or a clone of ``template``) marked as created (not yet initialized).

        With ``role``, the role owns it and is the only one (with the service user) that may connect.
        """
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
        if template is not None:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
            if strategy and conn.info.server_version >= 150000:
                query = sql.SQL("{} STRATEGY {}").format(query, sql.SQL(strategy))
        if role is not None:
            query = sql.SQL("{} OWNER {}").format(query, sql.Identifier(role))
        try:
            conn.execute(query)
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
        if role is not None:
            self.restrict_connect(conn, dbname, role)
        self.set_marker(conn, dbname, CREATED, owner)

    @staticmethod
    def restrict_connect(conn: psycopg.Connection[Any], dbname: str, role: str) -> None:
        """Let only ``role`` (and the database's owner and superusers) connect to the database."""
        db = sql.Identifier(dbname)
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, sql.Identifier(role)))

    @staticmethod
    def database_owner(conn: psycopg.Connection[Any], dbname: str) -> str | None:
        """Return the name of the role that owns a database (None when it does not exist)."""
        row = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        return str(row[0]) if row else None

    # -- store roles ---------------------------------------------------------------

    @staticmethod
    def can_create_roles(conn: psycopg.Connection[Any]) -> bool:
        """Return True when the service user may create roles (SUPERUSER or CREATEROLE)."""
        row = conn.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user").fetchone()
        return bool(row and row[0])

    @staticmethod
    def role_marker(conn: psycopg.Connection[Any], role: str) -> Marker:
        """Read a role's storekeeper marker (``storekeeper:role APP/STORE``)."""
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s", (role,)
        ).fetchone()
        return Marker.read(row)

    def ensure_role(
        self,
        conn: psycopg.Connection[Any],
        role: str,
        password: str,
        *,
        owner: str,
        what: str,
        set_password: bool = True,
    ) -> bool:
        """Make a store's login role exist with ``password``; return True when it was created.

        A role of that name that storekeeper did not make for this store is refused.
        The service user is made a member, which PostgreSQL 15 needs before a
        non-superuser may give the role a database. ``set_password=False`` leaves an
        existing role's password alone (the caller proves it by logging in, and sets
        it with :meth:`set_role_password` when the login is refused): a catalog write
        and its commit fewer for every store of a no-op sync.
        """
        marker = self.role_marker(conn, role)
        ident = sql.Identifier(role)
        if self.foreign(marker):
            raise self.foreign_error(f'role "{role}"', marker, what)
        if marker.exists and (marker.state != ROLE or (marker.owner is not None and marker.owner != owner)):
            raise StoreError(
                f'Cannot give {what} its own role: a role named "{role}" already exists on {self.spec.where} '
                "and was not made for this store by storekeeper.",
                hint=f'rename or drop that role on the server (DROP ROLE "{role}"), then run the sync again',
                service=self.spec.name,
            )
        try:
            # One transaction: a crash never leaves a new role without its marker (roles, unlike
            # databases, are made transactionally), which every later sync would refuse.
            with conn.transaction():
                if marker.exists and set_password:
                    verifier = sql.Literal(scram_verifier(password))
                    conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(ident, verifier))
                elif not marker.exists:
                    conn.execute(
                        sql.SQL(
                            "CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                            "NOBYPASSRLS PASSWORD {}"
                        ).format(ident, sql.Literal(scram_verifier(password)))
                    )
                if not marker.exists or marker.installation is None:  # new, or made before installation ids
                    text = marker_text(ROLE, owner, self.spec.installation)
                    conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(ident, sql.Literal(text)))
                if not self._is_member(conn, role):
                    conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(ident))
        except pgerrors.InsufficientPrivilege as err:
            raise StoreError(
                f"Cannot give {what} its own role on {self.spec.where}: {first_line(err)}",
                hint=f"storekeeper services test {self.spec.name}",
                service=self.spec.name,
            ) from None
        return not marker.exists

    def set_own_password(self, conn: psycopg.Connection[Any], password: str) -> None:
        """Give the service user a new password (a user may always change its own), as a SCRAM verifier."""
        verifier = sql.Literal(scram_verifier(password))
        try:
            conn.execute(sql.SQL("ALTER ROLE CURRENT_USER WITH PASSWORD {}").format(verifier))
        except psycopg.Error as err:
            raise ServiceError(
                f'Cannot change the password of user "{self.spec.username}" of {self.spec.where}: {first_line(err)}',
                hint=f"storekeeper services test {self.spec.name}",
                service=self.spec.name,
            ) from None

    def set_role_password(self, conn: psycopg.Connection[Any], role: str, password: str, *, what: str) -> None:
        """Give a role a new password, sent as a SCRAM verifier (the server never sees the password)."""
        marker = self.role_marker(conn, role)
        if self.foreign(marker):
            raise self.foreign_error(f'role "{role}"', marker, what)
        verifier = sql.Literal(scram_verifier(password))
        try:
            conn.execute(sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(sql.Identifier(role), verifier))
        except psycopg.Error as err:
            raise StoreError(
                f'Cannot change the password of role "{role}" of {what} on {self.spec.where}: {first_line(err)}',
                hint=f"storekeeper services test {self.spec.name}",
                service=self.spec.name,
            ) from None

    @staticmethod
    def _is_member(conn: psycopg.Connection[Any], role: str) -> bool:
        row = conn.execute(
            "SELECT rolsuper OR pg_has_role(current_user, %s, 'MEMBER') FROM pg_roles WHERE rolname = current_user",
            (role,),
        ).fetchone()
        return bool(row and row[0])

    def drop_role(self, conn: psycopg.Connection[Any], role: str, *, owner: str) -> bool:
        """Drop a store's role if storekeeper made it for this store; False when there was none to drop.

        What it owns or was granted where it could reach (the maintenance database,
        shared objects such as databases) goes first, with ``DROP OWNED BY``; its own
        database is dropped before this is called.
        """
        marker = self.role_marker(conn, role)
        if not marker.exists or marker.state != ROLE or (marker.owner is not None and marker.owner != owner):
            return False
        if self.foreign(marker):
            return False
        ident = sql.Identifier(role)
        try:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            if conn.info.dbname != self.spec.maintenance_db:
                with self.connect() as maintenance:
                    maintenance.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
        except psycopg.Error as err:
            raise StoreError(
                f'Cannot drop role "{role}" on {self.spec.where}: {first_line(err)}',
                hint=f'drop what it still owns (DROP OWNED BY "{role}" in each database), then drop the store again',
                service=self.spec.name,
            ) from None
        return True

    def adopt(self, conn: psycopg.Connection[Any], dbname: str, role: str) -> int:
        """Hand a database made before store roles, and every object in it, to its store role.

        Objects are moved one by one (never ``REASSIGN OWNED BY`` the service user,
        which would hand over everything it owns on the server); objects that
        belong to an extension keep their owner. Returns how many objects moved.
        """
        db = sql.Identifier(dbname)
        ident = sql.Identifier(role)
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, ident))
        self.restrict_connect(conn, dbname, role)
        moved = 0
        with self.connect(dbname) as store:
            for kind, name in store.execute(_OWNED_OBJECTS).fetchall():
                store.execute(sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(kind), sql.SQL(name), ident))
                moved += 1
        return moved

    def hand_over(self, dbname: str, from_role: str, to_role: str) -> int:
        """Give ``to_role`` every object in a database that ``from_role`` owns (a clone of another store).

        One by one, as :meth:`adopt` does: ``REASSIGN OWNED`` would also hand over the
        databases ``from_role`` owns elsewhere. Returns how many objects moved.
        """
        moved = 0
        with self.connect(dbname) as store:
            store.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(from_role)))
            owned = store.execute(_OWNED_OBJECTS).fetchall()
            store.execute("RESET ROLE")
            for kind, name in owned:
                store.execute(
                    sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(kind), sql.SQL(name), sql.Identifier(to_role))
                )
                moved += 1
        return moved

    def survey(self, conn: psycopg.Connection[Any], dbname: str, role: str | None) -> Survey:
        """Look at a database another tool made, before adopting it: owner, tables, PostGIS, who owns what.

        ``conn`` is a connection to the maintenance database; the database itself
        is read with a connection of its own, changing nothing.
        """
        row = conn.execute(
            "SELECT pg_get_userbyid(datdba), (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
            "OR pg_has_role(current_user, datdba, 'MEMBER') FROM pg_database WHERE datname = %s",
            (dbname,),
        ).fetchone()
        if row is None:
            return Survey(owner=None, may_take=False)
        with self.connect(dbname) as db:
            tables = [(str(name), str(owner)) for name, owner in db.execute(_USER_TABLES).fetchall()]
            postgis = db.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'").fetchone()
            moving = db.execute(f"SELECT count(*) FROM ({_OWNED_OBJECTS}) AS owned").fetchone()
        keep = {self.spec.username, role}
        return Survey(
            owner=str(row[0]),
            may_take=bool(row[1]),
            tables=[name for name, _ in tables],
            others=[(name, owner) for name, owner in tables if owner not in keep],
            postgis=str(postgis[0]) if postgis else None,
            objects=int(moving[0]) if moving else 0,
        )

    def drop_database(self, conn: psycopg.Connection[Any], dbname: str, *, what: str) -> bool:
        """Lock out new connections, then drop the database even if sessions are open.

        A database left invalid by a drop that was cut short (a server crash) is
        finished: it can no longer be altered or connected to, only dropped.
        """
        marker = self.marker(conn, dbname)
        if not marker.exists:
            return False
        if self.foreign(marker):  # whichever path got here: never another installation's database
            raise self.foreign_error(f"database {dbname}", marker, what)
        try:
            # Refusing new connections first means nobody can slip in between the
            # termination of open sessions (WITH FORCE) and the drop itself.
            if not marker.invalid:
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

    def foreign_error(self, thing: str, marker: Marker, what: str) -> StoreError:
        """The error of an object another installation made, met while working on ``what``."""
        return StoreError(
            f"Cannot work on {what}: {thing} on {self.spec.where} belongs to another storekeeper installation "
            f"(id {marker.installation}; this one is {self.spec.installation}). It never adopts, "
            "changes or drops another installation's databases and roles.",
            hint="give each installation its own server or service, or remove that store with the installation "
            "that made it, run with its home: storekeeper stores drop APP STORE  (storekeeper db info prints "
            "an installation's id)",
            service=self.spec.name,
        )

    # -- PostGIS ---------------------------------------------------------------------

    def _key(self) -> tuple[str, int, str]:
        return (self.spec.host, self.spec.port, self.spec.username)

    def try_postgis(self, dbname: str, *, what: str) -> bool:
        """Create the PostGIS extension in a database (idempotent); False when the service user may not.

        An extension that is already there is never a refusal: ``IF NOT EXISTS`` is
        checked before the privilege, so a store cloned from the PostGIS template passes.
        """
        with self.connect(dbname) as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            except (pgerrors.UndefinedFile, pgerrors.FeatureNotSupported):
                raise self.postgis_missing(conn, what) from None
            except pgerrors.InsufficientPrivilege:
                return False
        return True

    def postgis_missing(self, conn: psycopg.Connection[Any], what: str) -> StoreError:
        """The error of a spatial store on a server without the PostGIS package."""
        major = conn.info.server_version // 10000  # e.g. 150018 -> 15
        return StoreError(
            f"Cannot make spatial {what}: the PostGIS extension is not installed on {self.spec.where} "
            f"(PostgreSQL {major}).",
            hint=self.install_hint(major) + ", then run the sync again",
            service=self.spec.name,
        )

    @staticmethod
    def install_hint(major: int) -> str:
        return (
            f"install PostGIS for PostgreSQL {major} on the database server "
            f"(Debian/Ubuntu: apt-get install postgresql-{major}-postgis-3)"
        )

    def prepare_hint(self) -> str:
        """What an admin runs once so this service's spatial stores are cloned from a PostGIS template."""
        return f"storekeeper services prepare-postgis {self.spec.name} --superuser USER"

    def postgis_denied(self, what: str, template: PostgisTemplate | None = None) -> StoreError:
        """The error of a spatial store when the service user may not create PostGIS and no template is ready."""
        broken = f" The PostGIS template is not usable: {template.problem}." if template and template.problem else ""
        return StoreError(
            f'Cannot make spatial {what}: user "{self.spec.username}" of {self.spec.where} may not '
            f"CREATE EXTENSION postgis (PostGIS is not a trusted extension), and no PostGIS template "
            f"is prepared on the server.{broken}",
            hint=f"{self.template_fix(template)}have an admin run once: {self.prepare_hint()}  "
            "(then run the sync again)",
            service=self.spec.name,
        )

    def template_fix(self, template: PostgisTemplate | None) -> str:
        """The SQL that clears a broken PostGIS template away (empty when it is not broken)."""
        if template is None or template.state != "broken":
            return ""
        name = sql.Identifier(POSTGIS_TEMPLATE).as_string(None)
        return f"as a superuser, ALTER DATABASE {name} IS_TEMPLATE false and DROP DATABASE {name}; then "

    def enable_postgis(self, dbname: str, *, what: str) -> None:
        """Make sure PostGIS is in an existing database (idempotent), or say how to get it there."""
        if self.try_postgis(dbname, what=what):
            return
        with self.connect() as conn:
            template = self.postgis_template(conn)
        if not template.ready:
            raise self.postgis_denied(what, template)
        # Only a new database can be cloned from the template: this one needs an admin's hand.
        raise StoreError(
            f'Cannot add PostGIS to {what}: it was made without it, and user "{self.spec.username}" of '
            f"{self.spec.where} may not CREATE EXTENSION postgis (only new spatial stores are cloned from "
            f'the PostGIS template "{POSTGIS_TEMPLATE}").',
            hint=f"as a superuser, in database {sql.Identifier(dbname).as_string(None)}: CREATE EXTENSION postgis",
            service=self.spec.name,
        )

    @staticmethod
    def postgis_template(conn: psycopg.Connection[Any]) -> PostgisTemplate:
        """Inspect :data:`POSTGIS_TEMPLATE`: absent, ready to clone, or broken (and why)."""
        row = conn.execute(
            "SELECT datistemplate, datallowconn, pg_get_userbyid(datdba), shobj_description(oid, 'pg_database') "
            "FROM pg_database WHERE datname = %s",
            (POSTGIS_TEMPLATE,),
        ).fetchone()
        if row is None:
            return PostgisTemplate("absent")
        is_template, allow_conn, owner, comment = row
        state, _, version = (comment or "").removeprefix(MARKER_PREFIX).partition(" ")
        if not (comment or "").startswith(MARKER_PREFIX) or state != POSTGIS_TEMPLATE_STATE:
            problem = "it lacks the storekeeper marker (made by someone else, or its preparation did not finish)"
        elif not is_template:
            problem = "it is not marked IS_TEMPLATE"
        elif allow_conn:
            problem = "it allows connections (a clone fails while anyone is connected to it)"
        else:
            return PostgisTemplate("ready", owner=owner, version=version or None)
        return PostgisTemplate("broken", problem=problem, owner=owner, version=version or None)

    def create_spatial_database(
        self,
        conn: psycopg.Connection[Any],
        dbname: str,
        *,
        what: str,
        owner: str | None = None,
        role: str | None = None,
    ) -> str:
        """Create a database with PostGIS in it, marked as created; return how (:data:`DIRECT` or :data:`TEMPLATE`).

        When the service user may create the extension it does, in the new database.
        Otherwise the database is made again as a clone of :data:`POSTGIS_TEMPLATE`
        (which ``CREATE DATABASE`` copies without connecting to it). With neither,
        nothing is left behind and the error names ``services prepare-postgis``.
        """
        key = self._key()
        template: PostgisTemplate | None = None
        if key in _postgis_from_template:
            template = self.postgis_template(conn)
            if not template.ready:
                _postgis_from_template.discard(key)
        if key not in _postgis_from_template:
            self.create_database(conn, dbname, what=what, owner=owner, role=role)
            try:
                direct = self.try_postgis(dbname, what=what)
            except BaseException:
                self.drop_database(conn, dbname, what=what)
                raise
            if direct:
                return DIRECT
            self.drop_database(conn, dbname, what=what)
            template = self.postgis_template(conn)
            if not template.ready:
                raise self.postgis_denied(what, template)
            _postgis_from_template.add(key)
        self.create_database(conn, dbname, what=what, owner=owner, role=role, template=POSTGIS_TEMPLATE)
        return TEMPLATE

    def probe_postgis(self) -> bool:
        """Return whether the service user may create PostGIS, by trying in a transaction that is rolled back.

        It tries in the coordination database (made by the service user, which may
        create a schema there); nothing is left behind.
        """
        if self._key() in _postgis_probed:
            return True
        with self.coordination_connect() as conn:
            try:
                with conn.transaction(force_rollback=True):
                    can_create = conn.execute("SELECT has_database_privilege(current_database(), 'CREATE')")
                    row = can_create.fetchone()
                    if row and row[0]:
                        conn.execute("CREATE SCHEMA storekeeper_postgis_probe")
                        conn.execute("CREATE EXTENSION postgis SCHEMA storekeeper_postgis_probe")
                    else:
                        conn.execute("CREATE EXTENSION postgis")
            except pgerrors.DuplicateObject:
                return False  # already in the maintenance database: this cannot tell
            except psycopg.Error:
                return False
        _postgis_probed.add(self._key())
        return True

    def prepare_postgis(self, superuser: str, password: str | None) -> dict[str, Any]:
        """Make :data:`POSTGIS_TEMPLATE` as ``superuser``, owned by the service user (idempotent).

        The template has PostGIS in it, is marked ``IS_TEMPLATE``, refuses connections,
        may not be connected to by PUBLIC, and carries a marker written last, so a
        template with the marker is complete. The password is used for this one
        connection and nothing else.
        """
        spec = self.spec
        params = self._login_params(superuser, password)
        try:
            admin = psycopg.connect(autocommit=True, **params)
        except psycopg.OperationalError as err:
            raise ServiceError(
                f'Cannot connect to {spec.where} as superuser "{superuser}": {first_line(err)}',
                hint="check the superuser's name and password (prompted, or STOREKEEPER_SUPERUSER_PASSWORD); "
                "nothing was changed",
                service=spec.name,
            ) from None
        with admin:
            result = {"service": spec.name, "template": POSTGIS_TEMPLATE, "service_user": spec.username}
            found = self.postgis_template(admin)
            if found.ready:
                return {**result, "action": "already prepared", "postgis_version": found.version}
            if found.state == "broken":
                raise ServiceError(
                    f'The PostGIS template "{POSTGIS_TEMPLATE}" on {spec.where} exists but is not usable: '
                    f"{found.problem}.",
                    hint=f"{self.template_fix(found)}{self.prepare_hint()}",
                    service=spec.name,
                )
            version = self._make_postgis_template(admin, params)
        return {**result, "action": "prepared", "postgis_version": version}

    def _login_params(self, user: str, password: str | None, dbname: str | None = None) -> dict[str, Any]:
        spec = self.spec
        params: dict[str, Any] = {
            "host": spec.host,
            "port": spec.port,
            "user": user,
            "dbname": dbname or spec.maintenance_db,
            "connect_timeout": spec.connect_timeout,
            "application_name": "storekeeper",
        }
        if password is not None:
            params["password"] = password
        if spec.sslmode:
            params["sslmode"] = spec.sslmode
        return params

    def _make_postgis_template(self, admin: psycopg.Connection[Any], params: dict[str, Any]) -> str:
        spec = self.spec
        superuser = params["user"]
        ident = sql.Identifier(POSTGIS_TEMPLATE)
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        except pgerrors.DuplicateDatabase:
            raise ServiceError(
                f"Another process is preparing the PostGIS template on {spec.where} right now.",
                hint=f"wait a moment, then: storekeeper services test {spec.name}",
                service=spec.name,
            ) from None
        except psycopg.Error as err:
            raise ServiceError(
                f'Cannot create the PostGIS template on {spec.where} as "{superuser}": {first_line(err)}',
                hint="run it as a superuser (or the admin role your provider gives), e.g. --superuser postgres",
                service=spec.name,
            ) from None
        try:
            with psycopg.connect(autocommit=True, **{**params, "dbname": POSTGIS_TEMPLATE}) as tpl:
                try:
                    tpl.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                except (pgerrors.UndefinedFile, pgerrors.FeatureNotSupported):
                    major = tpl.info.server_version // 10000
                    raise ServiceError(
                        f"PostGIS is not installed on {spec.where} (PostgreSQL {major}); nothing was changed.",
                        hint=self.install_hint(major),
                        service=spec.name,
                    ) from None
                row = tpl.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'").fetchone()
                version = str(row[0]) if row else ""
            admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(ident, sql.Identifier(spec.username)))
            admin.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(ident))
            admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
            marker = f"{MARKER_PREFIX}{POSTGIS_TEMPLATE_STATE} {version}"
            admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(ident, sql.Literal(marker)))
        except BaseException as err:
            # Never leave a half-made template behind: the next run starts again.
            with contextlib.suppress(psycopg.Error):
                admin.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(ident))
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            if isinstance(err, psycopg.Error):
                raise ServiceError(
                    f'Cannot prepare the PostGIS template on {spec.where} as "{superuser}": {first_line(err)}',
                    hint="run it as a superuser (or the admin role your provider gives), e.g. --superuser postgres",
                    service=spec.name,
                ) from None
            raise
        return version

    # -- coordination ----------------------------------------------------------------

    def coordination_connect(self) -> psycopg.Connection[Any]:
        """Open an autocommit connection to the database storekeeper takes its advisory locks in.

        That is :data:`COORDINATION_DB`, made on first use with CONNECT revoked from
        PUBLIC, so no store role can connect to it and hold (or wait on) another
        store's lock. A service user that may neither make it nor connect to it
        locks in the maintenance database, as every process of that service then does.
        """
        key = (self.spec.host, self.spec.port, self.spec.username)
        dbname = _coordination.get(key)
        if dbname is not None:
            try:
                return self.connect(dbname)
            except ServiceError:
                _coordination.pop(key, None)  # the server was replaced, or the database dropped: prepare again
        with _coordination_lock:  # threads of one sync prepare it once
            dbname = _coordination.get(key) or self._prepare_coordination()
            _coordination[key] = dbname
        return self.connect(dbname)

    def _prepare_coordination(self) -> str:
        with self.connect() as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (COORDINATION_DB,)).fetchone()
            if found is None:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(COORDINATION_DB)))
                except (pgerrors.DuplicateDatabase, pgerrors.UniqueViolation):
                    pass  # another process (or thread: a unique violation then) made it first
                except pgerrors.InsufficientPrivilege:
                    return self.spec.maintenance_db
                else:
                    ident = sql.Identifier(COORDINATION_DB)
                    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
                    text = sql.Literal(f"{MARKER_PREFIX}coordination")
                    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(ident, text))
                    # Anyone who slipped in before the REVOKE is shown out (where we may).
                    with contextlib.suppress(psycopg.Error):
                        conn.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND usename <> current_user AND pid <> pg_backend_pid()",
                            (COORDINATION_DB,),
                        )
            row = conn.execute("SELECT has_database_privilege(%s, 'CONNECT')", (COORDINATION_DB,)).fetchone()
        return COORDINATION_DB if row and row[0] else self.spec.maintenance_db

    @contextmanager
    def store_lock(self, dbname: str) -> Iterator[psycopg.Connection[Any]]:
        """Hold a session advisory lock on a store's name, in the coordination database.

        Advisory locks are per database, and the store's own database may not
        exist yet (or is about to be dropped), so every process takes the lock
        in the one database no store role can reach. The yielded connection is
        the one holding it.
        """
        conn = self._lock_connection()
        reusable = False
        try:
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(dbname),))
            except pgerrors.LockNotAvailable:
                raise StoreError(
                    f'Timed out waiting for another process working on database "{dbname}" on {self.spec.where}.',
                    hint="wait for the other sync to finish, then run it again",
                    service=self.spec.name,
                ) from None
            yield conn
            reusable = True
        finally:
            self._release_lock_connection(conn, reusable)

    def _idle_key(self) -> tuple[int, str, int, str]:
        return (os.getpid(), self.spec.host, self.spec.port, self.spec.username)

    def _lock_connection(self) -> psycopg.Connection[Any]:
        """Return a coordination connection with the lock timeout set: a kept idle one, or a new one."""
        timeout = sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{LOCK_TIMEOUT_MS}ms"))
        key = self._idle_key()
        while True:
            with _coordination_lock:
                idle = _idle_lock_conns.get(key)
                conn = idle.pop() if idle else None
            if conn is None:
                break
            try:
                conn.execute(timeout)  # also proves the kept connection still works
                return conn
            except psycopg.Error:
                conn.close()  # the server restarted, or dropped us: try the next, or a new one
        conn = self.coordination_connect()
        try:
            conn.execute(timeout)
        except BaseException:
            conn.close()
            raise
        return conn

    def _release_lock_connection(self, conn: psycopg.Connection[Any], reusable: bool) -> None:
        """Release a store's lock: reset the session and keep it, or close it (which releases it too)."""
        if reusable and not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.execute("DISCARD ALL")  # unlocks every advisory lock, resets settings
            except psycopg.Error:
                pass
            else:
                with _coordination_lock:
                    idle = _idle_lock_conns.setdefault(self._idle_key(), [])
                    if _reusers > 0 and len(idle) < IDLE_LOCK_CONNS:
                        idle.append(conn)
                        return
        conn.close()

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
            major = conn.info.server_version // 10000
            template = self.postgis_template(conn)
        version, superuser, createdb, createrole, max_conn, in_use, postgis, reserved = row
        direct = postgis is not None and (bool(superuser) or (bool(createdb) and self.probe_postgis()))
        if direct:
            path, hint = DIRECT, None
        elif template.ready:
            path, hint = TEMPLATE, None
        elif postgis is None:
            path, hint = NO_POSTGIS, self.install_hint(major)
        else:
            path, hint = NO_POSTGIS, f"{self.template_fix(template)}{self.prepare_hint()}"
        return {
            "server_version": version,
            "superuser": bool(superuser),
            "can_create_database": bool(superuser or createdb),
            "can_create_role": bool(superuser or createrole),
            # Each store gets its own login role when the service user may create roles.
            "store_access": "role per store" if (superuser or createrole) else "service user",
            "postgis_available": postgis is not None,
            "postgis_version": postgis,
            # PostGIS is not a trusted extension: a superuser (or a managed cloud's admin role) may create it.
            "can_create_postgis": direct,
            # How spatial stores get PostGIS: created directly, cloned from the prepared template, or not at all.
            "postgis_path": path,
            "postgis_template": template.state,
            "postgis_template_problem": template.problem,
            "postgis_hint": hint,
            "max_connections": max_conn,
            "superuser_reserved_connections": reserved,
            "connections_in_use": in_use,
        }


@contextmanager
def reusing_lock_connections() -> Iterator[None]:
    """Keep store-lock connections open for the next store while this block runs (in any thread).

    A sync wraps its work in it; when the last such block ends, the kept connections are
    closed, so nothing stays connected after a command, a request or a test.
    """
    global _reusers
    with _coordination_lock:
        _reusers += 1
    try:
        yield
    finally:
        with _coordination_lock:
            _reusers -= 1
            closing = [] if _reusers else [c for conns in _idle_lock_conns.values() for c in conns]
            if not _reusers:
                _idle_lock_conns.clear()
        for conn in closing:
            conn.close()
