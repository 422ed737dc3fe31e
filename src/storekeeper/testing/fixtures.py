"""pytest fixture factories that hand tests fresh copies of apps' stores.

``persistent_store(package, name)`` returns a fixture. Each use gives the test
a :class:`StoreCopy`: the store as it looks right after a first-time
initialization, cloned from a template, on the same service as the real store,
never the real store itself. While the fixture is active the app's own API
(``App.get_persistent_store_database(name)``) resolves to the same copy.

Two modes:

``mode="copy"`` (default)
    A new database per fixture scope (function by default; ``scope="module"``
    or ``"session"``, or the ``storekeeper_scope`` ini key / ``--storekeeper-scope``
    flag). Covers everything, including code that opens its own connections.

``mode="rollback"``
    The fastest: one copy per session, and each test runs inside an outer
    transaction that is rolled back at the end. ``connection`` is that
    transaction's connection and ``sessionmaker`` makes sessions that use
    savepoints, so code under test may ``commit()``. The app API returns the
    same connection and sessionmaker. It does **not** cover code that opens its
    own connections (``engine.connect()``, other threads or processes) or that
    creates or drops databases: use copy mode for those.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from storekeeper import discovery, engines, stores
from storekeeper.errors import AppError, StoreError
from storekeeper.platform import load_platform
from storekeeper.testing import copies
from storekeeper.testing.names import TESTING_ENV

SCOPE_HELP = "Scope of storekeeper's store copies: function (fresh per test), module or session."
_env_lock = threading.Lock()
#: Copies kept for a whole session (rollback mode) in this process; dropped at session end.
session_copies: set[tuple[str, str]] = set()
_env_users = 0
_env_saved: str | None = None


@dataclass
class StoreCopy:
    """A test's copy of a store.

    Example::

        def test_gage_count(example_db):
            with example_db.sessionmaker() as session:
                assert session.query(StreamGage).count() == 2
    """

    package: str
    name: str
    database: str
    engine: Engine | Connection
    url: URL
    sessionmaker: sessionmaker[Session]
    mode: str
    connection: Connection | None = None


@contextmanager
def testing_mode() -> Iterator[None]:
    """Turn testing mode on (``STOREKEEPER_TESTING=1``) for the block; nested uses share it."""
    global _env_users, _env_saved
    with _env_lock:
        if _env_users == 0:
            _env_saved = os.environ.get(TESTING_ENV)
            os.environ[TESTING_ENV] = "1"
        _env_users += 1
    try:
        yield
    finally:
        with _env_lock:
            _env_users -= 1
            if _env_users == 0:
                if _env_saved is None:
                    os.environ.pop(TESTING_ENV, None)
                else:
                    os.environ[TESTING_ENV] = _env_saved


def _app_class(package: str) -> type[Any]:
    app_cls = discovery.app_class(package)
    if app_cls is None:
        raise AppError.not_found(package)
    return app_cls


def fresh_copy(package: str, name: str, app_cls: type[Any] | None = None) -> StoreCopy:
    """Replace the store's test copy with a new clone of its template and return it (testing mode).

    ``app_cls`` is the app's class when the caller has it (e.g. an app found
    only by importing it); without it the installed app ``package`` is looked up.
    """
    platform = load_platform()
    app_cls = app_cls if app_cls is not None else _app_class(package)
    discovery.ensure_registered(platform, app_cls)
    target = copies.TESTING.target(platform, package, name)
    if target is None:
        raise StoreError(
            f'App "{package}" has no store "{name}" with a service assigned; nothing to copy.',
            hint=f"storekeeper app-settings list {package}",
            app=package,
            setting=name,
        )
    copies.provision_copy(platform, target, fresh=True)
    engines.invalidate(package, name)
    handle = stores.resolve(platform, app_cls, name, "database")
    return StoreCopy(
        package=package,
        name=name,
        database=target.database,
        engine=handle.engine,
        url=handle.url,
        sessionmaker=handle.sessionmaker,
        mode="copy",
    )


def _copy_fixture(package: str, name: str) -> Iterator[StoreCopy]:
    with testing_mode():
        copy = fresh_copy(package, name)
        try:
            yield copy
        finally:
            # The copy stays until the next fresh copy replaces it (the old one is then
            # renamed away and dropped in the background) or the session ends.
            session_copies.add((package, name))
            engines.invalidate(package, name)


def _rollback_fixture(package: str, name: str) -> Iterator[StoreCopy]:
    with testing_mode():
        platform = load_platform()
        app_cls = _app_class(package)
        handle = stores.resolve(platform, app_cls, name, "database")  # cached after the first test
        session_copies.add((package, name))
        connection = handle.engine.connect()
        outer = connection.begin()
        maker = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
        # The app API hands out the same connection and sessionmaker while the test runs.
        joined = engines.Handle(
            engine=connection,  # type: ignore[arg-type]
            url=handle.url,
            token=("rollback", id(connection)),
            expires=float("inf"),
            service=handle.service,
            _sessionmaker=maker,
            borrowed=True,
        )
        key = (package, name)
        engines.DATABASES[key] = joined
        try:
            yield StoreCopy(
                package=package,
                name=name,
                database=handle.url.database or "",
                engine=connection,
                url=handle.url,
                sessionmaker=maker,
                mode="rollback",
                connection=connection,
            )
        finally:
            if engines.DATABASES.get(key) is joined:
                engines.DATABASES[key] = handle  # the copy's own engine, warm for the next test
            if outer.is_active:
                outer.rollback()
            connection.close()


def drop_session_copies() -> list[str]:
    """Drop the copies this process kept for the session (called by the plugin at session end)."""
    dropped = []
    with testing_mode():
        platform = load_platform()
        for package, name in sorted(session_copies):
            engines.invalidate(package, name)
            stores.drop_store(platform, package, name)
            dropped.append(f"{package}/{name}")
    session_copies.clear()
    return dropped


def _dynamic_scope(fixture_name: str, config: pytest.Config) -> str:
    scope = config.getoption("storekeeper_scope", None) or config.getini("storekeeper_scope") or "function"
    return str(scope)


def persistent_store(package: str, name: str, *, scope: str | None = None, mode: str = "copy") -> Callable[..., Any]:
    """Return a fixture giving a test a fresh copy of store ``name`` of app ``package``.

    ``scope`` defaults to the ``storekeeper_scope`` ini key (``function``).
    ``mode`` is ``"copy"`` or ``"rollback"`` (see the module docs).
    """
    if mode not in ("copy", "rollback"):
        raise ValueError(f"mode must be 'copy' or 'rollback', not {mode!r}")
    if mode == "rollback":

        @pytest.fixture(scope="function")
        def store_fixture() -> Iterator[StoreCopy]:
            yield from _rollback_fixture(package, name)

    else:

        @pytest.fixture(scope=scope or _dynamic_scope)  # type: ignore[arg-type]
        def store_fixture() -> Iterator[StoreCopy]:
            yield from _copy_fixture(package, name)

    store_fixture.__doc__ = f'A fresh copy of store "{name}" of app "{package}" ({mode} mode).'
    return store_fixture
