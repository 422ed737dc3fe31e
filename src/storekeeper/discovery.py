"""Find installed apps and record them.

An app is found two ways: an entry point in the group ``storekeeper.apps``, or
(the way Tethys finds its apps) a package in the ``tethysapp`` namespace whose
``app.py`` defines an app class; an app found both ways is one app, loaded
through its entry point. Discovery runs whenever a command or the app API
needs apps; an installed app appears with no extra step. An app that is no longer installed, or a setting
no longer declared, is kept and shown as orphaned; its stores are left alone
until ``storekeeper apps remove APP``.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import TypeGuard

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
#: Namespace packages whose subpackages are apps when they hold an ``app.py`` (Tethys's layout).
NAMESPACES: tuple[str, ...] = ("tethysapp",)
#: The group given to the entry points discovery makes for namespace apps.
NAMESPACE_GROUP = "storekeeper.namespace-apps"


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
#: The app entry points (declared and namespace), found once per process (see :func:`forget`).
_points: dict[str, EntryPoint] | None = None


def _has_app_api(cls: type) -> bool:
    return callable(getattr(cls, "get_persistent_store_database", None))


def _is_app_class(obj: object) -> TypeGuard[AppClass]:
    return isinstance(obj, type) and issubclass(obj, AppDeclaration) and _has_app_api(obj)


def _app_in_module(ep: EntryPoint, module: ModuleType) -> object:
    """Return the one app class a namespace app's ``app.py`` defines (classes it imports do not count)."""
    found = [obj for obj in vars(module).values() if _is_app_class(obj) and obj.__module__ == module.__name__]
    if len(found) != 1:
        what = "defines no" if not found else f"defines {len(found)} ({', '.join(c.__name__ for c in found)})"
        raise AppError(
            f'{module.__name__} {what} app class: an app in the "{ep.value.split(".")[0]}" namespace needs '
            "exactly one subclass of TethysAppBase (tethys_sdk.base) or storekeeper.AppBase in its app.py.",
            hint=f"fix {module.__name__}, or uninstall that package",
            app=ep.name,
        )
    return found[0]


def _load(ep: EntryPoint) -> AppClass:
    try:
        obj = ep.load()
    except Exception as err:  # an app's import error must not break every command
        raise AppError(
            f'App entry point "{ep.name}" ({ep.value}) failed to import: {type(err).__name__}: {err}',
            hint="fix the app package, or uninstall it",
            app=ep.name,
        ) from err
    if isinstance(obj, ModuleType):  # a namespace app: the module is its app.py
        obj = _app_in_module(ep, obj)
    # AppBase is AppDeclaration plus the app API; the core sits below the API, so it checks for both
    # parts rather than import it.
    if not _is_app_class(obj):
        raise AppError(
            f'App entry point "{ep.name}" ({ep.value}) is not a subclass of storekeeper.AppBase.',
            hint='point the entry point at the app class, e.g. my_first_app = "my_first_app.app:App"',
            app=ep.name,
        )
    check_package(obj.package)
    if obj.package != ep.name and ep.group == NAMESPACE_GROUP:
        raise AppError(
            f'App {obj.__name__} in {ep.value} says its package is "{obj.package}", but it is installed as '
            f'"{ep.value.rsplit(".", 1)[0]}"; they must be equal.',
            hint=f'set package = "{ep.name}" in {ep.value.replace(".", "/")}.py',
            app=ep.name,
        )
    if obj.package != ep.name:
        raise AppError(
            f'App entry point "{ep.name}" loads a class whose package is "{obj.package}"; they must be equal.',
            hint=f'rename the entry point to "{obj.package}" in the app\'s pyproject.toml, or fix App.package',
            app=ep.name,
        )
    declared_settings(obj)
    return obj


def _namespace_points() -> dict[str, EntryPoint]:
    """Return an entry point for each package in :data:`NAMESPACES` that has an ``app.py``; import no app.

    Only the namespace package itself is imported (it has no code); its directories are listed,
    whether the apps were installed normally or in editable mode.
    """
    points: dict[str, EntryPoint] = {}
    for namespace in NAMESPACES:
        try:
            if importlib.util.find_spec(namespace) is None:
                continue
            # Its __path__, not the spec's: an old-style namespace (pkg_resources.declare_namespace in
            # an __init__.py, as older Tethys apps ship) gathers its directories when imported.
            path = getattr(importlib.import_module(namespace), "__path__", None)
        except Exception:  # a broken namespace package hides no app found by entry point
            continue
        if path is None:
            continue
        locations = [p for p in path if Path(p).is_dir()]
        for info in pkgutil.iter_modules(locations):
            if not info.ispkg or not info.name.isidentifier() or info.name in points:
                continue
            if any((Path(loc) / info.name / "app.py").is_file() for loc in locations):
                value = f"{namespace}.{info.name}.app"
                points[info.name] = EntryPoint(name=info.name, value=value, group=NAMESPACE_GROUP)
    return points


def _entry_points() -> dict[str, EntryPoint]:
    """Return the app entry points by name, loading none of them; found once per process.

    Declared entry points win over namespace apps of the same name (an app found both ways is
    one app); of duplicate declared names, the last in name order wins.
    """
    global _points
    if _points is None:
        declared = {ep.name: ep for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)}
        _points = {**_namespace_points(), **declared}
    return _points


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
    global _installed, _points
    with _lock:
        if _installed is None or reload:
            if reload:
                _points = None
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


def package_root(module_name: str) -> str:
    """Return the package a module belongs to: its top-level package, or the one inside a namespace.

    ``my_first_app.model`` -> ``my_first_app``; ``tethysapp.dam_inventory.model`` ->
    ``tethysapp.dam_inventory`` (every Tethys app shares the ``tethysapp`` namespace,
    so it identifies none of them).
    """
    parts = module_name.split(".")
    for i in range(1, len(parts)):
        name = ".".join(parts[:i])
        if name in NAMESPACES:  # shared by many apps, whatever kind of namespace package it is
            continue
        module = sys.modules.get(name)
        if module is not None:
            namespace = getattr(module, "__file__", None) is None and hasattr(module, "__path__")
        else:
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                return name
            namespace = spec is not None and spec.origin is None and spec.submodule_search_locations is not None
        if not namespace:
            return name
    return module_name


def app_root(app_cls: AppClass) -> str:
    """Return the dotted name of the package an app class lives in (see :func:`package_root`)."""
    return package_root(app_cls.__module__)


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
            row.migrations = item.migrations
        else:
            row.initializer = ""
            row.spatial = False
            row.migrations = ""
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
    global _installed, _points
    with _lock:
        _installed = None
        _points = None
        _loaded.clear()
        _failed.clear()
        _registered.clear()
