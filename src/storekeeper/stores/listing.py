"""Which stores exist: on their servers, as ``stores list`` and the app API's listings show them."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from storekeeper import discovery
from storekeeper.backends import ServiceSpec, get_backend
from storekeeper.backends import postgresql as pg
from storekeeper.backends.names import check_name
from storekeeper.declaration import AppClass
from storekeeper.errors import AppError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import (
    ABSENT,
    CONNECTION,
    CREATED,
    CREATING,
    DATABASE,
    DROPPING,
    FAILED,
    INITIALIZED,
    App,
    Service,
    Setting,
)
from storekeeper.services import service_spec
from storekeeper.stores import mode, records
from storekeeper.stores.model import StoreInfo


def store_exists(platform: Platform, package: str, name: str, *, app_cls: AppClass | None = None) -> bool:
    """Return True if the store's database exists on its service (the server is asked)."""
    check_name(name, what="store")
    if app_cls is not None:
        discovery.ensure_registered(platform, app_cls)
    return mode.current().exists(platform, package, name)


def list_stores(
    platform: Platform,
    package: str | None = None,
    *,
    check_server: bool = True,
    discover: bool = True,
    sizes: bool = True,
) -> list[StoreInfo]:
    """Return every store (of one app, or all), asking each service which databases exist.

    ``check_server=False`` goes by the records alone (``exists`` and ``ready`` are None);
    ``sizes=False`` leaves out the databases' sizes, the costly part of asking.
    """
    if package is not None:
        check_name(package, what="app package")
    if discover:
        discovery.discover(platform, None if package is None else [package])
    dbname = mode.current().database_name
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
                by_service.setdefault(s.service.id, (s.service, []))[1].append(dbname(app.package, s.name))
        specs = {sid: service_spec(platform, svc) for sid, (svc, _) in by_service.items()}
        names = {sid: dbs for sid, (_, dbs) in by_service.items()}
        snapshot = [
            (
                app.package,
                s.name,
                s.dynamic,
                s.service_id,
                s.service.name if s.service else None,
                s.spatial,
                s.initializer,
                s.state,
                s.orphaned or not app.installed,
                s.last_error,
                "role" if s.role_name else ("service" if s.state != ABSENT else None),
            )
            for app, s in rows
        ]
    seen = _ask_servers(specs, names, sizes=sizes) if check_server else {}
    result = []
    for pkg, name, dynamic, sid, service, spatial, initializer, state, orphaned, last_error, access in snapshot:
        database = dbname(pkg, name)
        found = seen.get(sid) if sid is not None else None
        server = found.get(database) if found is not None else None
        if sid is None:
            exists: bool | None = False
        elif found is None:
            exists = None
        else:
            exists = server is not None and not server[0].invalid
        ready, problem = _readiness(pkg, name, state, sid, found, server, specs.get(sid) if sid is not None else None)
        result.append(
            StoreInfo(
                app=pkg,
                name=name,
                kind="dynamic" if dynamic else "static",
                service=service,
                database=database,
                spatial=spatial,
                initializer=initializer,
                state=state,
                initialized=state == INITIALIZED,
                exists=exists,
                orphaned=orphaned,
                last_error=last_error,
                access=access,
                size_bytes=server[1] if server is not None else None,
                ready=ready if check_server else None,
                problem=problem if check_server else None,
            )
        )
    return result


#: What a server says about one database: its marker and size (None: this user may not see it).
_Seen = tuple[pg.Marker, int | None]


def _readiness(
    package: str,
    name: str,
    state: str,
    sid: int | None,
    found: dict[str, _Seen] | None,
    server: _Seen | None,
    spec: ServiceSpec | None,
) -> tuple[bool, str | None]:
    """Return whether a store is ready (the record and the server agree it is initialized) and, if not, why."""
    sync = f"storekeeper syncstores {package} --database {name}"
    if sid is None or spec is None:
        return False, None
    if found is None:
        return False, f"its server ({spec.where}) could not be asked: storekeeper services test {spec.name}"
    if server is not None:
        marker = server[0]
        if marker.foreign_to(spec.installation):
            return False, f"its database belongs to another storekeeper installation (id {marker.installation})"
        if marker.invalid:
            return False, f"a drop was cut short (the server left the database invalid): {sync}, or drop it again"
        if not marker.allows_connections and state != DROPPING:
            return False, f"it refuses connections (a refresh or drop was cut short): {sync}"
    if state == DROPPING:
        return False, f"a drop did not finish: storekeeper stores drop {package} {name}, or recreate it: {sync}"
    if state in (CREATING, CREATED):
        return False, f"being created, or its creation was cut short: {sync}"
    if state == FAILED:
        return False, f"its first-time initializer failed: fix it, then {sync}"
    if state != INITIALIZED:
        return False, None
    if server is None:
        return False, f"recorded as initialized, but its database is missing on the server: {sync}"
    if server[0].state != pg.INITIALIZED:
        return False, f"recorded as initialized, but the server's marker does not say so: {sync}"
    return True, None


#: One idle connection per service (host, port, user, password), kept between listings: asking a server
#: is then one round trip, not a new session with its SCRAM handshake. Taken out while in use.
_idle: dict[tuple[str, int, str, str | None], psycopg.Connection[Any]] = {}
_idle_lock = threading.Lock()


def _ask_servers(
    specs: dict[int, ServiceSpec], names: dict[int, list[str]], *, sizes: bool
) -> dict[int, dict[str, _Seen] | None]:
    """Ask each service (one query each) about the databases that exist; None: it could not be asked."""
    seen: dict[int, dict[str, _Seen] | None] = {}
    for sid, spec in specs.items():
        backend = get_backend("postgresql", spec)
        key = (spec.host, spec.port, spec.username, spec.password)
        with _idle_lock:
            conn = _idle.pop(key, None)
        try:
            if conn is not None:
                try:
                    seen[sid] = backend.markers(conn, names[sid], sizes=sizes)
                except psycopg.Error:  # the server was restarted, or ended the session: ask on a new one
                    conn.close()
                    conn = None
            if conn is None:
                conn = backend.connect()
                seen[sid] = backend.markers(conn, names[sid], sizes=sizes)
        except (StorekeeperError, psycopg.Error):
            seen[sid] = None
            if conn is not None:
                conn.close()
            continue
        with _idle_lock:
            spare = _idle.setdefault(key, conn)
        if spare is not conn:
            conn.close()
    return seen


def existing_store_names(
    platform: Platform, app_cls: AppClass, *, dynamic_only: bool = False, static_only: bool = False
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
    for name in mode.current().extra_store_names(platform, app_cls.package, set(kinds)):
        names.append(name)
        kinds[name] = "dynamic"
    if dynamic_only:
        names = [n for n in names if kinds[n] == "dynamic"]
    if static_only:
        names = [n for n in names if kinds[n] == "static"]
    return names


def connection_names(platform: Platform, app_cls: AppClass) -> list[str]:
    """Return the names of an app's connection settings that have a service assigned."""
    discovery.ensure_registered(platform, app_cls)
    with platform.session() as session:
        app = records.load_app(session, app_cls.package)
        return [s.name for s in app.settings if s.kind == CONNECTION and s.service_id is not None and not s.orphaned]
