"""The class apps subclass: declare settings, then use stores by name.

Every classmethod reaches the core through one accessor, :func:`_core`. The
hot path (:meth:`AppBase.get_persistent_store_database` once its engine is
warm) touches only the engine cache: a dict lookup and a clock read.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import TYPE_CHECKING

from storekeeper import engines
from storekeeper.declaration import AppDeclaration
from storekeeper.platform.models import CONNECTION, DATABASE

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine
    from sqlalchemy.orm import Session, sessionmaker

    from storekeeper.platform import Platform

_DATABASES = engines.DATABASES
_CONNECTIONS = engines.CONNECTIONS
_monotonic = time.monotonic


def _core() -> tuple[ModuleType, Platform]:
    """Return the core's store functions and this process's platform (the one way AppBase reaches the core)."""
    from storekeeper import stores
    from storekeeper.platform import load_platform

    return stores, load_platform()


class AppBase(AppDeclaration):
    """Base class of a storekeeper app: declare settings, then use stores by name.

    An app is an installed package whose entry point (group
    ``storekeeper.apps``, named like ``package``) points at its subclass.

    Example::

        from storekeeper import AppBase
        from storekeeper.app_settings import PersistentStoreDatabaseSetting

        class App(AppBase):
            name = "My First App"
            package = "my_first_app"

            def persistent_store_settings(self):
                return (
                    PersistentStoreDatabaseSetting(
                        name="example_db",
                        initializer="my_first_app.model.init_example_db",
                    ),
                )

        engine = App.get_persistent_store_database("example_db")
    """

    # -- the hot path: a dict lookup once warm --------------------------------------

    @classmethod
    def get_persistent_store_database(
        cls, name: str, as_url: bool = False, as_sessionmaker: bool = False
    ) -> Engine | URL | sessionmaker[Session]:
        """Return the engine (or URL, or sessionmaker) of the app's store ``name``.

        The engine is created once per process and cached; repeated calls
        return the same object.
        """
        handle = _DATABASES.get((cls.package, name))
        if handle is None or handle.expires < _monotonic():
            stores, platform = _core()
            handle = stores.resolve(platform, cls, name, DATABASE)
        if as_url:
            return handle.url
        if as_sessionmaker:
            return handle.sessionmaker
        return handle.engine

    @classmethod
    def get_persistent_store_connection(
        cls, name: str, as_url: bool = False, as_sessionmaker: bool = False
    ) -> Engine | URL | sessionmaker[Session]:
        """Return the engine (or URL, or sessionmaker) of connection setting ``name``.

        It points at the service's maintenance database.
        """
        handle = _CONNECTIONS.get((cls.package, name))
        if handle is None or handle.expires < _monotonic():
            stores, platform = _core()
            handle = stores.resolve(platform, cls, name, CONNECTION)
        if as_url:
            return handle.url
        if as_sessionmaker:
            return handle.sessionmaker
        return handle.engine

    @classmethod
    def get_persistent_store_engine(cls, name: str) -> Engine:
        """Return the engine of store ``name`` (alias of ``get_persistent_store_database``)."""
        return cls.get_persistent_store_database(name)  # type: ignore[return-value]

    # -- listing and run-time provisioning ------------------------------------------

    @classmethod
    def list_persistent_store_databases(cls, dynamic_only: bool = False, static_only: bool = False) -> list[str]:
        """Return the names of the app's stores that exist on their servers."""
        stores, platform = _core()
        names: list[str] = stores.existing_store_names(
            platform, cls, dynamic_only=dynamic_only, static_only=static_only
        )
        return names

    @classmethod
    def list_persistent_store_connections(cls) -> list[str]:
        """Return the names of the app's connection settings that have a service assigned."""
        stores, platform = _core()
        names: list[str] = stores.connection_names(platform, cls)
        return names

    @classmethod
    def persistent_store_exists(cls, name: str) -> bool:
        """Return True if store ``name`` exists on its server."""
        stores, platform = _core()
        return bool(stores.store_exists(platform, cls.package, name, app_cls=cls))

    @classmethod
    def create_persistent_store(
        cls,
        db_name: str,
        connection_name: str | None,
        spatial: bool = False,
        initializer: str = "",
        refresh: bool = False,
        force_first_time: bool = False,
        migrations: str = "",
    ) -> bool:
        """Create store ``db_name`` through connection setting ``connection_name`` and initialize it.

        Idempotent: an existing store is kept (unless ``refresh``) and its
        initializer runs with ``first_time=False``. Returns True on success.
        ``migrations`` (``package:relative/path``, as on a setting) brings the store
        to that script directory's head before its initializer runs.
        """
        stores, platform = _core()
        stores.create_store(
            platform,
            cls.package,
            db_name,
            connection_name,
            spatial=spatial,
            initializer=initializer,
            refresh=refresh,
            force_first_time=force_first_time,
            app_cls=cls,
            migrations=migrations,
        )
        return True

    @classmethod
    def drop_persistent_store(cls, name: str) -> bool:
        """Drop store ``name`` (idempotent). Returns True when it no longer exists."""
        stores, platform = _core()
        return bool(stores.drop_store(platform, cls.package, name, app_cls=cls))
