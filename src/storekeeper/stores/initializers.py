"""Initializers: find an app's ``init(engine, first_time)`` by its path and run it on a store."""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from storekeeper import discovery
from storekeeper.backends import PostgresBackend
from storekeeper.errors import AppError, InitializerError, InvalidNameError
from storekeeper.stores.model import Target

#: The longest initializer path the REST API and the CLI accept.
MAX_INITIALIZER_PATH = 255
#: Tethys writes initializer paths relative to its apps' namespace; one that does not import as
#: written is tried again with this prefix.
NAMESPACE_PREFIX = "tethysapp."

_module_locks: dict[str, threading.RLock] = {}
_module_locks_guard = threading.Lock()


def split_path(path: str) -> tuple[str, str]:
    """Split ``package.module.function`` (or ``package.module:function``) into module and attribute."""
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    return module_name, attr


def candidates(path: str) -> list[str]:
    """Return the paths an initializer is looked up at, in order: as written, then in the namespace."""
    return [path] if path.startswith(NAMESPACE_PREFIX) else [path, NAMESPACE_PREFIX + path]


def module_of(path: str) -> str | None:
    """Return the module an initializer path names, after the namespace fallback (None: neither exists).

    Finding it imports the module's parent packages, not the module.
    """
    for candidate in candidates(path):
        module_name = split_path(candidate)[0]
        try:
            if module_name and importlib.util.find_spec(module_name) is not None:
                return module_name
        except (ImportError, ValueError):
            continue
    return None


def check_initializer_path(package: str, path: str) -> None:
    """Raise (422) unless ``path`` names a function inside app ``package``'s own Python package.

    For initializers that arrive from outside the app's code (the REST API, the CLI):
    ``<root>.module.function`` or ``<root>.module:function``, where ``<root>`` is the
    package of the app's class (its top-level package; for an app in the ``tethysapp``
    namespace, ``tethysapp.<app>`` or just ``<app>``), every part a plain Python
    identifier, no dunder. So ``builtins.print``, ``os.system`` or another app's module are refused
    before anything is imported or called. An empty path (no initializer) is fine.
    """
    if not path:
        return
    app_cls = discovery.app_class(package)
    if app_cls is None:
        raise AppError.not_found(package)
    root = discovery.app_root(app_cls)
    roots = [root.split(".")]
    if root.startswith(NAMESPACE_PREFIX):
        roots.append(root[len(NAMESPACE_PREFIX) :].split("."))
    module_name, attr = split_path(path)
    parts = [*module_name.split("."), attr]
    well_formed = (
        len(path) <= MAX_INITIALIZER_PATH
        and path.isascii()
        and path.count(":") <= 1
        and len(parts) >= 2
        and all(part.isidentifier() and not (part.startswith("__") and part.endswith("__")) for part in parts)
    )
    if well_formed and any(parts[: len(r)] == r and len(parts) > len(r) for r in roots):
        return
    shown = ascii(path[:100]) if not path.isascii() or not path.isprintable() else f'"{path[:100]}"'
    raise InvalidNameError(
        f'Initializer {shown} is not allowed for app "{package}": it must name a function inside the app\'s own '
        f"package, written {root}.module.function or {root}.module:function.",
        hint=f'e.g. "{root}.model.init_db" (an initializer sent this way may only run the app\'s own code)',
        status=422,
        app=package,
    )


def import_initializer(target: Target) -> Callable[..., Any]:
    """Import a store's initializer; raise naming the store and the setting to fix when it cannot be."""
    path = target.initializer
    failures: list[str] = []
    func: Any = None
    found = False
    if not all(split_path(path)):
        failures.append(f"{path!r} is not a dotted path like 'package.module.function'")
    else:
        for candidate in candidates(path):
            module_name, attr = split_path(candidate)
            try:
                func = getattr(importlib.import_module(module_name), attr)
                found = True
                break
            except (ImportError, AttributeError) as err:
                failures.append(f'"{candidate}": {type(err).__name__}: {err}')
    if not found:
        tried = "; nor as ".join(failures)
        raise InitializerError(
            f"Cannot import the initializer of {target.what} as {tried}",
            hint=f'fix the initializer path of setting "{target.name}" in {target.app}\'s persistent_store_settings()',
            app=target.app,
            setting=target.name,
        )
    if not callable(func):
        raise InitializerError(
            f'Initializer "{path}" of {target.what} is not callable.',
            hint="point it at a function init(engine, first_time)",
            app=target.app,
            setting=target.name,
        )
    return func  # type: ignore[no-any-return]


def initializer_lock(path: str) -> threading.RLock:
    """Return the lock that keeps initializers of one module from running at the same time.

    Initializers of one module usually share SQLAlchemy metadata, and
    ``metadata.create_all`` (with GeoAlchemy2's table events, for one) is not
    safe to run from two threads at once; stores whose initializers live in
    different modules are still initialized in parallel.
    """
    module = split_path(path)[0]
    with _module_locks_guard:
        return _module_locks.setdefault(module, threading.RLock())  # re-entrant: an initializer may create a store


def login_refused(err: BaseException) -> bool:
    """True when a connection failed because the server refused the password."""
    orig = getattr(err, "orig", err)
    return getattr(orig, "sqlstate", None) == "28P01" or "password authentication failed" in str(orig)


def run_initializer(
    backend: PostgresBackend,
    target: Target,
    first_time: bool,
    *,
    on_login_refused: Callable[[], None] | None = None,
) -> None:
    """Run a store's initializer on its database; its exceptions propagate unchanged.

    ``on_login_refused`` repairs the store role's password when the server refuses it;
    the login is then tried once more.
    """
    func = import_initializer(target)
    # One pooled connection, opened (and the dialect initialized) before waiting for the
    # module's lock; it is closed with the engine when the initializer is done.
    # As the store's own role when it has one: every object the initializer makes is the role's.
    engine = create_engine(backend.url(target.database, login=target.login), pool_size=1, max_overflow=4)
    try:
        try:
            with engine.connect():
                pass
        except OperationalError as err:
            if on_login_refused is None or not login_refused(err):
                raise
            on_login_refused()
            with engine.connect():
                pass
        with initializer_lock(target.initializer):
            func(engine, first_time)
    finally:
        engine.dispose()


def initialize_unrecorded(backend: PostgresBackend, target: Target, first_time: bool, *, retry_hint: str) -> None:
    """Run an initializer for a database with no record (a test copy or template); failures name the store."""
    try:
        run_initializer(backend, target, first_time)
    except InitializerError:
        raise
    except Exception as err:
        raise InitializerError(
            f'Initializer "{target.initializer}" of {target.what} raised {type(err).__name__}: {err}',
            hint=retry_hint,
            app=target.app,
            setting=target.name,
        ) from err
