"""Apps: the admin functions on apps and their settings (CLI, portal).

The class apps subclass is :class:`storekeeper.AppBase` (:mod:`storekeeper.app`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from storekeeper import audit, discovery, engines, stores
from storekeeper.app_settings import UNMANAGED_NOTE, UnmanagedSetting
from storekeeper.backends.names import check_name
from storekeeper.errors import AppError, ServiceError, SettingError, StoreError
from storekeeper.platform import Platform
from storekeeper.platform.models import DATABASE, App, Service, Setting

# -- admin functions (CLI, portal) ------------------------------------------------


@dataclass(frozen=True)
class SettingInfo:
    """A setting as ``app-settings list`` shows it."""

    app: str
    name: str
    kind: str
    dynamic: bool
    description: str
    required: bool
    initializer: str
    spatial: bool
    service: str | None
    state: str | None
    orphaned: bool
    #: A store's readiness as its server sees it (see :attr:`StoreInfo.ready`); None: not asked, or no store.
    ready: bool | None = None
    #: Why a store is not ready, and the command that fixes it.
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AppInfo:
    """An app as ``apps list`` shows it."""

    package: str
    name: str
    description: str
    installed: bool
    settings: list[SettingInfo] = field(default_factory=list)
    #: Settings the installed app declares that storekeeper does not manage (e.g. a Tethys app's custom settings).
    unmanaged_settings: list[UnmanagedSetting] = field(default_factory=list)

    @property
    def configured(self) -> bool:
        """True when every required setting has a service."""
        return all(s.service for s in self.settings if s.required and not s.orphaned and not s.dynamic)

    @property
    def ready(self) -> bool:
        """True when configured and every assigned static store is initialized, as its server agrees.

        Apps listed without asking the servers (``ready`` of each store None) go by the records.
        """
        return self.configured and all(
            s.state == "initialized" and s.ready is not False
            for s in self.settings
            if s.kind == DATABASE and s.service and not s.orphaned and not s.dynamic
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["configured"] = self.configured
        data["ready"] = self.ready
        data["unmanaged_settings"] = [{**u, "note": UNMANAGED_NOTE} for u in data["unmanaged_settings"]]
        return data


def _setting_info(app: App, s: Setting, seen: dict[tuple[str, str], stores.StoreInfo] | None = None) -> SettingInfo:
    store = seen.get((app.package, s.name)) if seen is not None else None
    return SettingInfo(
        app=app.package,
        name=s.name,
        kind=s.kind,
        dynamic=s.dynamic,
        description=s.description,
        required=s.required,
        initializer=s.initializer,
        spatial=s.spatial,
        service=s.service.name if s.service else None,
        state=s.state if s.kind == DATABASE else None,
        orphaned=s.orphaned or not app.installed,
        ready=store.ready if store is not None else None,
        problem=store.problem if store is not None else None,
    )


def _app_info(
    app: App,
    seen: dict[tuple[str, str], stores.StoreInfo] | None = None,
    unmanaged: list[UnmanagedSetting] | None = None,
) -> AppInfo:
    return AppInfo(
        package=app.package,
        name=app.name,
        description=app.description,
        installed=app.installed,
        settings=[_setting_info(app, s, seen) for s in app.settings],
        unmanaged_settings=list(unmanaged or []) if app.installed else [],
    )


def _server_view(platform: Platform, package: str | None = None) -> dict[tuple[str, str], stores.StoreInfo]:
    """Ask the servers (one query per service) what they hold: an app is ready only when they agree."""
    listed = stores.list_stores(platform, package, check_server=True, discover=False, sizes=False)
    return {(s.app, s.name): s for s in listed}


def _load_app(session: Session, package: str) -> App:
    check_name(package, what="app package")
    app = session.scalar(
        select(App).where(App.package == package).options(selectinload(App.settings).selectinload(Setting.service))
    )
    if app is None:
        raise AppError.not_found(package)
    return app


def list_apps(platform: Platform) -> tuple[list[AppInfo], list[discovery.AppProblem]]:
    """Discover installed apps and return every recorded app, plus entry points that failed to load."""
    problems = discovery.discover(platform)
    installed, _ = discovery.installed_apps()  # imported by discover already
    unmanaged: dict[str, list[UnmanagedSetting]] = {}
    for package, app_cls in installed.items():
        try:
            unmanaged[package] = discovery.unmanaged_settings(app_cls)
        except AppError as err:  # one app's broken declarations must not hide the others
            problems = [*problems, discovery.AppProblem(package, str(err))]
    seen = _server_view(platform)
    with platform.session() as session:
        stmt = select(App).options(selectinload(App.settings).selectinload(Setting.service)).order_by(App.package)
        infos = [_app_info(a, seen, unmanaged.get(a.package, [])) for a in session.scalars(stmt)]
        return infos, problems


def get_app(platform: Platform, package: str) -> AppInfo:
    """Return one app with its settings, each store's readiness as its server sees it."""
    discovery.discover(platform, [package])  # imports this app only
    seen = _server_view(platform, package)  # an unknown app raises here, naming the fix
    app_cls = discovery.app_class(package)
    unmanaged = discovery.unmanaged_settings(app_cls) if app_cls is not None else []
    with platform.session() as session:
        return _app_info(_load_app(session, package), seen, unmanaged)


def list_settings(platform: Platform, package: str) -> list[SettingInfo]:
    """Return an app's settings (declared and dynamic)."""
    return get_app(platform, package).settings


def assign_service(platform: Platform, package: str, setting: str, service: str) -> SettingInfo:
    """Plug a service into an app's setting."""
    discovery.discover(platform, [package])  # imports this app only
    with platform.session() as session:
        app = _load_app(session, package)
        check_name(setting, what="setting")
        row = next((s for s in app.settings if s.name == setting), None)
        if row is None:
            raise SettingError.not_found(package, setting, [s.name for s in app.settings if not s.orphaned])
        svc = session.scalar(select(Service).where(Service.name == service))
        if svc is None:
            raise ServiceError.not_found(service)
        if row.kind == DATABASE and row.service is not None and row.service_id != svc.id and row.state != "absent":
            raise SettingError(
                f'Store "{setting}" of app "{package}" already exists on service "{row.service.name}"; '
                f'assigning "{service}" would leave it behind.',
                hint=f"drop it first (storekeeper stores drop {package} {setting}), then assign and sync",
                status=409,
                app=package,
                setting=setting,
            )
        if row.service_id != svc.id:
            # Set the relationship, not only the column: the returned info reads row.service.
            row.service = svc
            row.generation += 1
        audit.record(session, "setting.assign", f"{package}/{setting}", detail=f"service {service}")
        session.flush()
        info = _setting_info(app, row)
    engines.invalidate(package, setting)
    return info


def reset_setting(platform: Platform, package: str, setting: str) -> SettingInfo:
    """Unplug the service from an app's setting (its store, if any, is left on the server)."""
    discovery.discover(platform, [package])  # imports this app only
    with platform.session() as session:
        app = _load_app(session, package)
        check_name(setting, what="setting")
        row = next((s for s in app.settings if s.name == setting), None)
        if row is None:
            raise SettingError.not_found(package, setting, [s.name for s in app.settings if not s.orphaned])
        if row.kind == DATABASE and row.state != "absent" and row.service is not None:
            raise SettingError(
                f'Store "{setting}" of app "{package}" exists on service "{row.service.name}"; '
                "resetting the setting would leave it behind.",
                hint=f"drop it first: storekeeper stores drop {package} {setting}",
                status=409,
                app=package,
                setting=setting,
            )
        row.service_id = None
        row.generation += 1
        audit.record(session, "setting.reset", f"{package}/{setting}")
        session.flush()
        session.refresh(row)
        info = _setting_info(app, row)
    engines.invalidate(package, setting)
    return info


def remove_app(platform: Platform, package: str, *, drop_stores: bool = False) -> list[str]:
    """Forget an uninstalled app, or an installed app's orphaned settings; optionally drop their stores.

    Returns the names of the settings removed.
    """
    discovery.discover(platform, [package])  # imports this app only
    with platform.session() as session:
        app = _load_app(session, package)
        whole = not app.installed
        doomed = [s.name for s in app.settings if whole or s.orphaned]
        if not whole and not doomed:
            raise AppError(
                f'App "{package}" is installed and has no orphaned settings; nothing to remove.',
                hint=f"uninstall its package first (pip uninstall ...), then: storekeeper apps remove {package}",
                app=package,
            )
        database_doomed = [s.name for s in app.settings if s.name in doomed and s.kind == DATABASE and s.service_id]
    if drop_stores:
        for name in database_doomed:
            stores.drop_store(platform, package, name)
    elif database_doomed:
        left = [n for n in database_doomed if stores.store_exists(platform, package, n)]
        if left:
            raise StoreError(
                f'App "{package}" still has stores on their servers: {", ".join(left)}.',
                hint=f"storekeeper apps remove {package} --drop-stores  (drops them), or drop them one by one",
                app=package,
            )
    with platform.session() as session:
        app = _load_app(session, package)
        if whole:
            session.delete(app)
        else:
            for s in list(app.settings):
                if s.name in doomed:
                    app.settings.remove(s)
        audit.record(session, "app.remove", package, detail=f"settings: {', '.join(doomed)}; drop_stores={drop_stores}")
    engines.invalidate(package)
    return doomed
