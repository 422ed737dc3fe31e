"""The two kinds of persistent store setting an app declares.

A setting is a socket: the app declares it in ``persistent_store_settings()``,
a portal admin plugs a service into it (``storekeeper app-settings set``),
and ``storekeeper syncstores`` makes the store behind a database setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from storekeeper.backends.names import check_name


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

    Example::

        PersistentStoreDatabaseSetting(
            name="example_db",
            description="Primary database for my_first_app.",
            initializer="my_first_app.model.init_example_db",
            required=True,
        )
    """

    name: str
    description: str = ""
    required: bool = True
    initializer: str = ""
    spatial: bool = False

    def __post_init__(self) -> None:
        check_name(self.name, what="setting")


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
