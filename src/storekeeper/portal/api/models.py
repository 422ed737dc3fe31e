"""Request and response bodies of the REST API.

Responses are built from the core's result dataclasses (``ServiceOut.of(info)``);
no response model has a field that could hold a password or a token hash.

The models are the API's contract, and the OpenAPI schema is built from them,
so they state the rules a client can check before sending: lengths and ranges
(checked here), and the patterns of names, hosts and initializer paths (stated
in the schema with :func:`pattern`, checked by the core, whose 422 names the
rule, the value and the fix). Timestamps go out in UTC with their zone
(``2025-01-31T12:00:00Z``) whatever the platform database gave back (SQLite
gives naive datetimes). ``tests/reliability/test_fuzz_api.py`` fuzzes the API
from this schema and fails on any response that does not match it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from storekeeper import apps, audit, services, stores, users
from storekeeper.backends.names import MAX_IDENTIFIER_BYTES
from storekeeper.portal import auth, jobs
from storekeeper.stores.initializers import MAX_INITIALIZER_PATH

_WRITE_ONLY: dict[str, JsonValue] = {"writeOnly": True, "format": "password"}

# The core checks these (the functions named) and answers 422 naming the rule; the schema states them too.
#: Service names (storekeeper.backends.names.check_service_name).
SERVICE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: App, setting and store names: they become database names (storekeeper.backends.names.check_name).
STORE_NAME = r"^[a-z][a-z0-9_]*$"
#: A host name or IPv4 address (letters, digits and '-' in dot-separated labels of 1 to 63), or an IPv6 address
#: (storekeeper.services.check_host, which also checks that an address is a valid one).
HOST = (
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
    r"|^[0-9A-Fa-f]*:[0-9A-Fa-f:]*(:[0-9]{1,3}(\.[0-9]{1,3}){3})?$"
)
#: ``package.module.function`` or ``package.module:function``, empty for none; the package must be the app's own
#: (storekeeper.stores.initializers.check_initializer_path).
DOTTED_PATH = r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*([.:][A-Za-z_][A-Za-z0-9_]*))?$"
PASSWORD_MAX = 1024


def pattern(regex: str) -> dict[str, JsonValue]:
    """State ``regex`` in the field's JSON schema (``json_schema_extra``) for a rule the core checks."""
    return {"pattern": regex}


def _utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; a naive one (as SQLite gives back) was stored in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


#: A timestamp, always sent in UTC with its zone.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- services --------------------------------------------------------------------------


class ServiceCreate(BaseModel):
    """A database server to register. ``password`` is stored encrypted and never shown again."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=MAX_IDENTIFIER_BYTES, json_schema_extra=pattern(SERVICE_NAME), examples=["primary_pg"]
    )
    host: str = Field(
        min_length=1, max_length=services.MAX_HOSTNAME + 1, json_schema_extra=pattern(HOST), examples=["db.example.org"]
    )
    port: int = Field(services.DEFAULT_PORT, ge=1, le=65535)
    username: str = Field(min_length=1, max_length=63, examples=["postgres"])
    password: str | None = Field(None, max_length=PASSWORD_MAX, json_schema_extra=_WRITE_ONLY)
    maintenance_db: str = Field("postgres", min_length=1, max_length=63)
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    connect_timeout: int = Field(10, ge=1, le=3600)
    pool_size: int = Field(services.DEFAULT_POOL_SIZE, ge=1, le=1000)


class ServiceUpdate(BaseModel):
    """Fields to change; the ones left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    host: str | None = Field(None, min_length=1, max_length=services.MAX_HOSTNAME + 1, json_schema_extra=pattern(HOST))
    port: int | None = Field(None, ge=1, le=65535)
    username: str | None = Field(None, min_length=1, max_length=63)
    password: str | None = Field(None, max_length=PASSWORD_MAX, json_schema_extra=_WRITE_ONLY)
    maintenance_db: str | None = Field(None, min_length=1, max_length=63)
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    connect_timeout: int | None = Field(None, ge=1, le=3600)
    pool_size: int | None = Field(None, ge=1, le=1000)


class ServiceOut(_Out):
    """A service: everything but its password (``has_password`` says whether one is stored)."""

    name: str
    backend: str
    driver: str
    host: str
    port: int
    username: str
    has_password: bool
    maintenance_db: str
    sslmode: str | None
    connect_timeout: int
    pool_size: int
    assigned: list[str] = Field(description="Settings using it, as app/setting.")
    url: str = Field(description="Connection URL with the password masked.")

    @classmethod
    def of(cls, info: services.ServiceInfo) -> ServiceOut:
        return cls.model_validate(info.to_dict())


class ServiceTestOut(BaseModel):
    """What connecting to a service found."""

    service: str
    server_version: str
    superuser: bool
    can_create_database: bool
    can_create_role: bool
    store_access: Literal["role per store", "service user"] = Field(
        description="How apps reach stores on this service: each as its own login role, or (when the service "
        "user may not create roles) all as the service user."
    )
    postgis_available: bool
    postgis_version: str | None
    can_create_postgis: bool = Field(description="Whether the service user may CREATE EXTENSION postgis itself.")
    postgis_path: Literal["direct", "template", "none"] = Field(
        description="How spatial stores get PostGIS: created by the service user (direct), cloned from the "
        "PostGIS template an admin prepared (template), or not at all (none: see postgis_hint)."
    )
    postgis_template: Literal["absent", "ready", "broken"] = Field(
        description="The server's PostGIS template (storekeeper-postgis)."
    )
    postgis_template_problem: str | None = Field(description="Why a broken PostGIS template cannot be used.")
    postgis_hint: str | None = Field(description="What to do when postgis_path is none.")
    max_connections: int
    superuser_reserved_connections: int
    connections_in_use: int
    pool_size: int
    assigned_settings: int
    pool_connections_per_process: int
    processes_supported: int | None


class ServiceRemoved(BaseModel):
    service: str
    unassigned: list[str] = Field(description="Settings that lost their service (with force=true).")


# -- apps and settings ---------------------------------------------------------------------


class SettingOut(_Out):
    """A persistent store setting and, for a database setting, its store's recorded state."""

    app: str
    name: str
    kind: Literal["database", "connection"]
    dynamic: bool
    description: str
    required: bool
    initializer: str
    spatial: bool
    service: str | None
    state: str | None = Field(
        description="absent, creating, initialized, failed or dropping (database settings); "
        "created is how earlier versions said creating."
    )
    orphaned: bool
    ready: bool | None = Field(
        None, description="The record and the server agree the store is initialized; null when not asked or no store."
    )
    problem: str | None = Field(None, description="Why the store is not ready, and the command that fixes it.")


class UnmanagedSettingOut(BaseModel):
    """A setting the app declares that storekeeper does not manage (e.g. a Tethys app's custom setting)."""

    kind: str = Field(description="The setting's class, e.g. CustomSetting.")
    name: str
    description: str
    note: str = Field(description='Always "declared, not managed by storekeeper".')


class AppOut(BaseModel):
    """An app, its settings, and whether it is configured (required settings assigned) and ready (stores initialized)."""

    package: str
    name: str
    description: str
    installed: bool
    configured: bool
    ready: bool
    settings: list[SettingOut]
    unmanaged_settings: list[UnmanagedSettingOut] = Field(
        default_factory=list,
        description="Settings the app declares that storekeeper shows but does not manage: no service, no value.",
    )

    @classmethod
    def of(cls, info: apps.AppInfo) -> AppOut:
        return cls.model_validate(info.to_dict())


class AppProblemOut(BaseModel):
    entry_point: str
    message: str


class AppList(BaseModel):
    apps: list[AppOut]
    problems: list[AppProblemOut] = Field(description="Installed entry points that failed to load as apps.")


class Assign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(
        min_length=1, max_length=MAX_IDENTIFIER_BYTES, json_schema_extra=pattern(SERVICE_NAME), examples=["primary_pg"]
    )


# -- stores, syncs and jobs -----------------------------------------------------------------


class StoreOut(_Out):
    """A store, with what its service says: exists (null when the server could not be asked), size."""

    app: str
    name: str
    kind: Literal["static", "dynamic"]
    service: str | None
    database: str
    spatial: bool
    initializer: str
    state: str
    initialized: bool
    exists: bool | None
    orphaned: bool
    last_error: str | None
    size_bytes: int | None
    access: Literal["role", "service"] | None = Field(
        None, description="Reached as its own login role, or as the service user; null when not made yet."
    )
    ready: bool | None = Field(
        None, description="The record and the server agree it is initialized; null when the server was not asked."
    )
    problem: str | None = Field(None, description="Why it is not ready, and the command that fixes it.")


class RotationOut(_Out):
    """What rotating one store's role password did (never the password)."""

    app: str
    store: str
    role: str | None
    action: str
    ok: bool
    error: str | None
    seconds: float


class StoreCreate(BaseModel):
    """A dynamic store to create through one of the app's connection settings (idempotent)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=MAX_IDENTIFIER_BYTES, json_schema_extra=pattern(STORE_NAME), examples=["scratch"]
    )
    connection: str = Field(
        min_length=1, max_length=MAX_IDENTIFIER_BYTES, json_schema_extra=pattern(STORE_NAME), examples=["primary"]
    )
    spatial: bool = False
    initializer: str = Field(
        "",
        max_length=MAX_INITIALIZER_PATH,
        json_schema_extra=pattern(DOTTED_PATH),
        description="Dotted path of init(engine, first_time) inside the app's own package.",
    )
    refresh: bool = Field(False, description="Drop and recreate it if it exists (its data is lost).")


class SyncResultOut(_Out):
    """What happened to one store."""

    app: str
    store: str
    database: str | None
    service: str | None
    action: str
    ok: bool
    first_time: bool | None = None
    error: str | None = None
    hint: str | None = None
    seconds: float = 0.0
    #: Schema migrations applied (in a dry run: pending), oldest first; null: the store declares none.
    revisions: list[str] | None = None

    @classmethod
    def of(cls, result: stores.SyncResult) -> SyncResultOut:
        return cls.model_validate(asdict(result))


# -- schema migrations -------------------------------------------------------------------

#: A revision id as Alembic writes them (or head, base); a unique prefix of one is accepted too.
REVISION = r"^[A-Za-z0-9_]{1,64}$"


class RevisionOut(_Out):
    """One revision of a store's script directory, as Alembic names it."""

    revision: str
    down_revision: str | None
    message: str
    line: str = Field(description="Alembic's one-line form, e.g. '0001 -> 0002 (head), add name'.")


class MigrationStatusOut(_Out):
    """Where a store stands: its revision, its migrations' head, the revisions pending."""

    app: str
    store: str
    database: str
    migrations: str
    current: str | None = Field(description="The store's revision; null: at base, or the store is not made yet.")
    head: str | None
    exists: bool
    pending: list[RevisionOut]
    pending_count: int
    problem: str | None = Field(None, description="Why it cannot be migrated as it is.")
    hint: str | None = None


class MigrateRequest(BaseModel):
    """Bring an app's stores to head, or one store to a revision (``to``), or record one (``stamp``)."""

    model_config = ConfigDict(extra="forbid")

    store: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_IDENTIFIER_BYTES,
        json_schema_extra=pattern(STORE_NAME),
        description="Only this store (default: every store with migrations); needed with to or stamp.",
    )
    to: str | None = Field(None, pattern=REVISION, description="Upgrade or downgrade to this revision (head, base).")
    stamp: str | None = Field(None, pattern=REVISION, description="Record this revision, running no migration.")
    sql: bool = Field(False, description="Return the SQL the migration would run; change nothing.")


class MigrateResultOut(_Out):
    """What migrating one store did."""

    app: str
    store: str
    database: str
    action: str = Field(description="upgrade, downgrade, stamp, up to date, sql, or absent (not made yet).")
    before: str | None
    after: str | None
    revisions: list[str]
    sql: str | None = None
    seconds: float


class SyncRequest(BaseModel):
    """Which stores to sync, and how."""

    model_config = ConfigDict(extra="forbid")

    store: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_IDENTIFIER_BYTES,
        json_schema_extra=pattern(STORE_NAME),
        description="Only this store (default: every static store).",
    )
    refresh: bool = Field(False, description="Drop and recreate the stores (their data is lost).")
    firsttime: bool = Field(False, description="Run initializers with first_time=True.")


class AdoptRequest(BaseModel):
    """Which databases to adopt, and whether only to check them."""

    model_config = ConfigDict(extra="forbid")

    store: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_IDENTIFIER_BYTES,
        json_schema_extra=pattern(STORE_NAME),
        description="Only this database setting (default: every assigned one).",
    )
    dry_run: bool = Field(False, description="Check the databases and say what would change; change nothing.")


class AdoptResultOut(_Out):
    """What adopting one setting's database did (or would do)."""

    app: str
    store: str
    database: str | None
    service: str | None
    action: str = Field(description='"adopted", "already adopted", "would adopt", "skipped (...)" or "failed".')
    ok: bool
    tables: list[str] = Field(default_factory=list, description="Its tables and views (``public.`` left out).")
    postgis: str | None = Field(None, description="The PostGIS version installed in it; null: none.")
    role: str | None = Field(None, description="The store's own role, which owns it once adopted.")
    objects: int | None = Field(None, description="Objects handed to the role (in a dry run: that would be).")
    notes: list[str] = Field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    seconds: float = 0.0


class AdoptOut(BaseModel):
    """Every setting's outcome; ``ok`` is false when any was refused."""

    ok: bool
    dry_run: bool
    results: list[AdoptResultOut]

    @classmethod
    def of(cls, results: list[stores.AdoptResult], *, dry_run: bool) -> AdoptOut:
        return cls(
            ok=all(r.ok for r in results),
            dry_run=dry_run,
            results=[AdoptResultOut.model_validate(asdict(r)) for r in results],
        )


class JobOut(BaseModel):
    """A background job; ``results`` grows by one entry per store as the job runs."""

    id: str
    url: str
    app: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    params: dict[str, Any]
    results: list[SyncResultOut]
    error: str | None
    hint: str | None
    actor: str
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None

    @classmethod
    def of(cls, info: jobs.JobInfo) -> JobOut:
        return cls.model_validate({**asdict(info), "url": f"/api/v1/jobs/{info.id}"})


# -- audit, users, tokens ----------------------------------------------------------------------


class AuditOut(_Out):
    at: UtcDatetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: str

    @classmethod
    def of(cls, entry: audit.AuditEntry) -> AuditOut:
        return cls.model_validate(entry)


class UserOut(_Out):
    username: str
    role: Literal["admin", "viewer"]
    active: bool

    @classmethod
    def of(cls, info: users.UserInfo) -> UserOut:
        return cls.model_validate(info)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(
        pattern=users.USERNAME_PATTERN,
        description=f"{users.USERNAME_RULE}: a lowercase ASCII letter, then up to 63 of a-z 0-9 _ . -",
        examples=["j.smith"],
    )
    password: str = Field(min_length=users.MIN_PASSWORD_LENGTH, max_length=PASSWORD_MAX, json_schema_extra=_WRITE_ONLY)
    role: Literal["admin", "viewer"] = "viewer"


class UserUpdate(BaseModel):
    """Change a role, disable (``active: false``) or enable a user, or reset their password."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["admin", "viewer"] | None = None
    active: bool | None = None
    password: str | None = Field(
        None, min_length=users.MIN_PASSWORD_LENGTH, max_length=PASSWORD_MAX, json_schema_extra=_WRITE_ONLY
    )


class Me(BaseModel):
    username: str
    role: str
    via: Literal["token", "session"]


class TokenRequest(BaseModel):
    """Sign in with a password to get a new API token."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX, json_schema_extra=_WRITE_ONLY)
    name: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="What the token is for, to tell it apart later. Default: the client's name, the first "
        'product of its User-Agent ("curl", "python-httpx"), or "api".',
    )


class TokenOut(_Out):
    """An API token as listed (the token itself is shown only when created)."""

    id: int
    name: str
    prefix: str = Field(description="The token's first characters.")
    username: str
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None
    revoked: bool

    @classmethod
    def of(cls, info: auth.TokenInfo) -> TokenOut:
        return cls.model_validate(info)


class TokenCreated(TokenOut):
    token: str = Field(description="The bearer token. Shown this once: store it now.")
    token_type: Literal["bearer"] = "bearer"


# -- health ------------------------------------------------------------------------------------


class Check(BaseModel):
    ok: bool
    error: str | None = None


class ServiceCheck(Check):
    name: str


class HealthStatus(BaseModel):
    """What anyone may know: how the portal is."""

    status: Literal["ok", "degraded", "down"] = Field(
        description="ok: everything reachable; degraded: a service is not; down: the platform database is not."
    )


class Health(HealthStatus):
    """What a signed-in admin sees: the status, and each check with its error (never a password)."""

    platform: Check
    services: list[ServiceCheck]
    findings: dict[str, int] | None = Field(
        None, description="How many findings of each level storekeeper doctor has (error, warning, info)."
    )


class Problem(BaseModel):
    """An error (RFC 9457 problem document, served as application/problem+json)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:storekeeper:problem:service-error"])
    title: str
    status: int
    detail: str = Field(description="What went wrong, naming the app, setting, store or service.")
    hint: str | None = Field(None, description="How to fix it, usually a command or an API call.")
    instance: str | None = None
    app: str | None = None
    setting: str | None = None
    service: str | None = None


#: Statuses of calls that connect to a service's server: 502 when it refuses or does not answer.
REACHES_SERVER = (502,)
#: Row ids: positive and within a 64-bit integer column.
ID_MAX = 2**63 - 1


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Document ``statuses`` as problem documents in the OpenAPI schema."""
    return {s: {"model": Problem, "content": {"application/problem+json": {}}} for s in statuses}
