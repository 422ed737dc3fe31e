"""The store model: what provisioning works on (targets) and what it reports (results, listings).

A :class:`Target` is a snapshot, taken from the platform records, of all that
is needed to provision one database: its name on the server, the service
that holds it, and how to initialize it. Live stores and test copies are both
provisioned from targets; only the database name differs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from storekeeper.backends import ServiceSpec
from storekeeper.backends.postgresql import Marker
from storekeeper.errors import StoreError, StorekeeperError

#: Stores a sync works on at once.
DEFAULT_JOBS = 4


#: The end of the name of a database an import leaves beside a store while it works
#: (``<db>_restore_<id>``, ``<db>_previous_<id>``; see :mod:`storekeeper.stores.backups`).
IMPORT_SIDE_PATTERN = r"_(restore|previous)_[0-9a-f]{8}$"


@dataclass(frozen=True)
class SyncResult:
    """What happened to one store in a sync or create."""

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
    #: Schema migrations: the revisions applied (or, in a dry run, pending), oldest first; None: no migrations.
    revisions: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def done(
        cls,
        target: Target,
        action: str,
        *,
        first_time: bool | None,
        seconds: float = 0.0,
        revisions: list[str] | None = None,
    ) -> SyncResult:
        """Return the result of provisioning ``target`` successfully."""
        return cls(
            app=target.app,
            store=target.name,
            database=target.database,
            service=target.spec.name,
            action=action,
            ok=True,
            first_time=first_time,
            seconds=seconds,
            revisions=revisions,
        )

    @classmethod
    def failure(
        cls, app: str, store: str, database: str | None, service: str | None, err: StorekeeperError
    ) -> SyncResult:
        """Return the result of a store whose provisioning failed with ``err``."""
        return cls(
            app=app,
            store=store,
            database=database,
            service=service,
            action="failed",
            ok=False,
            error=err.message,
            hint=err.hint,
        )


@dataclass(frozen=True)
class StoreInfo:
    """A store as ``stores list`` shows it."""

    app: str
    name: str
    kind: str  # "static" or "dynamic"
    service: str | None
    database: str
    spatial: bool
    initializer: str
    state: str
    initialized: bool
    exists: bool | None  # None: the server could not be asked
    orphaned: bool
    last_error: str | None
    size_bytes: int | None = None
    #: "role" (reached as its own login role) or "service" (as the service user); None: not made yet.
    access: str | None = None
    #: True when the record and the server agree it is initialized; None: the server was not asked.
    ready: bool | None = None
    #: Why it is not ready, and the command that fixes it.
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """What is needed to provision one store's database; ``setting_id`` is -1 for an unrecorded one."""

    app: str
    name: str
    setting_id: int
    database: str
    spatial: bool
    initializer: str
    backend: str
    spec: ServiceSpec
    #: The store's own login role and its password; None: the store is reached as the service user.
    role: str | None = None
    role_password: str | None = field(default=None, repr=False)
    #: The store's Alembic script directory, ``package:relative/path`` ("": no migrations).
    migrations: str = ""

    @property
    def login(self) -> tuple[str, str] | None:
        """The (role, password) the store is reached as, or None for the service user."""
        if self.role is None or self.role_password is None:
            return None
        return (self.role, self.role_password)

    def as_role(self, role: str | None, password: str | None) -> Target:
        """Return this target reached as another login role (None: the service user)."""
        return replace(self, role=role, role_password=password)

    @property
    def what(self) -> str:
        """The store, named for messages."""
        return f'store "{self.name}" of app "{self.app}" (database {self.database})'

    @property
    def owner(self) -> str:
        """The owner written in the database's marker: ``APP/STORE``."""
        return f"{self.app}/{self.name}"

    def at(self, database: str) -> Target:
        """Return this target pointed at another database (a template of the same store)."""
        return replace(self, database=database)

    def check_owner(self, marker: Marker) -> None:
        """Refuse a database that another installation made, or that storekeeper made for another app's store."""
        mine = self.spec.installation
        if marker.foreign_to(mine):
            raise StoreError(
                f"Database {self.database} on {self.spec.where} belongs to another storekeeper installation "
                f"(id {marker.installation}; this one is {mine}), not to {self.what}. It never adopts, "
                "initializes, changes or drops another installation's databases.",
                hint="give each installation its own server or service, or drop the store with the installation "
                f"that made it, run with its home: storekeeper stores drop {self.app} {self.name}  "
                "(storekeeper db info prints an installation's id)",
                app=self.app,
                setting=self.name,
            )
        if marker.owner is not None and marker.owner != self.owner:
            other_app, _, other_store = marker.owner.partition("/")
            raise StoreError(
                f'Database {self.database} on {self.spec.where} belongs to store "{other_store}" of app '
                f'"{other_app}", not to {self.what}.',
                hint=f'rename store "{self.name}" of app "{self.app}" so its database name differs',
                app=self.app,
                setting=self.name,
            )
