"""Stores: sync, create, drop, check and list the databases behind apps' settings.

Life of a store (recorded on the setting, mirrored by a marker on the server;
see :mod:`storekeeper.backends.postgresql`)::

    absent --create--> created --initializer ok--> initialized
                          |  \\--initializer raised--> failed
                          '--(crash, failure)--> next sync drops it and starts again empty

``first_time`` is True only for a database that was just created empty, or
when the caller forces it (``--firsttime``). Two processes working on the same
store serialize on an advisory lock in the service's maintenance database, so
a first-time initializer runs exactly once.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from storekeeper import audit, discovery, engines
from storekeeper.backends import get_backend
from storekeeper.backends import postgresql as pg
from storekeeper.backends.names import check_name, database_name
from storekeeper.errors import (
    AppError,
    InitializerError,
    SettingError,
    StoreError,
    StorekeeperError,
)
from storekeeper.platform import Platform
from storekeeper.platform.models import (
    ABSENT,
    CONNECTION,
    CREATED,
    DATABASE,
    FAILED,
    INITIALIZED,
    App,
    Service,
    Setting,
    utcnow,
)
from storekeeper.services import service_spec
from storekeeper.testing import copies
from storekeeper.testing.names import copy_name, testing_mode

#: Stores a sync works on at once.
DEFAULT_JOBS = 4

if TYPE_CHECKING:
    from storekeeper.apps import AppBase
    from storekeeper.backends import PostgresBackend, ServiceSpec


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Target:
    """A snapshot of what is needed to provision one store, taken from the records."""

    app: str
    name: str
    setting_id: int
    database: str
    spatial: bool
    initializer: str
    backend: str
    spec: ServiceSpec

    @property
    def what(self) -> str:
        return f'store "{self.name}" of app "{self.app}" (database {self.database})'

    @property
    def owner(self) -> str:
        return f"{self.app}/{self.name}"

    def check_owner(self, marker: pg.Marker) -> None:
        """Refuse a database that storekeeper made for another app's store."""
        if marker.owner is not None and marker.owner != self.owner:
            other_app, _, other_store = marker.owner.partition("/")
            raise StoreError(
                f'Database {self.database} on {self.spec.where} belongs to store "{other_store}" of app '
                f'"{other_app}", not to {self.what}.',
                hint=f'rename store "{self.name}" of app "{self.app}" so its database name differs',
                app=self.app,
                setting=self.name,
            )


# -- records ----------------------------------------------------------------------


def _app(session: Session, package: str) -> App:
    app = session.scalar(select(App).where(App.package == package).options(selectinload(App.settings)))
    if app is None:
        raise AppError.not_found(package)
    return app


def _setting(app: App, name: str) -> Setting:
    for row in app.settings:
        if row.name == name:
            return row
    raise SettingError.not_found(app.package, name, [s.name for s in app.settings if not s.orphaned])


def _wrong_kind(app: str, name: str, kind: str) -> SettingError:
    if kind == CONNECTION:
        return SettingError(
            f'"{name}" of app "{app}" is a connection setting, not a database.',
            hint=f'use get_persistent_store_connection("{name}")',
            app=app,
            setting=name,
        )
    return SettingError(
        f'"{name}" of app "{app}" is a database setting, not a connection.',
        hint=f'use get_persistent_store_database("{name}")',
        app=app,
        setting=name,
    )


def _connection_for_store(app: App, connection_name: str, store: str) -> Setting:
    """Return the assigned connection setting a store is created through; refuse a store name it owns."""
    conn_row = _setting(app, connection_name)
    if conn_row.kind != CONNECTION:
        raise _wrong_kind(app.package, connection_name, conn_row.kind)
    if conn_row.service is None:
        raise SettingError.unassigned(app.package, connection_name)
    clash = next((s for s in app.settings if s.name == store), None)
    if clash is not None and clash.kind != DATABASE:
        raise StoreError(
            f'App "{app.package}" already has a connection setting named "{store}"; a store cannot share its name.',
            hint="choose another store name",
            app=app.package,
            setting=store,
        )
    return conn_row


def _target(platform: Platform, app: App, row: Setting) -> _Target:
    if row.service is None:
        raise SettingError.unassigned(app.package, row.name)
    return _Target(
        app=app.package,
        name=row.name,
        setting_id=row.id,
        database=_dbname(app.package, row.name),
        spatial=row.spatial,
        initializer=row.initializer,
        backend=row.service.backend,
        spec=service_spec(platform, row.service),
    )


def _set_state(platform: Platform, setting_id: int, **values: Any) -> None:
    with platform.session() as session:
        row = session.get(Setting, setting_id)
        if row is not None:
            for key, value in values.items():
                setattr(row, key, value)


def _bump(platform: Platform, setting_id: int, **values: Any) -> None:
    with platform.session() as session:
        row = session.get(Setting, setting_id)
        if row is not None:
            row.generation += 1
            for key, value in values.items():
                setattr(row, key, value)


# -- the hot path's cold side -------------------------------------------------------


def resolve(platform: Platform, app_cls: type[AppBase], name: str, kind: str) -> engines.Handle:
    """Build or revalidate the cached engine handle for an app's store or connection.

    In testing mode a store resolves to its test copy, cloned on demand.
    """
    # Cold path only: one thread builds a handle at a time, so two threads missing the
    # cache together do not build two engines (and briefly hold twice the pool).
    with engines.build_lock:
        return _resolve(platform, app_cls, name, kind)


def _resolve(platform: Platform, app_cls: type[AppBase], name: str, kind: str) -> engines.Handle:
    cache = engines.DATABASES if kind == DATABASE else engines.CONNECTIONS
    key = (app_cls.package, name)
    ttl = platform.config.engines_revalidate_seconds
    check_name(name, what="store" if kind == DATABASE else "setting")
    discovery.ensure_registered(platform, app_cls)
    testing = kind == DATABASE and testing_mode()
    target: _Target | None = None
    with platform.session() as session:
        app = _app(session, app_cls.package)
        row = next((s for s in app.settings if s.name == name), None)
        if row is None and testing and (app.package, name) in copies.TEST_DYNAMIC:
            target = _test_dynamic_target(platform, session, app.package, name)
            service, generation = session.get(Service, target.spec.id), 0
        else:
            row = row or _setting(app, name)
            if row.kind != kind:
                raise _wrong_kind(app.package, name, row.kind)
            if row.service is None:
                raise SettingError.unassigned(app.package, name)
            if kind == DATABASE and row.state != INITIALIZED and not testing:
                # Handing out an engine for a failed or half-made store would let the app
                # write data that the next sync drops when it recreates the store.
                hint = (
                    f"storekeeper syncstores {app.package}"
                    if not row.dynamic
                    else f'create it again: create_persistent_store("{name}", "{row.connection_name}")'
                )
                what = "has not been created yet" if row.state == ABSENT else (
                    f"is not initialized (its last initializer run failed: {row.last_error})"
                    if row.state == FAILED else "is not initialized yet"
                )
                raise StoreError(
                    f'Store "{name}" of app "{app.package}" {what}.',
                    hint=hint,
                    app=app.package,
                    setting=name,
                )
            if kind == DATABASE:
                target = _target(platform, app, row)
            service, generation = row.service, row.generation
        assert service is not None
        dbname = target.database if target is not None else service.maintenance_db
        token = (service.id, service.version, generation, dbname)
        handle = cache.get(key)
        if handle is not None and handle.token == token:
            handle.expires = engines.deadline(ttl)
            return handle
        spec = target.spec if target is not None else service_spec(platform, service)
    if testing and target is not None:
        copies.provision_copy(platform, target, ensure_only=True)
    backend = get_backend("postgresql", spec)
    url = backend.url(dbname)
    engine = engines.make_engine(
        spec, url, application=f"storekeeper:{app_cls.package}", idle_timeout=platform.config.engines_idle_timeout_seconds
    )
    handle = engines.Handle(engine=engine, url=url, token=token, expires=engines.deadline(ttl), service=spec.name)
    return engines.install(cache, key, handle)


def _dbname(package: str, name: str) -> str:
    """Return the database a store lives in: its test copy in testing mode."""
    return copy_name(package, name) if testing_mode() else database_name(package, name)


def _test_dynamic_target(platform: Platform, session: Session, package: str, name: str) -> _Target:
    entry = copies.TEST_DYNAMIC[(package, name)]
    svc = session.get(Service, entry.service_id)
    if svc is None:
        raise SettingError.unassigned(package, entry.connection_name)
    return _Target(
        app=package, name=name, setting_id=-1, database=copy_name(package, name), spatial=entry.spatial,
        initializer=entry.initializer, backend=svc.backend, spec=service_spec(platform, svc),
    )


# -- provisioning -------------------------------------------------------------------


def _import_initializer(target: _Target) -> Callable[..., Any]:
    path = target.initializer
    module_name, sep, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        if not sep or not module_name or not attr:
            raise ImportError(f"{path!r} is not a dotted path like 'package.module.function'")
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise InitializerError(
            f'Cannot import initializer "{path}" of {target.what}: {err}',
            hint=f"fix the initializer path of setting \"{target.name}\" in {target.app}'s persistent_store_settings()",
            app=target.app,
            setting=target.name,
        ) from None
    if not callable(func):
        raise InitializerError(
            f'Initializer "{path}" of {target.what} is not callable.',
            hint="point it at a function init(engine, first_time)",
            app=target.app,
            setting=target.name,
        )
    return func  # type: ignore[no-any-return]


_module_locks: dict[str, threading.RLock] = {}
_module_locks_guard = threading.Lock()


def _initializer_lock(path: str) -> threading.RLock:
    """Return the lock that keeps initializers of one module from running at the same time.

    Initializers of one module usually share SQLAlchemy metadata, and
    ``metadata.create_all`` (with GeoAlchemy2's table events, for one) is not
    safe to run from two threads at once; stores whose initializers live in
    different modules are still initialized in parallel.
    """
    module = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
    with _module_locks_guard:
        return _module_locks.setdefault(module, threading.RLock())  # re-entrant: an initializer may create a store


def _run_initializer(backend: PostgresBackend, target: _Target, first_time: bool) -> None:
    func = _import_initializer(target)
    from sqlalchemy import create_engine

    # One pooled connection, opened (and the dialect initialized) before waiting for the
    # module's lock; it is closed with the engine when the initializer is done.
    engine = create_engine(backend.url(target.database), pool_size=1, max_overflow=4)
    try:
        with engine.connect():
            pass
        with _initializer_lock(target.initializer):
            func(engine, first_time)
    finally:
        engine.dispose()


def _initialize_copy(backend: PostgresBackend, target: _Target, first_time: bool) -> None:
    """Run an initializer for a test copy or template; failures name the store (nothing is recorded)."""
    try:
        _run_initializer(backend, target, first_time)
    except InitializerError:
        raise
    except Exception as err:
        raise InitializerError(
            f'Initializer "{target.initializer}" of {target.what} raised {type(err).__name__}: {err}',
            hint="fix the initializer, then run the tests again (the test copy is rebuilt from scratch)",
            app=target.app,
            setting=target.name,
        ) from err


#: What provisioning does with a store's database (see _decide).
CREATE, RECREATE, KEEP = "create", "recreate", "keep"


def _decide(target: _Target, marker: pg.Marker, state: str, *, refresh: bool) -> str:
    """Decide, from the server's marker and the platform's record, what to do with the database.

    The one place the rules live: the sync and its dry run both ask here.
    Raises when the database exists but storekeeper did not make it.
    """
    if not marker.exists:
        return CREATE
    if refresh:
        return RECREATE
    if marker.state == pg.INITIALIZED or (marker.state is None and state == INITIALIZED):
        return KEEP
    if marker.state is None and state == ABSENT:
        raise StoreError(
            f"{target.what} already exists on {target.spec.where} but was not created by storekeeper.",
            hint=f"use another store name, drop that database, or replace it: "
            f"storekeeper syncstores {target.app} --database {target.name} --refresh",
            app=target.app,
            setting=target.name,
        )
    # Created but never initialized (a crash or an initializer that raised):
    # start again from empty so a first-time run never sees half-written data.
    return RECREATE


def _provision(platform: Platform, target: _Target, *, refresh: bool, force_first_time: bool) -> SyncResult:
    """Make one store exist and run its initializer, under the store's advisory lock."""
    if testing_mode():
        return copies.provision_copy(platform, target, refresh=refresh, force_first_time=force_first_time)
    started = time.perf_counter()
    backend = get_backend(target.backend, target.spec)
    with backend.store_lock(target.database) as conn:
        marker = backend.marker(conn, target.database)
        target.check_owner(marker)
        exists = marker.exists
        with platform.session() as session:  # read the record again now that we hold the lock
            row = session.get(Setting, target.setting_id)
            state = row.state if row is not None else ABSENT
        action = "up to date"
        decision = _decide(target, marker, state, refresh=refresh)
        if decision == RECREATE:
            engines.invalidate(target.app, target.name)
            backend.drop_database(conn, target.database, what=target.what)
            exists, action = False, "recreated"
        if not exists:
            # Record the intent before CREATE DATABASE: if we die between the two, the
            # next sync knows the unmarked database is ours and recreates it.
            _bump(platform, target.setting_id, state=CREATED, initialized_at=None, last_error=None)
            try:
                backend.create_database(conn, target.database, what=target.what, owner=target.owner)
            except Exception as err:
                if not backend.marker(conn, target.database).exists:
                    # Nothing was made: forget the intent, or a later sync would take a database
                    # someone else creates under this name for a half-made store of ours.
                    _set_state(platform, target.setting_id, state=ABSENT, last_error=pg._first_line(err))
                raise
            first_time = True
            if action != "recreated":
                action = "created"
        else:
            first_time = force_first_time
            if marker.state is None or marker.owner is None:  # recorded as initialized but unmarked: adopt it
                backend.set_marker(conn, target.database, pg.INITIALIZED, target.owner)
            if state != INITIALIZED:
                _set_state(platform, target.setting_id, state=INITIALIZED, initialized_at=utcnow())
        if target.spatial:
            try:
                backend.enable_postgis(target.database, what=target.what)
            except StorekeeperError as err:
                if state != INITIALIZED or action != "up to date":
                    _set_state(platform, target.setting_id, state=FAILED, last_error=err.message)
                raise
        if target.initializer:
            try:
                _run_initializer(backend, target, first_time)
            except InitializerError as err:
                if first_time and action != "up to date":
                    _set_state(platform, target.setting_id, state=FAILED, last_error=err.message)
                raise
            except Exception as err:
                message = f"{type(err).__name__}: {err}"
                if first_time and action != "up to date":
                    _set_state(platform, target.setting_id, state=FAILED, last_error=message)
                else:
                    _set_state(platform, target.setting_id, last_error=message)
                retry = (
                    " (the store will be recreated empty and initialized with first_time=True)"
                    if first_time and action != "up to date"
                    else ""
                )
                raise InitializerError(
                    f'Initializer "{target.initializer}" of {target.what} raised {message}',
                    hint=f"fix the initializer, then run: storekeeper syncstores {target.app}{retry}",
                    app=target.app,
                    setting=target.name,
                ) from err
            if action == "up to date":
                action = "initializer ran"
        # Marker first, record second: a crash between them is repaired from the marker.
        if marker.state != pg.INITIALIZED or first_time:
            backend.set_marker(conn, target.database, pg.INITIALIZED, target.owner)
        _set_state(platform, target.setting_id, state=INITIALIZED, initialized_at=utcnow(), last_error=None)
    return SyncResult(
        app=target.app,
        store=target.name,
        database=target.database,
        service=target.spec.name,
        action=action,
        ok=True,
        first_time=first_time if target.initializer else None,
        seconds=time.perf_counter() - started,
    )


def _plan(platform: Platform, target: _Target, *, refresh: bool, force_first_time: bool) -> SyncResult:
    """What _provision would do, decided by the same rules, changing nothing."""
    backend = get_backend(target.backend, target.spec)
    with backend.connect() as conn:
        marker = backend.marker(conn, target.database)
    target.check_owner(marker)
    with platform.session() as session:
        row = session.get(Setting, target.setting_id)
        state = row.state if row is not None else ABSENT
    decision = _decide(target, marker, state, refresh=refresh)
    if decision == CREATE:
        action, first = "would create", True
    elif decision == RECREATE:
        action, first = "would recreate", True
    else:
        action, first = "would run initializer" if target.initializer else "up to date", force_first_time
    return SyncResult(
        app=target.app, store=target.name, database=target.database, service=target.spec.name,
        action=action, ok=True, first_time=first if target.initializer else None,
    )


def _failure(app: str, name: str, database: str | None, service: str | None, err: StorekeeperError) -> SyncResult:
    return SyncResult(
        app=app, store=name, database=database, service=service, action="failed", ok=False,
        error=err.message, hint=err.hint,
    )


def sync_stores(
    platform: Platform,
    apps: Sequence[str] | None = None,
    *,
    refresh: bool = False,
    first_time: bool = False,
    database: str | None = None,
    dry_run: bool = False,
    on_result: Callable[[SyncResult], None] | None = None,
    jobs: int = DEFAULT_JOBS,
) -> list[SyncResult]:
    """Create missing stores and run their initializers.

    ``apps=None`` syncs every installed app. Each store's outcome is returned
    in declaration order (and passed to ``on_result`` as it finishes); one
    store's failure does not stop the others. Up to ``jobs`` stores are worked
    on at once, so initializers may run in parallel threads (``jobs=1`` runs
    them one after another).
    """
    problems = discovery.discover(platform)
    installed, _ = discovery.installed_apps()
    if apps is None:
        packages = sorted(installed)
    else:
        packages = list(dict.fromkeys(apps))
        for package in packages:
            if package not in installed:
                broken = next((p for p in problems if p.entry_point == package), None)
                if broken:
                    raise AppError(broken.message, app=package)
                raise AppError.not_found(package)
    results: list[SyncResult] = []

    def emit(result: SyncResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    work: list[tuple[str, str, _Target | StorekeeperError | None]] = []
    with platform.session() as session:
        for package in packages:
            app = _app(session, package)
            rows = [s for s in app.settings if s.kind == DATABASE and not s.orphaned]
            if database is not None:
                rows = [_setting(app, database)]
                if rows[0].kind != DATABASE:
                    raise _wrong_kind(package, database, rows[0].kind)
            else:
                rows = [s for s in rows if not s.dynamic]
            for row in rows:
                if row.service is None:
                    err = SettingError.unassigned(package, row.name)
                    work.append((package, row.name, err if row.required else None))
                    continue
                try:
                    work.append((package, row.name, _target(platform, app, row)))
                except StorekeeperError as err:
                    work.append((package, row.name, err))
    def one(package: str, name: str, item: _Target | StorekeeperError | None) -> SyncResult:
        if item is None:
            return SyncResult(app=package, store=name, database=None, service=None,
                              action="skipped (optional, no service)", ok=True)
        if isinstance(item, StorekeeperError):
            return _failure(package, name, None, None, item)
        if dry_run:  # a dry run writes nothing, not even to the audit log
            try:
                return _plan(platform, item, refresh=refresh, force_first_time=first_time)
            except StorekeeperError as err:
                return _failure(package, name, item.database, item.spec.name, err)
        record = not testing_mode()  # test copies leave no trace in the platform database
        try:
            result = _provision(platform, item, refresh=refresh, force_first_time=first_time)
        except Exception as exc:
            # One store's failure, whatever it is (a dropped connection too), never stops the others.
            err = exc if isinstance(exc, StorekeeperError) else StoreError(
                f"Syncing {item.what} failed: {type(exc).__name__}: {pg._first_line(exc)}",
                hint=f"storekeeper services test {item.spec.name}; then run the sync again",
            )
            if record:
                with contextlib.suppress(Exception):
                    audit.record_now(platform, "store.sync", f"{package}/{name}", "error", err.message)
            return _failure(package, name, item.database, item.spec.name, err)
        if record:
            audit.record_now(platform, "store.sync", f"{package}/{name}", "ok", result.action)
        return result

    workers = max(1, min(jobs, len(work)))
    if workers == 1:
        for entry in work:
            emit(one(*entry))
        return results
    # Stores are independent (each has its own advisory lock), and most of a store's
    # time is spent waiting on its server: work on several at once.
    done: dict[int, SyncResult] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="storekeeper-sync") as pool:
        futures = {pool.submit(one, *entry): i for i, entry in enumerate(work)}
        for future in as_completed(futures):
            result = future.result()
            done[futures[future]] = result
            if on_result is not None:
                on_result(result)
    return [done[i] for i in range(len(work))]


def create_store(
    platform: Platform,
    package: str,
    name: str,
    connection_name: str | None,
    *,
    spatial: bool = False,
    initializer: str = "",
    refresh: bool = False,
    force_first_time: bool = False,
    app_cls: type[AppBase] | None = None,
) -> SyncResult:
    """Create a store at run time (idempotent) through a connection setting, and initialize it.

    A name that matches a declared database setting provisions that static
    store; any other name makes a dynamic store on the connection's service.
    """
    check_name(package, what="app package")
    database_name(package, name)
    if testing_mode():
        return _create_test_store(
            platform, package, name, connection_name, spatial=spatial, initializer=initializer,
            refresh=refresh, force_first_time=force_first_time, app_cls=app_cls,
        )
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
    # Two processes registering the same new dynamic store race on the unique
    # (app, name) of settings: the loser retries once and finds the winner's row.
    for attempt in range(2):
        try:
            with platform.session() as session:
                app = _app(session, package)
                conn_row = _connection_for_store(app, connection_name, name)
                row = next((s for s in app.settings if s.name == name), None)
                if row is None:
                    row = Setting(
                        name=name, kind=DATABASE, dynamic=True, required=False, description="",
                        initializer=initializer, spatial=spatial, service_id=conn_row.service_id,
                        connection_name=connection_name, state=ABSENT,
                    )
                    app.settings.append(row)
                    audit.record(session, "store.register", f"{package}/{name}", detail=f"through {connection_name}")
                elif row.dynamic:
                    row.spatial = spatial or row.spatial
                    row.initializer = initializer or row.initializer
                elif row.service_id is None:
                    row.service_id = conn_row.service_id
                session.flush()
                target = _target(platform, app, row)
            break
        except IntegrityError:
            if attempt:
                raise
    try:
        result = _provision(platform, target, refresh=refresh, force_first_time=force_first_time)
    except StorekeeperError as err:
        audit.record_now(platform, "store.create", f"{package}/{name}", "error", err.message)
        raise
    audit.record_now(platform, "store.create", f"{package}/{name}", "ok", result.action)
    return result


def _create_test_store(
    platform: Platform,
    package: str,
    name: str,
    connection_name: str | None,
    *,
    spatial: bool,
    initializer: str,
    refresh: bool,
    force_first_time: bool,
    app_cls: type[AppBase] | None,
) -> SyncResult:
    """create_store in testing mode: make test copies only; real stores and records stay untouched."""
    if app_cls is not None:
        discovery.ensure_registered(platform, app_cls)
    else:
        discovery.discover(platform)
    with platform.session() as session:
        app = _app(session, package)
        row = next((s for s in app.settings if s.name == name), None)
        if connection_name is None:
            if row is None or row.kind != DATABASE:
                raise StoreError(
                    f'create_persistent_store("{name}", None) makes a test copy of an existing store, '
                    f'but app "{package}" has no store "{name}".',
                    hint=f"storekeeper app-settings list {package}  (or pass a connection setting to make a new store)",
                    app=package,
                    setting=name,
                )
            target = _target(platform, app, row)
        else:
            check_name(connection_name, what="setting")
            conn_row = _connection_for_store(app, connection_name, name)
            if row is not None and row.service is not None:
                target = _target(platform, app, row)
            else:
                copies.TEST_DYNAMIC[(package, name)] = copies.DynamicTestStore(
                    service_id=conn_row.service.id, connection_name=connection_name, spatial=spatial,
                    initializer=initializer or (row.initializer if row is not None else ""),
                )
                target = _test_dynamic_target(platform, session, package, name)
    return copies.provision_copy(platform, target, refresh=refresh, force_first_time=force_first_time)


def _test_target(platform: Platform, package: str, name: str) -> _Target | None:
    """Return the test-copy target of an app's store in testing mode, or None if there is none."""
    with platform.session() as session:
        if (package, name) in copies.TEST_DYNAMIC:
            return _test_dynamic_target(platform, session, package, name)
        app = session.scalar(select(App).where(App.package == package).options(selectinload(App.settings)))
        row = next((s for s in app.settings if s.name == name), None) if app else None
        if row is None or row.kind != DATABASE or row.service is None:
            return None
        return _target(platform, app, row)  # type: ignore[arg-type]


def drop_store(platform: Platform, package: str, name: str) -> bool:
    """Drop a store's database (idempotent); a dynamic store's record goes with it."""
    check_name(package, what="app package")
    check_name(name, what="store")
    if testing_mode():
        target = _test_target(platform, package, name)
        if target is not None:
            copies.drop_copy(target)
        copies.TEST_DYNAMIC.pop((package, name), None)
        return True
    with platform.session() as session:
        app = session.scalar(select(App).where(App.package == package).options(selectinload(App.settings)))
        row = next((s for s in app.settings if s.name == name), None) if app else None
        if row is None:
            return True
        if row.kind != DATABASE:
            raise _wrong_kind(package, name, row.kind)
        target = _target(platform, app, row) if row.service is not None else None  # type: ignore[arg-type]
        dynamic, setting_id = row.dynamic, row.id
    engines.invalidate(package, name)
    dropped = False
    if target is not None:
        backend = get_backend(target.backend, target.spec)
        try:
            with backend.store_lock(target.database) as conn:
                target.check_owner(backend.marker(conn, target.database))
                dropped = backend.drop_database(conn, target.database, what=target.what)
        except StorekeeperError as err:
            audit.record_now(platform, "store.drop", f"{package}/{name}", "error", err.message)
            raise
    with platform.session() as session:
        row = session.get(Setting, setting_id)
        if row is not None:
            if dynamic:
                session.delete(row)
            else:
                row.state, row.initialized_at, row.generation = ABSENT, None, row.generation + 1
        audit.record(session, "store.drop", f"{package}/{name}", detail="dropped" if dropped else "did not exist")
    return True


def store_exists(platform: Platform, package: str, name: str) -> bool:
    """Return True if the store's database exists on its service (the server is asked)."""
    check_name(name, what="store")
    if testing_mode():
        test_target = _test_target(platform, package, name)
        if test_target is None:
            return False
        backend = get_backend(test_target.backend, test_target.spec)
        with backend.connect() as conn:
            return bool(backend.existing(conn, [test_target.database]))
    with platform.session() as session:
        app = session.scalar(select(App).where(App.package == package).options(selectinload(App.settings)))
        row = next((s for s in app.settings if s.name == name), None) if app else None
        if row is None or row.kind != DATABASE or row.service is None:
            return False
        target = _target(platform, app, row)  # type: ignore[arg-type]
    backend = get_backend(target.backend, target.spec)
    with backend.connect() as conn:
        return bool(backend.existing(conn, [target.database]))


def list_stores(
    platform: Platform, package: str | None = None, *, check_server: bool = True, discover: bool = True
) -> list[StoreInfo]:
    """Return every store (of one app, or all), asking each service which databases exist."""
    if discover:
        discovery.discover(platform)
    with platform.session() as session:
        stmt = select(App).options(selectinload(App.settings).selectinload(Setting.service)).order_by(App.package)
        if package is not None:
            stmt = stmt.where(App.package == package)
        apps = list(session.scalars(stmt))
        if package is not None and not apps:
            raise AppError.not_found(package)
        rows = [(a, s) for a in apps for s in a.settings if s.kind == DATABASE]
        by_service: dict[int, tuple[Service, list[str]]] = {}
        for app, s in rows:
            if s.service is not None:
                by_service.setdefault(s.service.id, (s.service, []))[1].append(_dbname(app.package, s.name))
        specs = {sid: service_spec(platform, svc) for sid, (svc, _) in by_service.items()}
        names = {sid: dbs for sid, (_, dbs) in by_service.items()}
        snapshot = [
            (app.package, s.name, s.dynamic, s.service_id, s.service.name if s.service else None, s.spatial,
             s.initializer, s.state, s.orphaned or not app.installed, s.last_error)
            for app, s in rows
        ]
    sizes: dict[int, dict[str, int] | None] = {}
    if check_server:
        for sid, spec in specs.items():
            backend = get_backend("postgresql", spec)
            try:
                with backend.connect() as conn:
                    sizes[sid] = backend.sizes(conn, names[sid])
            except StorekeeperError:
                sizes[sid] = None
    result = []
    for pkg, name, dynamic, sid, service, spatial, initializer, state, orphaned, last_error in snapshot:
        dbname = _dbname(pkg, name)
        found = sizes.get(sid) if sid is not None else None
        exists = None if sid is None or found is None else dbname in found
        if sid is None:
            exists = False
        result.append(
            StoreInfo(
                app=pkg, name=name, kind="dynamic" if dynamic else "static", service=service, database=dbname,
                spatial=spatial, initializer=initializer, state=state, initialized=state == INITIALIZED,
                exists=exists, orphaned=orphaned, last_error=last_error,
                size_bytes=found.get(dbname) if found else None,
            )
        )
    return result


def existing_store_names(
    platform: Platform, app_cls: type[AppBase], *, dynamic_only: bool = False, static_only: bool = False
) -> list[str]:
    """Return the short names of an app's stores that exist on their servers."""
    discovery.ensure_registered(platform, app_cls)
    stores = [
        s
        for s in list_stores(platform, app_cls.package, discover=False)
        if s.exists and not (s.orphaned and s.kind == "static")
    ]
    names = [s.name for s in stores]
    kinds = {s.name: s.kind for s in stores}
    if testing_mode():  # dynamic stores made in testing mode are known to this process only
        for pkg, name in list(copies.TEST_DYNAMIC):
            if pkg == app_cls.package and name not in kinds and store_exists(platform, pkg, name):
                names.append(name)
                kinds[name] = "dynamic"
    if dynamic_only:
        names = [n for n in names if kinds[n] == "dynamic"]
    if static_only:
        names = [n for n in names if kinds[n] == "static"]
    return names


def connection_names(platform: Platform, app_cls: type[AppBase]) -> list[str]:
    """Return the names of an app's connection settings that have a service assigned."""
    discovery.ensure_registered(platform, app_cls)
    with platform.session() as session:
        app = _app(session, app_cls.package)
        return [s.name for s in app.settings if s.kind == CONNECTION and s.service_id is not None and not s.orphaned]
