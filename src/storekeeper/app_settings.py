"""The two kinds of persistent store setting an app declares.

A setting is a socket: the app declares it in ``persistent_store_settings()``,
a portal admin plugs a service into it (``storekeeper app-settings set``),
and ``storekeeper syncstores`` makes the store behind a database setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storekeeper.backends.names import check_name
from storekeeper.errors import InvalidNameError

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
#: ``package:relative/path``: a directory inside an importable package.
_MIGRATIONS = re.compile(rf"{_DOTTED}:(?!/)(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+")
#: ``module:attribute.path``: an object inside an importable module.
_METADATA = re.compile(rf"{_DOTTED}:{_DOTTED}")


def check_migrations(value: str, *, setting: str = "") -> str:
    """Raise unless ``value`` is empty or ``package:relative/path`` (no ``..``, not absolute)."""
    if value and (not _MIGRATIONS.fullmatch(value) or ".." in value.partition(":")[2].split("/")):
        raise InvalidNameError(
            f"migrations={value!r}{f' of setting {setting!r}' if setting else ''} must name a directory inside a "
            "package as package:relative/path.",
            hint='e.g. migrations="my_app:migrations/example_db" (a directory holding versions/)',
            setting=setting or None,
        )
    return value


def check_metadata(value: str, *, setting: str = "") -> str:
    """Raise unless ``value`` is empty or ``module:attribute`` (dotted on both sides)."""
    if value and not _METADATA.fullmatch(value):
        raise InvalidNameError(
            f"metadata={value!r}{f' of setting {setting!r}' if setting else ''} must name the models' MetaData as "
            "module:attribute.",
            hint='e.g. metadata="my_app.model:Base.metadata"',
            setting=setting or None,
        )
    return value


@dataclass(frozen=True)
class PersistentStoreConnectionSetting:
    """A server-level connection for an app: no database of its own.

    Its engine and URL point at the service's maintenance database; apps use
    it to create dynamic stores (``create_persistent_store``) or to run
    server-wide queries.

    Example::

        PersistentStoreConnectionSetting(
            name="primary", description="Creates scenario stores.", required=True
        )
    """

    name: str
    description: str = ""
    required: bool = True

    def __post_init__(self) -> None:
        check_name(self.name, what="setting")


@dataclass(frozen=True)
class PersistentStoreDatabaseSetting:
    """A database the app owns, named ``<app package>_<name>`` on the assigned service.

    ``initializer`` is the dotted path of ``init(engine, first_time)``, run by
    every sync; ``first_time`` is True until one run has completed. With
    ``spatial=True`` the PostGIS extension is enabled in the database.

    ``migrations`` names an Alembic script directory inside the app's package
    (``package:relative/path``, holding ``versions/``): every sync brings the
    store to its head before the initializer runs. ``metadata`` names the
    models' ``MetaData`` (``module:attribute``) that ``storekeeper stores
    revision --autogenerate`` compares with the store.

    Example::

        PersistentStoreDatabaseSetting(
            name="example_db",
            description="Primary database for my_first_app.",
            initializer="my_first_app.model.init_example_db",
            required=True,
            migrations="my_first_app:migrations/example_db",
            metadata="my_first_app.model:Base.metadata",
        )
    """

    name: str
    description: str = ""
    required: bool = True
    initializer: str = ""
    spatial: bool = False
    migrations: str = ""
    metadata: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, what="setting")
        check_migrations(self.migrations, setting=self.name)
        check_metadata(self.metadata, setting=self.name)


PersistentStoreSetting = PersistentStoreConnectionSetting | PersistentStoreDatabaseSetting

#: How every listing describes an :class:`UnmanagedSetting`.
UNMANAGED_NOTE = "declared, not managed by storekeeper"


@dataclass(frozen=True)
class UnmanagedSetting:
    """A setting an app declares that storekeeper shows but does not manage.

    Apps written for another platform declare settings storekeeper has no
    equivalent for (a Tethys ``CustomSetting`` or ``SchedulerSetting``, say).
    Returning them from ``AppBase.unmanaged_settings()`` lets the app load and
    lists them in ``storekeeper apps show`` and the REST app resource; nothing
    assigns, stores or checks a value for them. ``kind`` is the setting's class
    name; ``name`` and ``description`` are shown as given (they never reach SQL).

    Example::

        UnmanagedSetting(kind="CustomSetting", name="max_dams", description="Most dams allowed.")
    """

    kind: str
    name: str
    description: str = ""

    def __post_init__(self) -> None:
        for field_name in ("kind", "name", "description"):
            value = getattr(self, field_name)
            if not isinstance(value, str):
                raise TypeError(f"UnmanagedSetting.{field_name} must be a string, not {type(value).__name__}")
        if not self.kind or not self.name:
            raise ValueError("UnmanagedSetting needs a kind and a name")
