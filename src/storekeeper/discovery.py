"""Find installed apps (entry point group ``storekeeper.apps``) and record them.

Discovery runs whenever a command or the app API needs apps; an installed app
appears with no extra step. An app that is no longer installed, or a setting
no longer declared, is kept and shown as orphaned; its stores are left alone
until ``storekeeper apps remove APP``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storekeeper import audit
from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting, UnmanagedSetting
from storekeeper.backends.names import check_package, database_name
from storekeeper.declaration import AppClass, AppDeclaration
from storekeeper.errors import AppError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import CONNECTION, DATABASE, App, Setting
from storekeeper.retry import retry

ENTRY_POINT_GROUP = "storekeeper.apps"


@dataclass(frozen=True)
class AppProblem:
    """An installed entry point that could not be loaded as an app."""

    entry_point: str
    message: str


_lock = threading.Lock()
_installed: tuple[dict[str, AppClass], list[AppProblem]] | None = None
#: Entry points loaded so far, by name (all of them once :func:`installed_apps` ran).
_loaded: dict[str, AppClass] = {}
_failed: dict[str, AppProblem] = {}
_registered: set[tuple[str, str]] = set()


def _has_app_api(cls: type) -> bool:
    return callable(getattr(cls, "get_persistent_store_database", None))


def _load(ep: EntryPoint) -> AppClass:
    try:
        obj = ep.load()
    except Exception as err:  # an app's import error must not break every command
        raise AppError(
            f'App entry point "{ep.name}" ({ep.value}) failed to import: {type(err).__name__}: {err}',
            hint="fix the app package, or uninstall it",
            app=ep.name,
        ) from err
    # AppBase is AppDeclaration plus the app API; the core sits below the API, so it checks for both
    # parts rather than import it.
    if not (isinstance(obj, type) and issubclass(obj, AppDeclaration) and _has_app_api(obj)):
        raise AppError(
            f'App entry point "{ep.name}" ({ep.value}) is not a subclass of storekeeper.AppBase.',
            hint='point the entry point at the app class, e.g. my_first_app = "my_first_app.app:App"',
            app=ep.name,
        )
    check_package(obj.package)
    if obj.package != ep.name:
        raise AppError(
            f'App entry point "{ep.name}" loads a class whose package is "{obj.package}"; they must be equal.',
            hint=f'rename the entry point to "{obj.package}" in the app\'s pyproject.toml, or fix App.package',
            app=ep.name,
        )
    declared_settings(obj)
    return obj


def _entry_points() -> dict[str, EntryPoint]:
    """Return the app entry points by name, loading none of them (the last of a duplicate name wins)."""
    return {ep.name: ep for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)}


def installed_names() -> list[str]:
    """Return the packages of the installed apps, without importing any app."""
    return sorted(_entry_points())


def _load_one(name: str, ep: EntryPoint) -> None:
    """Load one entry point into the cache (caller holds the lock)."""
    try:
        _loaded[name] = _load(ep)
        _failed.pop(name, None)
    except StorekeeperError as err:
        _failed[name] = AppProblem(name, str(err))
        _loaded.pop(name, None)


def installed_apps(*, reload: bool = False) -> tuple[dict[str, AppClass], list[AppProblem]]:
    """Return the installed app classes by package, and the entry points that failed to load.

    This imports every installed app; a command that names its apps uses :func:`load_apps`,
    which imports only those.
    """
    global _installed
    with _lock:
        if _installed is None or reload:
            if reload:
                _loaded.clear()
                _failed.clear()
            for name, ep in _entry_points().items():
                if name not in _loaded and name not in _failed:
                    _load_one(name, ep)
            apps = {name: _loaded[name] for name in sorted(_loaded)}
            problems = [_failed[name] for name in sorted(_failed)]
            _installed = (apps, problems)
        return _installed


def load_apps(packages: Iterable[str]) -> tuple[dict[str, AppClass], list[AppProblem]]:
    """Return the named installed apps and the named entry points that failed to load; import no other app.

    A package that is not installed is in neither part.
    """
    wanted = list(dict.fromkeys(packages))
    with _lock:
        if _installed is not None:
            apps, problems = _installed
        else:
            points = _entry_points()
            for name in wanted:
                if name in points and name not in _loaded and name not in _failed:
                    _load_one(name, points[name])
            apps, problems = _loaded, list(_failed.values())
        return (
            {name: apps[name] for name in wanted if name in apps},
            [p for p in problems if p.entry_point in wanted],
        )


def declared_settings(
    app_cls: AppClass,
) -> list[PersistentStoreDatabaseSetting | PersistentStoreConnectionSetting]:
    """Return an app's declared settings after checking kinds, names and database-name lengths."""
    package = app_cls.package
    try:
        declared = list(app_cls().persistent_store_settings() or ())
    except Exception as err:
        raise AppError(
            f'App "{package}": persistent_store_settings() raised {type(err).__name__}: {err}',
            hint="fix the app's persistent_store_settings() method",
            app=package,
        ) from err
    seen: set[str] = set()
    for item in declared:
        if not isinstance(item, PersistentStoreDatabaseSetting | PersistentStoreConnectionSetting):
            raise AppError(
                f'App "{package}": persistent_store_settings() returned {item!r}, which is not a '
                "PersistentStoreDatabaseSetting or PersistentStoreConnectionSetting.",
                hint="return setting objects from storekeeper.app_settings",
                app=package,
            )
        if item.name in seen:
            raise AppError(
                f'App "{package}" declares the setting "{item.name}" twice.',
                hint="give every setting its own name",
                app=package,
                setting=item.name,
            )
        seen.add(item.name)
        if isinstance(item, PersistentStoreDatabaseSetting):
            database_name(package, item.name)
    return declared


def unmanaged_settings(app_cls: AppClass) -> list[UnmanagedSetting]:
    """Return the settings an app declares that storekeeper does not manage (shown, never acted on)."""
    package = app_cls.package
    try:
        declared = list(app_cls().unmanaged_settings() or ())
    except Exception as err:
        raise AppError(
            f'App "{package}": unmanaged_settings() raised {type(err).__name__}: {err}',
            hint="fix the app's setting declarations (e.g. its custom_settings() method)",
            app=package,
        ) from err
    for item in declared:
        if not isinstance(item, UnmanagedSetting):
            raise AppError(
                f'App "{package}": unmanaged_settings() returned {item!r}, which is not an UnmanagedSetting.',
                hint="return storekeeper.app_settings.UnmanagedSetting objects",
                app=package,
            )
    return declared


def app_class(package: str) -> AppClass | None:
    """Return the installed app class for a package, or None (imports that app only)."""
    return load_apps([package])[0].get(package)


def register(session: Session, app_cls: AppClass) -> App:
    """Record an app and its declared settings; mark settings no longer declared as orphaned."""
    declared = declared_settings(app_cls)
    app = session.scalar(select(App).where(App.package == app_cls.package))
    if app is None:
        app = App(package=app_cls.package)
        session.add(app)
        audit.record(session, "app.register", app_cls.package)
    app.name = app_cls.name or app_cls.package
    app.description = app_cls.description or ""
    app.installed = True
    existing = {s.name: s for s in app.settings}
    for item in declared:
        kind = DATABASE if isinstance(item, PersistentStoreDatabaseSetting) else CONNECTION
        row = existing.pop(item.name, None)
        if row is None or (row.dynamic and kind == DATABASE):
            if row is None:
                row = Setting(name=item.name)
                app.settings.append(row)
            row.dynamic = False
        elif row.kind != kind:
            # A setting that changed kind is a new socket: its old assignment does not carry over.
            row.service_id = None
            row.generation = (row.generation or 1) + 1
        row.kind = kind
        row.description = item.description
        row.required = item.required
        row.orphaned = False
        if isinstance(item, PersistentStoreDatabaseSetting):
            row.initializer = item.initializer
            row.spatial = item.spatial
        else:
            row.initializer = ""
            row.spatial = False
    for row in existing.values():
        if not row.dynamic:
            row.orphaned = True
    session.flush()
    return app


def ensure_registered(platform: Platform, app_cls: AppClass) -> None:
    """Register an app once per process (the app API's path; commands use :func:`discover`)."""
    key = (str(platform.config.home), app_cls.package)
    if key in _registered:
        return
    _in_session_retrying(platform, lambda session: register(session, app_cls))
    _registered.add(key)


def _in_session_retrying(platform: Platform, work: Callable[[Session], object]) -> None:
    """Run ``work`` in a transaction, again if another process inserted the same app or setting first."""

    def attempt() -> None:
        with platform.session() as session:
            work(session)

    retry(attempt, on=IntegrityError, attempts=3)


def discover(platform: Platform, packages: Sequence[str] | None = None) -> list[AppProblem]:
    """Register the installed apps and mark the apps that are gone as orphaned.

    With ``packages``, only those apps are imported and registered (a command that names
    its apps); apps that are gone are still marked, by their entry points' names.
    """
    if packages is None:
        apps, problems = installed_apps()
        names = set(apps) | {p.entry_point for p in problems}
    else:
        apps, problems = load_apps(packages)
        names = set(installed_names())

    def work(session: Session) -> None:
        for app_cls in apps.values():
            register(session, app_cls)
        for row in session.scalars(select(App).where(App.installed.is_(True))):
            if row.package not in apps and row.package not in names:
                row.installed = False
                audit.record(session, "app.orphan", row.package, detail="no longer installed")

    _in_session_retrying(platform, work)
    for package in apps:
        _registered.add((str(platform.config.home), package))
    return problems


def forget() -> None:
    """Forget what this process discovered (tests that install or remove apps)."""
    global _installed
    with _lock:
        _installed = None
        _loaded.clear()
        _failed.clear()
        _registered.clear()
