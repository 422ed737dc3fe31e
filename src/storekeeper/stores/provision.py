"""Provisioning live stores: the create / initialize / drop state machine and its locks.

Life of a store (recorded on the setting, mirrored by a marker on the server;
see :mod:`storekeeper.backends.postgresql`)::

    absent --create--> created --initializer ok--> initialized
                          |  \\--initializer raised--> failed
                          '--(crash, failure)--> next sync drops it and starts again empty

``first_time`` is True only for a database that was just created empty, or
when the caller forces it (``--firsttime``). Two processes working on the same
store serialize on an advisory lock in the service's maintenance database, so
a first-time initializer runs exactly once.

:data:`LIVE` is the live side of :class:`storekeeper.stores.mode.StoreMode`;
the test-copy side lives in :mod:`storekeeper.testing.copies`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from psycopg import sql
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from storekeeper import audit, discovery, engines
from storekeeper.backends import get_backend
from storekeeper.backends import postgresql as pg
from storekeeper.backends.names import check_name, database_name
from storekeeper.declaration import AppClass
from storekeeper.errors import InitializerError, MigrationError, StoreError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import (
    ABSENT,
    CREATED,
    CREATING,
    DATABASE,
    DROPPING,
    FAILED,
    INITIALIZED,
    App,
    Setting,
    utcnow,
)
from storekeeper.retry import retry
from storekeeper.stores import records, roles
from storekeeper.stores.initializers import run_initializer
from storekeeper.stores.model import IMPORT_SIDE_PATTERN, SyncResult, Target

#: What provisioning does with a store's database (see decide).
CREATE, RECREATE, KEEP = "create", "recreate", "keep"


def decide(target: Target, marker: pg.Marker, state: str, *, refresh: bool, ours: bool = False) -> str:
    """Decide, from the server's marker and the platform's record, what to do with the database.

    The one place the rules live: the sync and its dry run both ask here.
    ``ours`` says an unmarked database is provably this store's (see
    :func:`unmarked_but_ours`). Raises when the database exists but this
    installation did not make it for this store: a sync never takes it over,
    initializes, changes or drops it (``storekeeper apps adopt`` takes over an unmarked one).
    """
    if not marker.exists:
        return CREATE
    target.check_owner(marker)  # another installation's, or another store's
    if not marker.storekeepers and not ours:
        raise StoreError(
            f"{target.what} already exists on {target.spec.where} but was not created by storekeeper; "
            "it changes or drops no database it did not make, and takes one over only when told to.",
            hint=f"if it holds this app's data (a Tethys portal made it): storekeeper apps adopt {target.app} "
            f"--database {target.name}; otherwise use another store name, or (if nobody needs it) drop that "
            "database on the server yourself: "
            f"DROP DATABASE {sql.Identifier(target.database).as_string(None)}; then: "
            f"storekeeper syncstores {target.app} --database {target.name}",
            app=target.app,
            setting=target.name,
        )
    if marker.storekeepers and marker.installation is None and state == ABSENT and not ours:
        raise StoreError(
            f"{target.what} already exists on {target.spec.where}, made by a storekeeper installation that "
            "predates installation ids, and this installation has no record of it.",
            hint="sync it with the installation that made it, or (if nobody needs it) drop that database on the "
            f"server yourself: DROP DATABASE {sql.Identifier(target.database).as_string(None)}",
            app=target.app,
            setting=target.name,
        )
    if marker.invalid or state == DROPPING or refresh:
        return RECREATE  # an interrupted drop is finished before anything else
    if marker.state in (pg.INITIALIZED, pg.ADOPTING) or (not marker.storekeepers and state == INITIALIZED):
        return KEEP  # (an adoption cut short is finished: its data is never dropped by a plain sync)
    # Created but never initialized (a crash or an initializer that raised):
    # start again from empty so a first-time run never sees half-written data.
    return RECREATE


def _import_leftovers_exist(conn: Any) -> bool:
    """True when any database on the server looks like an import's leftover (one round trip, no import)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname ~ %s)", (IMPORT_SIDE_PATTERN,)
    ).fetchone()
    return bool(row and row[0])


def unmarked_but_ours(backend: pg.PostgresBackend, conn: Any, target: Target, marker: pg.Marker, state: str) -> bool:
    """True for an unmarked database this store made (a crash between CREATE DATABASE and its marker).

    The proof: it is owned by the store's role, which carries this installation's
    marker; or, for a store reached as the service user, it is owned by that user
    and the record says the store was being created.
    """
    if not marker.exists or marker.storekeepers:
        return False
    owner = backend.database_owner(conn, target.database)
    role = backend.role_marker(conn, target.database)
    if owner == target.database and role.state == pg.ROLE and role.owner == target.owner:
        return not backend.foreign(role) and role.installation is not None
    return owner == target.spec.username and state in (CREATING, CREATED)


def provision(platform: Platform, target: Target, *, refresh: bool, force_first_time: bool) -> SyncResult:
    """Make one store exist and run its initializer, under the store's advisory lock.

    Every step is recorded before it is taken, so a kill -9 of the server or of
    this process at any point leaves nothing recorded ready that is not, and
    the next sync (or drop) finishes or repairs it.
    """
    started = time.perf_counter()
    backend = get_backend(target.backend, target.spec)
    with backend.store_lock(target.database) as conn:
        if _import_leftovers_exist(conn):  # what a cut-short import left (rare: backups is imported only then)
            from storekeeper.stores import backups

            backups.clean_leftovers(backend, conn, target, reopen=False)
        marker = backend.marker(conn, target.database)
        state = records.read_state(platform, target.setting_id, ABSENT)  # again, now that we hold the lock
        ours = unmarked_but_ours(backend, conn, target, marker, state)
        decision = decide(target, marker, state, refresh=refresh, ours=ours)
        exists = marker.exists
        action = "up to date"
        # A store kept as it is and migrated or initialized next proves its role's password by logging in,
        # so the password is set only when that login is refused (see _initialize).
        trust = decision == KEEP and bool(target.initializer or target.migrations)
        target = roles.ensure_store_role(platform, backend, conn, target, trust_recorded=trust)
        if decision in (CREATE, RECREATE):
            # Recorded before the server is touched: until its initializer has run the store is
            # not ready, and a crash from here on is finished by the next sync.
            records.bump(platform, target.setting_id, state=CREATING, initialized_at=None, last_error=None)
        if decision == RECREATE:  # the role, and its password, are kept
            engines.invalidate(target.app, target.name)
            backend.drop_database(conn, target.database, what=target.what)
            exists = False
            action = "recreated (finished an interrupted drop)" if marker.invalid or state == DROPPING else "recreated"
        if not exists:
            try:
                if target.spatial:  # with PostGIS in it, made directly or cloned from the PostGIS template
                    backend.create_spatial_database(
                        conn, target.database, what=target.what, owner=target.owner, role=target.role
                    )
                else:
                    backend.create_database(
                        conn, target.database, what=target.what, owner=target.owner, role=target.role
                    )
            except Exception as err:
                with contextlib.suppress(Exception):  # the server may be gone: the record stays "creating"
                    if not backend.marker(conn, target.database).exists:
                        # Nothing was made: forget the intent, or a later sync would take a database
                        # someone else creates under this name for a half-made store of ours.
                        records.set_state(platform, target.setting_id, state=ABSENT, last_error=pg.first_line(err))
                raise
            first_time = True
            if decision == CREATE:
                action = "created"
        else:
            first_time = force_first_time
            if not marker.allows_connections:
                # A refresh or drop was cut short after refusing connections and before dropping:
                # the data is intact, and a plain sync keeps it (only --refresh or a drop destroys it).
                backend.allow_connections(conn, target.database)
            if not marker.storekeepers or marker.owner is None or marker.installation is None:
                # Ours but unmarked (a crash), or marked before owners or installation ids: mark it as ours.
                backend.set_marker(conn, target.database, marker.state or pg.INITIALIZED, target.owner)
            adopting = marker.state == pg.ADOPTING
            if adopting:
                action = "adopted (finished an adoption that was cut short)"
            if target.role is not None and (adopting or backend.database_owner(conn, target.database) != target.role):
                # Made before stores had roles (or by a service that could not create them), or an
                # adoption was cut short (some objects may not have moved yet): hand it over.
                engines.invalidate(target.app, target.name)
                backend.adopt(conn, target.database, target.role)
                records.bump(platform, target.setting_id)
            if state != INITIALIZED and not adopting:  # an adoption is recorded only after its marker
                records.set_state(platform, target.setting_id, state=INITIALIZED, initialized_at=utcnow())
        if target.spatial and exists:  # a new spatial store got PostGIS as it was made
            try:
                backend.enable_postgis(target.database, what=target.what)
            except StorekeeperError as err:
                if state != INITIALIZED or action != "up to date":
                    records.set_state(platform, target.setting_id, state=FAILED, last_error=err.message)
                raise
        fresh = first_time and action != "up to date"

        def repair(target: Target = target) -> None:
            roles.reset_password(backend, conn, target)

        revisions: list[str] | None = None
        if target.migrations:  # brought to head before its initializer runs
            from storekeeper.stores import migrations  # Alembic, imported only for stores that use it

            try:
                revisions = migrations.upgrade_locked(backend, target, on_login_refused=repair)
            except StorekeeperError as err:
                # A new store is made again empty by the next sync; an existing one stays at its last good revision.
                failed = {"state": FAILED} if fresh else {}
                records.set_state(platform, target.setting_id, last_error=err.message, **failed)
                raise
            if revisions and action == "up to date":
                action = f"migrated to {revisions[-1]}"
        if target.initializer:
            _initialize(platform, backend, target, first_time, fresh=fresh, on_login_refused=repair)
            if action == "up to date":
                action = "initializer ran"
            elif action.startswith("migrated"):
                action += ", initializer ran"
        # Marker first, record second: a crash between them is repaired from the marker.
        if marker.state != pg.INITIALIZED or first_time or marker.installation is None:
            backend.set_marker(conn, target.database, pg.INITIALIZED, target.owner)
        records.set_state(platform, target.setting_id, state=INITIALIZED, initialized_at=utcnow(), last_error=None)
    return SyncResult.done(
        target,
        action,
        first_time=first_time if target.initializer else None,
        seconds=time.perf_counter() - started,
        revisions=revisions,
    )


def _initialize(
    platform: Platform,
    backend: pg.PostgresBackend,
    target: Target,
    first_time: bool,
    *,
    fresh: bool,
    on_login_refused: Callable[[], None] | None = None,
) -> None:
    """Run the initializer; on failure record it (``fresh``: the store is left failed, to be recreated)."""
    try:
        run_initializer(backend, target, first_time, on_login_refused=on_login_refused)
    except InitializerError as err:
        if fresh:
            records.set_state(platform, target.setting_id, state=FAILED, last_error=err.message)
        raise
    except Exception as err:
        message = f"{type(err).__name__}: {err}"
        if fresh:
            records.set_state(platform, target.setting_id, state=FAILED, last_error=message)
        else:
            records.set_state(platform, target.setting_id, last_error=message)
        retry_note = " (the store will be recreated empty and initialized with first_time=True)" if fresh else ""
        raise InitializerError(
            f'Initializer "{target.initializer}" of {target.what} raised {message}',
            hint=f"fix the initializer, then run: storekeeper syncstores {target.app}{retry_note}",
            app=target.app,
            setting=target.name,
        ) from err


def plan(platform: Platform, target: Target, *, refresh: bool, force_first_time: bool) -> SyncResult:
    """What :func:`provision` would do, decided by the same rules, changing nothing."""
    backend = get_backend(target.backend, target.spec)
    with backend.connect() as conn:
        marker = backend.marker(conn, target.database)
        state = records.read_state(platform, target.setting_id, ABSENT)
        decision = decide(
            target, marker, state, refresh=refresh, ours=unmarked_but_ours(backend, conn, target, marker, state)
        )
    if decision == CREATE:
        action, first = "would create", True
    elif decision == RECREATE:
        action, first = "would recreate", True
    else:
        action, first = "would run initializer" if target.initializer else "up to date", force_first_time
    revisions: list[str] | None = None
    if target.migrations:
        from storekeeper.stores import migrations  # Alembic, imported only for stores that use it

        try:
            status = migrations.status_locked(backend, target, exists=decision == KEEP)
        except OperationalError as err:  # the role's login refused (a sync repairs it), or the server went away
            reason = pg.first_line(getattr(err, "orig", None) or err)
            return SyncResult.done(
                target,
                f"{action}, would migrate to head (its revision cannot be read now: {reason})",
                first_time=first if target.initializer else None,
            )
        if status.problem is not None:
            raise MigrationError(status.problem, hint=status.hint, app=target.app, setting=target.name)
        revisions = [r.revision for r in status.pending]
        if revisions:
            migrate = f"would migrate to {status.head} ({len(revisions)} pending: {', '.join(revisions)})"
            action = migrate if action == "up to date" else f"{action}, {migrate}"
    return SyncResult.done(target, action, first_time=first if target.initializer else None, revisions=revisions)


class LiveStores:
    """Store names resolve to the live stores; every outcome is recorded in the platform database."""

    name = "live"
    records = True
    #: An engine is handed out only for a store whose last initialization succeeded.
    requires_initialized = True

    def database_name(self, package: str, name: str) -> str:
        """Return the store's database name: ``<package>_<name>``."""
        return database_name(package, name)

    def unrecorded_target(self, platform: Platform, session: Session, package: str, name: str) -> Target | None:
        """Live stores all have records: there is no unrecorded one."""
        return None

    def before_engine(self, platform: Platform, target: Target) -> Target:
        """Nothing to do: a live store is made by a sync or create, never on demand."""
        return target

    def provision(self, platform: Platform, target: Target, *, refresh: bool, force_first_time: bool) -> SyncResult:
        """Make the store exist and initialize it (the state machine above)."""
        return provision(platform, target, refresh=refresh, force_first_time=force_first_time)

    def create(
        self,
        platform: Platform,
        package: str,
        name: str,
        connection_name: str | None,
        *,
        spatial: bool,
        initializer: str,
        refresh: bool,
        force_first_time: bool,
        app_cls: AppClass | None,
        migrations: str = "",
    ) -> SyncResult:
        """Record a dynamic store (or find the static one of that name) and provision it."""
        if connection_name is None:
            raise StoreError(
                f'create_persistent_store("{name}", None) makes a test copy, which only works in testing mode.',
                hint="pass the name of a connection setting, e.g. create_persistent_store(name, 'primary')",
                app=package,
                setting=name,
            )
        check_name(connection_name, what="setting")
        if app_cls is not None:
            discovery.ensure_registered(platform, app_cls)
        else:
            discovery.discover(platform)

        def register() -> Target:
            with platform.session() as session:
                app = records.load_app(session, package)
                row = _register_dynamic(
                    session, app, name, connection_name, spatial=spatial, initializer=initializer, migrations=migrations
                )
                return records.make_target(platform, app, row, database_name(package, name))

        # Two processes registering the same new dynamic store race on the unique
        # (app, name) of settings: the loser tries again and finds the winner's row.
        target = retry(register, on=IntegrityError, attempts=2)
        try:
            result = provision(platform, target, refresh=refresh, force_first_time=force_first_time)
        except StorekeeperError as err:
            audit.record_now(platform, "store.create", f"{package}/{name}", "error", err.message)
            raise
        audit.record_now(platform, "store.create", f"{package}/{name}", "ok", result.action)
        return result

    def drop(self, platform: Platform, package: str, name: str) -> bool:
        """Drop the store's database (idempotent); a dynamic store's record goes with it."""
        with platform.session() as session:
            app = records.find_app(session, package)
            row = records.find_setting(app, name) if app else None
            if app is None or row is None:
                return True
            if row.kind != DATABASE:
                raise records.wrong_kind(package, name, row.kind)
            target = records.make_target(platform, app, row, database_name(package, name)) if row.service else None
            dynamic, setting_id = row.dynamic, row.id
        engines.invalidate(package, name)
        dropped = False
        if target is not None:
            backend = get_backend(target.backend, target.spec)
            try:
                with backend.store_lock(target.database) as conn:
                    marker = backend.marker(conn, target.database)
                    state = records.read_state(platform, setting_id, ABSENT)
                    if marker.exists:
                        # The same rules as a sync: never another installation's, or a database no storekeeper made.
                        decide(
                            target,
                            marker,
                            state,
                            refresh=True,
                            ours=unmarked_but_ours(backend, conn, target, marker, state),
                        )
                    # Recorded first: a drop cut short (even one PostgreSQL left invalid) is finished
                    # by the next drop or sync, and the store is never shown ready meanwhile.
                    records.bump(platform, setting_id, state=DROPPING, initialized_at=None)
                    dropped = backend.drop_database(conn, target.database, what=target.what)
                    backend.drop_role(conn, target.database, owner=target.owner)  # only one storekeeper made
            except StorekeeperError as err:
                audit.record_now(platform, "store.drop", f"{package}/{name}", "error", err.message)
                raise
        with platform.session() as session:
            setting = session.get(Setting, setting_id)
            if setting is not None:
                if dynamic:
                    session.delete(setting)
                else:
                    setting.state, setting.initialized_at = ABSENT, None
                    setting.role_name = setting.role_password = setting.role_password_pending = None
                    setting.generation = setting.generation + 1
            audit.record(session, "store.drop", f"{package}/{name}", detail="dropped" if dropped else "did not exist")
        return True

    def exists(self, platform: Platform, package: str, name: str) -> bool:
        """Ask the store's server whether its database exists."""
        with platform.session() as session:
            app = records.find_app(session, package)
            row = records.find_setting(app, name) if app else None
            if app is None or row is None or row.kind != DATABASE or row.service is None:
                return False
            target = records.make_target(platform, app, row, database_name(package, name))
        backend = get_backend(target.backend, target.spec)
        with backend.connect() as conn:
            return bool(backend.existing(conn, [target.database]))

    def extra_store_names(self, platform: Platform, package: str, known: set[str]) -> list[str]:
        """Every live store has a record, so ``stores list`` already shows it: none to add."""
        return []


def _register_dynamic(
    session: Session,
    app: App,
    name: str,
    connection_name: str,
    *,
    spatial: bool,
    initializer: str,
    migrations: str = "",
) -> Setting:
    """Return the setting row a created store provisions: a new dynamic one, or the existing one."""
    conn_row = records.connection_for_store(app, connection_name, name)
    row = records.find_setting(app, name)
    if row is None:
        row = Setting(
            name=name,
            kind=DATABASE,
            dynamic=True,
            required=False,
            description="",
            initializer=initializer,
            spatial=spatial,
            migrations=migrations,
            service_id=conn_row.service_id,
            connection_name=connection_name,
            state=ABSENT,
        )
        app.settings.append(row)
        audit.record(session, "store.register", f"{app.package}/{name}", detail=f"through {connection_name}")
    elif row.dynamic:
        row.spatial = spatial or row.spatial
        row.initializer = initializer or row.initializer
        row.migrations = migrations or row.migrations
    elif row.service_id is None:
        row.service_id = conn_row.service_id
    session.flush()
    return row


#: The live side of the store mode.
LIVE = LiveStores()
