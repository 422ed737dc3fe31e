"""Which stores exist: on their servers, as ``stores list`` and the app API's listings show them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from storekeeper import discovery
from storekeeper.backends import ServiceSpec, get_backend
from storekeeper.backends.names import check_name
from storekeeper.declaration import AppClass
from storekeeper.errors import AppError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import ABSENT, CONNECTION, DATABASE, INITIALIZED, App, Service, Setting
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
    platform: Platform, package: str | None = None, *, check_server: bool = True, discover: bool = True
) -> list[StoreInfo]:
    """Return every store (of one app, or all), asking each service which databases exist."""
    if discover:
        discovery.discover(platform)
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
    sizes = _sizes(specs, names) if check_server else {}
    result = []
    for pkg, name, dynamic, sid, service, spatial, initializer, state, orphaned, last_error, access in snapshot:
        database = dbname(pkg, name)
        found = sizes.get(sid) if sid is not None else None
        exists = False if sid is None else (None if found is None else database in found)
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
                size_bytes=found.get(database) if found else None,
            )
        )
    return result


def _sizes(specs: dict[int, ServiceSpec], names: dict[int, list[str]]) -> dict[int, dict[str, int] | None]:
    """Ask each service for the sizes of the databases that exist (None: it could not be asked)."""
    sizes: dict[int, dict[str, int] | None] = {}
    for sid, spec in specs.items():
        backend = get_backend("postgresql", spec)
        try:
            with backend.connect() as conn:
                sizes[sid] = backend.sizes(conn, names[sid])
        except StorekeeperError:
            sizes[sid] = None
    return sizes


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
