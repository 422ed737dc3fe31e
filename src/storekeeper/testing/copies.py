"""Test copies: stores as they look right after a first-time initialization, made fast.

Each store's initializer runs once, with ``first_time=True``, into a
*template* database; every test copy is then cloned from it with
``CREATE DATABASE … TEMPLATE …``, which copies files instead of re-running
the initializer. A template records a hash of the code that made it (the
initializer's package sources, the initializer path, ``spatial`` and the
storekeeper version) and is rebuilt when that changes, so it is never stale.

Templates refuse connections once built (``ALLOW_CONNECTIONS false``): a
clone fails when anyone is connected to its template, and nobody can be.

:data:`TESTING` is testing mode's side of the core's one seam
(:class:`storekeeper.stores.mode.StoreMode`): the core loads it by name when
``STOREKEEPER_TESTING=1``. It uses only the core's public functions.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import importlib.util
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from sqlalchemy.orm import Session

from storekeeper import __version__, discovery, engines
from storekeeper.backends import PostgresBackend, ServiceSpec, get_backend
from storekeeper.backends import postgresql as pg
from storekeeper.backends.names import check_name
from storekeeper.declaration import AppClass
from storekeeper.errors import SettingError, StoreError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import DATABASE, Service
from storekeeper.retry import retry
from storekeeper.services import service_spec, service_specs
from storekeeper.stores import initializers, records
from storekeeper.stores.initializers import initialize_unrecorded
from storekeeper.stores.model import SyncResult, Target
from storekeeper.testing.names import COPY_REGEX, TEMPLATE_REGEX, copy_name, discard_name, spare_name, template_name

#: How CREATE DATABASE copies a template (PostgreSQL 15+). Measured by bench/copies.py
#: on a 10,000-row store with fsync on: WAL_LOG 129-170 ms, FILE_COPY 161-208 ms (FILE_COPY
#: forces two checkpoints per clone), so WAL_LOG it is; see BENCHMARKS.md.
CLONE_STRATEGY = "WAL_LOG"
TEMPLATE_MARKER = "template:"
#: How long a clone waits for a template another connection holds.
IN_USE_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class DynamicTestStore:
    """A dynamic store created in testing mode: known to this process only, never recorded."""

    service_id: int
    connection_name: str
    spatial: bool
    initializer: str
    migrations: str = ""


#: (package, name) -> dynamic stores made by create_persistent_store in testing mode.
TEST_DYNAMIC: dict[tuple[str, str], DynamicTestStore] = {}
_rebuilt: set[str] = set()
_lock = threading.Lock()
#: Set by the pytest plugin's --rebuild-templates (see set_rebuild_templates).
_options = {"rebuild_templates": False}


def set_rebuild_templates(on: bool) -> None:
    """Rebuild each template once in this process, even when its code hash matches (``--rebuild-templates``)."""
    with _lock:
        _options["rebuild_templates"] = on


def reset() -> None:
    """Forget this process's testing state: dynamic test stores, rebuilt templates, options (tests)."""
    with _lock:
        TEST_DYNAMIC.clear()
        _rebuilt.clear()
        _roles_ready.clear()
        _role_capable.clear()
        _options["rebuild_templates"] = False


def code_hash(initializer: str, spatial: bool, migrations: str = "") -> str:
    """Return the hash that ties a template to the code that built it.

    With ``migrations`` (a store's script directory), its head revision and its
    revision files are part of it: a new or edited revision rebuilds the template.
    """
    h = hashlib.blake2b(digest_size=10)
    h.update(f"{__version__}|{initializer}|{spatial}".encode())
    if migrations:
        from storekeeper.stores import migrations as schema  # Alembic: only for stores that use it

        folder = schema.resolve_location(migrations, app="", store="")
        h.update(f"|{migrations}|{','.join(schema.heads_of(folder))}".encode())
        for f in sorted(folder.rglob("*.py")):
            if "__pycache__" not in f.parts:
                h.update(str(f.relative_to(folder)).encode())
                h.update(f.read_bytes())
    # The app's own package (inside its namespace for a Tethys-style app), as the initializer is found.
    module = initializers.module_of(initializer) if initializer else None
    spec = importlib.util.find_spec(discovery.package_root(module)) if module else None
    if spec is not None:
        roots = [Path(p) for p in (spec.submodule_search_locations or [])]
        # The app's own tests do not shape its stores: editing them must not rebuild templates.
        files = sorted(
            f
            for root in roots
            for f in root.rglob("*.py")
            if "__pycache__" not in f.parts and "tests" not in f.relative_to(root).parts
        )
        if not roots and spec.origin:
            files = [Path(spec.origin)]
        for f in files:
            h.update(str(f.name).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _clone(
    conn: psycopg.Connection[Any], template: str, copy: str, *, strategy: str | None, what: str, role: str | None
) -> None:
    query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(copy), sql.Identifier(template))
    if strategy and conn.info.server_version >= 150000:
        query = sql.SQL("{} STRATEGY {}").format(query, sql.SQL(strategy))
    if role is not None:
        query = sql.SQL("{} OWNER {}").format(query, sql.Identifier(role))

    def in_use(_: BaseException) -> StoreError:
        return StoreError(
            f'Cannot clone {what}: its template "{template}" is in use by another connection.',
            hint=f"close sessions on {template} (pg_stat_activity), or rebuild it: storekeeper test --clean",
        )

    # A shared lock on the template's key: clones run side by side, but never while
    # another process (holding the exclusive lock in ensure_template) rebuilds it.
    conn.execute("SELECT pg_advisory_lock_shared(%s)", (pg.lock_key(template),))
    try:
        # Another connection may still sit in the template (e.g. a build that has not let go yet).
        retry(
            lambda: conn.execute(query),
            on=pgerrors.ObjectInUse,
            timeout=IN_USE_RETRY_SECONDS,
            delay=0.05,
            give_up=in_use,
        )
    finally:
        conn.execute("SELECT pg_advisory_unlock_shared(%s)", (pg.lock_key(template),))
    if role is not None:
        PostgresBackend.restrict_connect(conn, copy, role)


# -- test roles: one login role per store owns its template and every copy ----------------

#: Services (host, port, user) this process asked whether their user may create roles.
_role_capable: dict[tuple[str, int, str], bool] = {}
#: Test roles this process has made sure exist with their password.
_roles_ready: set[tuple[tuple[str, int, str], str, str]] = set()


def _service_key(target: Target) -> tuple[str, int, str]:
    return (target.spec.host, target.spec.port, target.spec.username)


def test_login(platform: Platform, target: Target) -> tuple[str, str]:
    """Return the login role (and its password) of a store's template and test copies.

    The role is named like the template (``tpl_<package>_<store>``), so every copy,
    on every xdist worker, is owned by the role that owns the objects cloned into
    it. Its password is derived from the home's secret key, so nothing is recorded.
    """
    role = template_name(target.app, target.name)
    digest = hmac.new(platform.config.fernet_key(), f"storekeeper-test-role:{role}".encode(), "sha256").digest()
    return role, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _reach(
    platform: Platform, backend: PostgresBackend, conn: psycopg.Connection[Any] | None, target: Target
) -> Target:
    """Return ``target`` reached as its test role (made if needed), or as the service user when roles cannot be made."""
    key = _service_key(target)
    capable = _role_capable.get(key)
    role, password = test_login(platform, target)
    if capable is True and (key, role, password) in _roles_ready:
        return target.as_role(role, password)
    if capable is False:
        return target.as_role(None, None)
    if capable is None:
        with contextlib.ExitStack() as stack:
            conn = conn if conn is not None else stack.enter_context(backend.connect())
            capable = _role_capable[key] = backend.can_create_roles(conn)
    if not capable:
        return target.as_role(None, None)
    # xdist workers share the test role: one at a time changes it (the catalog refuses concurrent updates).
    with backend.store_lock(f"role:{role}") as locked:
        backend.ensure_role(locked, role, password, owner=target.owner, what=f"the test copies of {target.what}")
    _roles_ready.add((key, role, password))
    return target.as_role(role, password)


def _wanted(target: Target) -> str:
    """Return the marker an up-to-date template of this store carries (who owns it is part of it)."""
    return (
        TEMPLATE_MARKER
        + code_hash(target.initializer, target.spatial, target.migrations)
        + (":role" if target.role else "")
    )


def ensure_template(backend: PostgresBackend, target: Target, *, rebuild: bool = False) -> str:
    """Build a store's template unless an up-to-date one exists; return its name."""
    template = template_name(target.app, target.name)
    want = _wanted(target)
    with _lock:
        force = (rebuild or _options["rebuild_templates"]) and template not in _rebuilt
    with backend.store_lock(template) as conn:
        marker = backend.marker(conn, template)
        exists = marker.exists
        what = f'template of store "{target.name}" of app "{target.app}" (database {template})'
        if backend.foreign(marker):
            raise backend.foreign_error(f"database {template}", marker, what)
        if exists and marker.state == want and not force and not marker.invalid:
            return template
        if exists:
            backend.drop_database(conn, template, what=what)
        if target.spatial:  # PostGIS made directly, or cloned from the service's PostGIS template
            backend.create_spatial_database(conn, template, what=what, owner=target.owner, role=target.role)
        else:
            backend.create_database(conn, template, what=what, owner=target.owner, role=target.role)
        try:
            if target.migrations:  # built at head, then initialized
                from storekeeper.stores import migrations as schema  # Alembic: only for stores that use it

                schema.upgrade_locked(backend, target.at(template))
            if target.initializer:
                _initialize(backend, target.at(template), True)
        except BaseException:
            backend.drop_database(conn, template, what=what)  # never leave a half-built template behind
            raise
        backend.set_marker(conn, template, want, target.owner)
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(template)))
    with _lock:
        _rebuilt.add(template)
    return template


def _initialize(backend: PostgresBackend, target: Target, first_time: bool) -> None:
    initialize_unrecorded(
        backend,
        target,
        first_time,
        retry_hint="fix the initializer, then run the tests again (the test copy is rebuilt from scratch)",
    )


def provision_copy(
    platform: Platform,
    target: Target,
    *,
    refresh: bool = False,
    force_first_time: bool = False,
    fresh: bool = False,
    ensure_only: bool = False,
    strategy: str | None = CLONE_STRATEGY,
) -> SyncResult:
    """Make a store's test copy exist (cloned from its template), as sync and create do for real stores.

    ``fresh`` (or ``refresh``) replaces an existing copy with a new clone;
    ``ensure_only`` leaves an existing copy alone without running its initializer.
    """
    started = time.perf_counter()
    backend = get_backend(target.backend, target.spec)
    dynamic_only = (target.app, target.name) in TEST_DYNAMIC
    action = "up to date"
    first_time: bool | None = None
    with backend.store_lock(target.database) as conn:
        target = _reach(platform, backend, conn, target)
        marker = backend.marker(conn, target.database)
        target.check_owner(marker)
        exists = marker.exists
        # A copy its test role does not own was made before test roles: it is replaced.
        stale = exists and target.role is not None and backend.database_owner(conn, target.database) != target.role
        if exists and (fresh or refresh or stale or marker.invalid or marker.state != pg.INITIALIZED):
            engines.invalidate(target.app, target.name)
            if not (fresh and not dynamic_only and _discard_in_background(conn, backend, target)):
                backend.drop_database(conn, target.database, what=target.what)
            exists = False
        if not exists:
            if dynamic_only:
                # A store this test run made up: nothing to template, initialize it directly.
                if target.spatial:
                    backend.create_spatial_database(
                        conn, target.database, what=target.what, owner=target.owner, role=target.role
                    )
                else:
                    backend.create_database(
                        conn, target.database, what=target.what, owner=target.owner, role=target.role
                    )
                if target.migrations:
                    from storekeeper.stores import migrations as schema  # Alembic: only for stores that use it

                    schema.upgrade_locked(backend, target)
                if target.initializer:
                    _initialize(backend, target, True)
                first_time = True if target.initializer else None
            else:
                template = template_name(target.app, target.name)
                made_from = backend.marker(conn, template).state
                spare = _spares.get(target.database)
                if not (fresh and spare is not None and spare[1] == made_from == _wanted(target)):
                    # No spare made from an up-to-date template: check (and maybe build) the template.
                    template = ensure_template(backend, target)
                    made_from = backend.marker(conn, template).state
                if not (fresh and _take_spare(conn, backend, target, made_from)):
                    _clone(conn, template, target.database, strategy=strategy, what=target.what, role=target.role)
                if fresh:
                    _schedule_spare(backend, target, template, made_from, strategy)
            backend.set_marker(conn, target.database, pg.INITIALIZED, target.owner)
            action = "copied" if not dynamic_only else "created"
        elif not ensure_only and target.initializer:
            _initialize(backend, target, force_first_time)
            first_time, action = force_first_time, "initializer ran"
    return SyncResult.done(target, action, first_time=first_time, seconds=time.perf_counter() - started)


def existing_copy(platform: Platform, package: str, name: str) -> Target | None:
    """Return the target of a store's test copy, reached as its test role, when the copy exists (else None).

    ``storekeeper stores revision --autogenerate`` compares the models with it, so the
    live store is not needed for that.
    """
    target = TESTING.target(platform, package, name)
    if target is None:
        return None
    backend = get_backend(target.backend, target.spec)
    with backend.connect() as conn:
        if not backend.marker(conn, target.database).exists:
            return None
    return _reach(platform, backend, None, target)


# -- spares: the next fresh copy, cloned in the background while a test runs ----------------

_spare_pool: ThreadPoolExecutor | None = None
#: copy database name -> (clone in progress, template marker it is cloned from, spare name, backend)
_spares: dict[str, tuple[Future[None], str | None, str, PostgresBackend]] = {}


def _make_spare(
    backend: PostgresBackend, template: str, spare: str, owner: str, strategy: str | None, role: str | None
) -> None:
    with backend.store_lock(spare) as conn:
        backend.drop_database(conn, spare, what=f"spare copy {spare}")
        _clone(conn, template, spare, strategy=strategy, what=f"spare copy {spare}", role=role)
        backend.set_marker(conn, spare, pg.INITIALIZED, owner)


def _schedule_spare(
    backend: PostgresBackend, target: Target, template: str, made_from: str | None, strategy: str | None
) -> None:
    global _spare_pool
    if _spare_pool is None:
        _spare_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storekeeper-spare")
    spare = spare_name(target.app, target.name)
    future = _spare_pool.submit(_make_spare, backend, template, spare, target.owner, strategy, target.role)
    _spares[target.database] = (future, made_from, spare, backend)


def _take_spare(conn: psycopg.Connection[Any], backend: PostgresBackend, target: Target, made_from: str | None) -> bool:
    """Rename a ready spare into place as the fresh copy; False when there is none to use."""
    entry = _spares.pop(target.database, None)
    if entry is None:
        return False
    future, spare_from, spare, _ = entry
    try:
        future.result(timeout=300)
    except Exception:
        return False  # the background clone failed: clone in the foreground, which reports why
    if spare_from != made_from:  # the template was rebuilt since: the spare is stale
        backend.drop_database(conn, spare, what=f"spare copy {spare}")
        return False
    try:
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(spare), sql.Identifier(target.database))
        )
    except pgerrors.InvalidCatalogName:
        return False  # dropped behind our back (another run's cleanup): clone in the foreground
    return True


def wait_for_spare(target: Target, timeout: float = 300) -> None:
    """Wait until the spare of a store's next fresh copy is cloned (benchmarks measure the swap alone)."""
    entry = _spares.get(target.database)
    if entry is not None:
        entry[0].result(timeout=timeout)


_discards: dict[str, Future[None]] = {}


def _discard_in_background(conn: psycopg.Connection[Any], backend: PostgresBackend, target: Target) -> bool:
    """Rename the old copy out of the way and drop it in the background; False if it cannot be renamed now."""
    trash = discard_name(target.app, target.name)
    previous = _discards.pop(trash, None)
    if previous is not None:
        with contextlib.suppress(Exception):
            previous.result(timeout=300)
    ident = sql.Identifier(target.database)
    try:
        # Nobody may connect while we move it; sessions still open (a test's leftovers) are ended.
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(ident))
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (target.database,),
        )
        backend.drop_database(conn, trash, what=f"discarded copy {trash}")
        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(ident, sql.Identifier(trash)))
    except (psycopg.Error, StoreError):
        return False  # e.g. a terminated session has not quite gone yet: drop in the foreground
    global _spare_pool
    if _spare_pool is None:
        _spare_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storekeeper-spare")
    _discards[trash] = _spare_pool.submit(_drop_quietly, backend, trash)
    return True


def _drop_quietly(backend: PostgresBackend, name: str) -> None:
    with backend.connect() as conn:
        backend.drop_database(conn, name, what=f"discarded copy {name}")


def drop_spares() -> list[str]:
    """Wait for background clones and drop every spare this process made."""
    dropped = []
    while _discards:
        with contextlib.suppress(Exception):
            _discards.popitem()[1].result(timeout=300)
    while _spares:
        _, (future, _, spare, backend) = _spares.popitem()
        with contextlib.suppress(Exception):
            future.result(timeout=300)
        with contextlib.suppress(Exception), backend.store_lock(spare) as conn:
            if backend.drop_database(conn, spare, what=f"spare copy {spare}"):
                dropped.append(spare)
    return dropped


def drop_copy(target: Target) -> bool:
    """Drop a store's test copy (idempotent)."""
    backend = get_backend(target.backend, target.spec)
    engines.invalidate(target.app, target.name)
    with backend.store_lock(target.database) as conn:
        return backend.drop_database(conn, target.database, what=target.what)


def clean(specs: list[ServiceSpec], *, templates: bool = False, packages: list[str] | None = None) -> list[str]:
    """Drop leftover test copies (and templates) this installation made on these services.

    Only databases whose names follow the test-copy/template pattern *and* that
    carry the marker of this installation are touched.
    """
    dropped: list[str] = []
    patterns = [COPY_REGEX] + ([TEMPLATE_REGEX] if templates else [])
    for spec in {s.id: s for s in specs}.values():
        backend = get_backend("postgresql", spec)
        with backend.connect() as conn:
            rows = conn.execute(
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname ~ ANY(%s) AND shobj_description(oid, 'pg_database') LIKE %s",
                (patterns, pg.MARKER_PREFIX + "%"),
            ).fetchall()
            for name, comment in rows:
                marker = pg.Marker.read((comment,))
                if marker.installation is None or backend.foreign(marker):
                    continue  # another installation's, or made before installation ids: not ours to say
                app = (marker.owner or "").partition("/")[0]
                if packages and app not in packages:
                    continue
                backend.drop_database(conn, name, what=f"test database {name}")
                dropped.append(name)
            if templates:
                _drop_test_roles(backend, conn, packages)
    for key in list(TEST_DYNAMIC):
        if packages is None or key[0] in packages:
            TEST_DYNAMIC.pop(key, None)
    return dropped


def _drop_test_roles(backend: PostgresBackend, conn: psycopg.Connection[Any], packages: list[str] | None) -> None:
    """Drop the test roles storekeeper made (``tpl_…``, marked), once their templates and copies are gone."""
    rows = conn.execute(
        "SELECT rolname, shobj_description(oid, 'pg_authid') FROM pg_roles "
        "WHERE rolname ~ %s AND shobj_description(oid, 'pg_authid') LIKE %s",
        (TEMPLATE_REGEX, f"{pg.MARKER_PREFIX}{pg.ROLE} %"),
    ).fetchall()
    for name, comment in rows:
        marker = pg.Marker.read((comment,))
        owner = marker.owner or ""
        if marker.installation is None or backend.foreign(marker):
            continue  # another installation's, or made before installation ids
        if packages and owner.partition("/")[0] not in packages:
            continue
        with contextlib.suppress(StoreError):  # still owns a copy another run is using: left for later
            backend.drop_role(conn, name, owner=owner)
    _roles_ready.clear()


def clean_all(platform: Platform, *, templates: bool = False, packages: list[str] | None = None) -> list[str]:
    """Drop leftover test copies (and templates) on every registered service that can be reached."""
    dropped: list[str] = []
    for spec in service_specs(platform):
        try:
            dropped += clean([spec], templates=templates, packages=packages)
        except StorekeeperError:
            continue  # an unreachable service has nothing we can clean now
    return dropped


class TestCopies:
    """Testing mode: store names resolve to test copies; nothing is recorded in the platform database."""

    name = "testing"
    records = False
    #: A test copy is cloned on demand, whatever the live store's state.
    requires_initialized = False

    def database_name(self, package: str, name: str) -> str:
        """Return the store's test copy (per xdist worker)."""
        return copy_name(package, name)

    def unrecorded_target(self, platform: Platform, session: Session, package: str, name: str) -> Target | None:
        """Return the target of a dynamic store this process made in testing mode, or None."""
        entry = TEST_DYNAMIC.get((package, name))
        if entry is None:
            return None
        svc = session.get(Service, entry.service_id)
        if svc is None:
            raise SettingError.unassigned(package, entry.connection_name)
        return Target(
            app=package,
            name=name,
            setting_id=-1,
            database=copy_name(package, name),
            spatial=entry.spatial,
            initializer=entry.initializer,
            migrations=entry.migrations,
            backend=svc.backend,
            spec=service_spec(platform, svc),
        )

    def target(self, platform: Platform, package: str, name: str) -> Target | None:
        """Return the test-copy target of an app's store, or None when it has none (no service)."""
        with platform.session() as session:
            found = self.unrecorded_target(platform, session, package, name)
            if found is not None:
                return found
            app = records.find_app(session, package)
            row = records.find_setting(app, name) if app else None
            if app is None or row is None or row.kind != DATABASE or row.service is None:
                return None
            return records.make_target(platform, app, row, copy_name(package, name))

    def before_engine(self, platform: Platform, target: Target) -> Target:
        """Clone the test copy if it does not exist yet (never re-runs its initializer); reach it as its test role."""
        provision_copy(platform, target, ensure_only=True)
        return _reach(platform, get_backend(target.backend, target.spec), None, target)

    def provision(self, platform: Platform, target: Target, *, refresh: bool, force_first_time: bool) -> SyncResult:
        """Make the store's test copy exist, as a sync does for a live store."""
        return provision_copy(platform, target, refresh=refresh, force_first_time=force_first_time)

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
        """Make test copies only; live stores and the platform records stay untouched."""
        if app_cls is not None:
            discovery.ensure_registered(platform, app_cls)
        else:
            discovery.discover(platform)
        with platform.session() as session:
            app = records.load_app(session, package)
            row = records.find_setting(app, name)
            if connection_name is None:
                if row is None or row.kind != DATABASE:
                    raise StoreError(
                        f'create_persistent_store("{name}", None) makes a test copy of an existing store, '
                        f'but app "{package}" has no store "{name}".',
                        hint=f"storekeeper app-settings list {package}  (or pass a connection setting to make a new store)",
                        app=package,
                        setting=name,
                    )
                target = records.make_target(platform, app, row, copy_name(package, name))
            else:
                check_name(connection_name, what="setting")
                conn_row = records.connection_for_store(app, connection_name, name)
                if row is not None and row.service is not None:
                    target = records.make_target(platform, app, row, copy_name(package, name))
                else:
                    assert conn_row.service is not None  # connection_for_store checked it
                    TEST_DYNAMIC[(package, name)] = DynamicTestStore(
                        service_id=conn_row.service.id,
                        connection_name=connection_name,
                        spatial=spatial,
                        initializer=initializer or (row.initializer if row is not None else ""),
                        migrations=migrations or (row.migrations if row is not None else ""),
                    )
                    found = self.unrecorded_target(platform, session, package, name)
                    assert found is not None
                    target = found
        return provision_copy(platform, target, refresh=refresh, force_first_time=force_first_time)

    def drop(self, platform: Platform, package: str, name: str) -> bool:
        """Drop the store's test copy (idempotent)."""
        target = self.target(platform, package, name)
        if target is not None:
            drop_copy(target)
        TEST_DYNAMIC.pop((package, name), None)
        return True

    def exists(self, platform: Platform, package: str, name: str) -> bool:
        """Ask the server whether the store's test copy exists."""
        target = self.target(platform, package, name)
        if target is None:
            return False
        backend = get_backend(target.backend, target.spec)
        with backend.connect() as conn:
            return bool(backend.existing(conn, [target.database]))

    def extra_store_names(self, platform: Platform, package: str, known: set[str]) -> list[str]:
        """Return the dynamic stores this process made in testing mode that exist (they have no record)."""
        return [
            name
            for pkg, name in list(TEST_DYNAMIC)
            if pkg == package and name not in known and self.exists(platform, pkg, name)
        ]


#: Testing mode's side of the store-mode seam (loaded by name by storekeeper.stores.mode).
TESTING = TestCopies()


__all__ = [
    "CLONE_STRATEGY",
    "TESTING",
    "TEST_DYNAMIC",
    "DynamicTestStore",
    "TestCopies",
    "clean",
    "clean_all",
    "code_hash",
    "copy_name",
    "drop_copy",
    "drop_spares",
    "ensure_template",
    "existing_copy",
    "provision_copy",
    "reset",
    "set_rebuild_templates",
    "wait_for_spare",
]
