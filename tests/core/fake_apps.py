"""App classes that stand in for a changed installation in discovery tests.

Each is reached through a real ``importlib.metadata.EntryPoint``, exactly as
an installed app's entry point would be loaded.
"""

from __future__ import annotations

from my_first_app.app import App as MyFirstApp

from storekeeper import AppBase
from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting


class SlimApp(MyFirstApp):
    """my_first_app after its code dropped spatial_db, temp_db and creator."""

    def persistent_store_settings(self):  # type: ignore[no-untyped-def]
        return tuple(s for s in super().persistent_store_settings() if s.name in ("example_db", "primary"))


class KindChangedApp(MyFirstApp):
    """my_first_app after temp_db became a connection setting."""

    def persistent_store_settings(self):  # type: ignore[no-untyped-def]
        kept = tuple(s for s in super().persistent_store_settings() if s.name != "temp_db")
        return (*kept, PersistentStoreConnectionSetting(name="temp_db", required=False))


class TooLongApp(AppBase):
    package = "too_long_app"

    def persistent_store_settings(self):  # type: ignore[no-untyped-def]
        return (PersistentStoreDatabaseSetting(name="s" * 60),)


class TwiceApp(AppBase):
    package = "twice_app"

    def persistent_store_settings(self):  # type: ignore[no-untyped-def]
        return (PersistentStoreDatabaseSetting(name="db"), PersistentStoreConnectionSetting(name="db"))


class NotAnApp:
    package = "not_an_app"


class ShortPackageApp(AppBase):
    """An app whose package and store name join into another app's database name."""

    package = "my"

    def persistent_store_settings(self):  # type: ignore[no-untyped-def]
        return (
            PersistentStoreConnectionSetting(name="primary"),
            PersistentStoreDatabaseSetting(name="first_app_example_db", initializer="my_first_app.model.init_temp_db"),
        )
