"""The platform database's tables: what storekeeper knows about services, apps and stores.

Schema changes go through Alembic migrations in ``migrations/versions``;
``storekeeper db upgrade`` applies them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints keep migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Setting kinds.
DATABASE = "database"
CONNECTION = "connection"

#: Store states, as recorded. The server-side marker (see backends.postgresql) is the
#: authority when the two disagree after a crash.
ABSENT = "absent"  # no database made by us (never synced, or dropped)
CREATING = "creating"  # about to be (re)made: CREATE DATABASE and the first-time initializer not completed
CREATED = "created"  # (written by earlier versions) as creating
DROPPING = "dropping"  # a drop started and has not finished: the next sync or drop finishes it
INITIALIZED = "initialized"  # a first-time initializer run completed
FAILED = "failed"  # the last first-time initializer run raised


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A portal user: an admin, or a viewer who may only look."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(20), default="admin")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Service(Base):
    """A registered database server (a persistent store service)."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    backend: Mapped[str] = mapped_column(String(20), default="postgresql")
    driver: Mapped[str] = mapped_column(String(40), default="psycopg")
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=5432)
    username: Mapped[str] = mapped_column(String(63))
    #: Fernet token of the password, never the password itself.
    password_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: A new password being rotated in (recorded before the server is told; promoted after).
    password_pending: Mapped[str | None] = mapped_column(Text, nullable=True)
    maintenance_db: Mapped[str] = mapped_column(String(63), default="postgres")
    sslmode: Mapped[str | None] = mapped_column(String(20), nullable=True)
    connect_timeout: Mapped[int] = mapped_column(Integer, default=10)
    pool_size: Mapped[int] = mapped_column(Integer, default=5)
    #: Bumped on every change so processes with cached engines notice.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class App(Base):
    """An app package seen by discovery; ``installed`` is False once it is gone (orphaned)."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(primary_key=True)
    package: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    installed: Mapped[bool] = mapped_column(Boolean, default=True)
    discovered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    settings: Mapped[list[Setting]] = relationship(
        back_populates="app", cascade="all, delete-orphan", order_by="Setting.id", foreign_keys="Setting.app_id"
    )


class Setting(Base):
    """A persistent store setting of an app, static (declared) or dynamic (made at run time).

    A database setting carries the state of its store.
    """

    __tablename__ = "settings"
    __table_args__ = (UniqueConstraint("app_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(20))
    dynamic: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    required: Mapped[bool] = mapped_column(Boolean, default=True)
    initializer: Mapped[str] = mapped_column(Text, default="")
    spatial: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The store's Alembic script directory, ``package:relative/path`` ("": no migrations).
    migrations: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: True once the setting is no longer declared by the installed app.
    orphaned: Mapped[bool] = mapped_column(Boolean, default=False)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"), nullable=True)
    #: For a dynamic store: the connection setting it was created through.
    connection_name: Mapped[str | None] = mapped_column(String(63), nullable=True)
    state: Mapped[str] = mapped_column(String(20), default=ABSENT)
    initialized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Bumped when the store is dropped, refreshed or reassigned, so cached engines are rebuilt.
    generation: Mapped[int] = mapped_column(Integer, default=1)
    #: The store's own login role (named like its database); None: the store uses the service user.
    role_name: Mapped[str | None] = mapped_column(String(63), nullable=True)
    #: Fernet token of the store role's password, never the password itself.
    role_password: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: A new password being rotated in (recorded before the server is told; promoted after).
    role_password_pending: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    app: Mapped[App] = relationship(back_populates="settings", foreign_keys=[app_id])
    service: Mapped[Service | None] = relationship()

    @property
    def initialized(self) -> bool:
        return self.state == INITIALIZED


class AuditEvent(Base):
    """One provisioning or admin action: who, what, when, outcome."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(150))
    action: Mapped[str] = mapped_column(String(60), index=True)
    target: Mapped[str] = mapped_column(String(255), default="")
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")


class ApiToken(Base):
    """A portal API bearer token; only its SHA-256 hash is kept (the token is shown once)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: Hex SHA-256 of the whole token.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The token's first characters, so people can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[User] = relationship()


class PortalSession(Base):
    """A web admin session. The cookie carries its random id (signed); only the id's SHA-256 is kept.

    Signing out deletes the row, and so do resetting the user's password and disabling
    them, so a replayed cookie is refused; a row past ``expires_at`` counts for nothing.
    """

    __tablename__ = "portal_sessions"

    #: Hex SHA-256 of the session id in the cookie.
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


#: Job statuses.
QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
JOB_FAILED = "failed"


class Job(Base):
    """Work the portal runs in the background (a sync), kept here so any worker can report it."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app: Mapped[str] = mapped_column(String(63), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=QUEUED)
    #: What was asked (e.g. store, refresh, firsttime).
    params: Mapped[dict] = mapped_column(JSON, default=dict)  # type: ignore[type-arg]
    #: One entry per store, appended as each finishes.
    results: Mapped[list] = mapped_column(JSON, default=list)  # type: ignore[type-arg]
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    hint: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str] = mapped_column(String(150))
    #: host:pid of the worker running it, so a restarted worker can fail the jobs it lost.
    worker: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Installation(Base):
    """This installation: one row, made by migration 0004. Hosts sharing a platform database are one."""

    __tablename__ = "installation"

    #: Written into the marker of every database and role this installation makes on a server.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SignInThrottle(Base):
    """Failed password sign-ins per (username, client), shared by every portal worker."""

    __tablename__ = "sign_in_throttle"

    #: Hex SHA-256 of "username\nclient address" (neither is stored in the clear).
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
