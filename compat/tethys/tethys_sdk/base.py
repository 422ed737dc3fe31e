"""``TethysAppBase``: storekeeper's ``AppBase`` that also takes a Tethys app's class attributes and methods.

A Tethys app's class works unchanged:

- the persistent store API is storekeeper's (:class:`storekeeper.AppBase`):
  ``get_persistent_store_database(name, as_url=False, as_sessionmaker=False)``,
  ``get_persistent_store_connection``, ``get_persistent_store_engine``,
  ``create_persistent_store``, ``drop_persistent_store``,
  ``list_persistent_store_databases``, ``list_persistent_store_connections`` and
  ``persistent_store_exists``, with Tethys's signatures and meaning;
- Tethys's class attributes (``index``, ``icon``, ``tags``, ``root_url``,
  ``color``, ``enable_feedback``, ``feedback_emails``, ``exit_url``, …) are
  accepted and kept for the app's own use; storekeeper reads ``name``,
  ``package`` and ``description``;
- Tethys's optional methods (``custom_settings``, ``permissions``,
  ``url_maps``, the service setting methods, …) may be defined; the settings
  they return are listed as "declared, not managed by storekeeper".

An app under the ``tethysapp`` namespace that leaves ``package`` out gets the
name of its package directory (``tethysapp.dam_inventory.app`` →
``dam_inventory``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from storekeeper import AppBase
from storekeeper.app_settings import UnmanagedSetting
from tethys_sdk.app_settings import CustomSetting, TethysUnmanagedSetting
from tethys_sdk.routing import url_map_maker

__all__ = ["TethysAppBase", "url_map_maker"]

#: The methods of a Tethys app class that return settings storekeeper does not manage, in listing order.
UNMANAGED_SETTING_METHODS = (
    "custom_settings",
    "dataset_service_settings",
    "spatial_dataset_service_settings",
    "web_processing_service_settings",
    "scheduler_settings",
)


class TethysAppBase(AppBase):
    """The base class of a Tethys app's ``App`` class, on storekeeper.

    Example::

        from tethys_sdk.app_settings import CustomSetting, PersistentStoreDatabaseSetting
        from tethys_sdk.base import TethysAppBase


        class DamInventory(TethysAppBase):
            name = "Dam Inventory"
            package = "dam_inventory"
            index = "home"
            icon = "dam_inventory/images/dam_icon.png"
            root_url = "dam-inventory"
            color = "#244C96"

            def persistent_store_settings(self):
                return (
                    PersistentStoreDatabaseSetting(
                        name="primary_db", initializer="dam_inventory.model.init_primary_db", required=True
                    ),
                )

        Session = DamInventory.get_persistent_store_database("primary_db", as_sessionmaker=True)
    """

    # Tethys's class attributes: accepted and kept, not used by storekeeper.
    index: ClassVar[str] = ""
    icon: ClassVar[str] = ""
    tags: ClassVar[str] = ""
    enable_feedback: ClassVar[bool] = False
    feedback_emails: ClassVar[list[str]] = []
    root_url: ClassVar[str] = ""
    color: ClassVar[str] = ""
    exit_url: ClassVar[str] = ""
    show_in_apps_library: ClassVar[bool] = True
    default_layout: ClassVar[str | None] = None
    nav_links: ClassVar[Any] = None
    controller_modules: ClassVar[list[str]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.package:
            parts = cls.__module__.split(".")
            if len(parts) >= 2 and parts[0] == "tethysapp":
                cls.package = parts[1]

    # -- Tethys's optional methods: each returns a tuple, empty by default ------------------

    def custom_settings(self) -> Iterable[Any]:
        """Override to declare custom settings (``CustomSetting`` …): listed, not managed."""
        return ()

    def dataset_service_settings(self) -> Iterable[Any]:
        """Override to declare dataset services: listed, not managed."""
        return ()

    def spatial_dataset_service_settings(self) -> Iterable[Any]:
        """Override to declare spatial dataset services: listed, not managed."""
        return ()

    def web_processing_service_settings(self) -> Iterable[Any]:
        """Override to declare web processing services: listed, not managed."""
        return ()

    def scheduler_settings(self) -> Iterable[Any]:
        """Override to declare job schedulers: listed, not managed."""
        return ()

    def permissions(self) -> Iterable[Any]:
        """Override to declare ``Permission`` and ``PermissionGroup`` objects: recorded, not enforced."""
        return ()

    def url_maps(self) -> Iterable[Any]:
        """Override to declare ``UrlMap`` objects: recorded, not served."""
        return ()

    def handoff_handlers(self) -> Iterable[Any]:
        """Override to declare handoff handlers: not supported, never called by storekeeper."""
        return ()

    def job_templates(self) -> Iterable[Any]:
        """Override to declare job templates: not supported, never called by storekeeper."""
        return ()

    # -- what storekeeper reads ---------------------------------------------------------------

    def unmanaged_settings(self) -> list[UnmanagedSetting]:
        """Return the settings the Tethys methods declare, for ``storekeeper apps show`` (not managed)."""
        found: list[UnmanagedSetting] = []
        for method in UNMANAGED_SETTING_METHODS:
            for item in getattr(self, method)() or ():
                if not isinstance(item, TethysUnmanagedSetting):
                    raise TypeError(
                        f"{type(self).__name__}.{method}() returned {item!r}; "
                        "expected setting objects from tethys_sdk.app_settings"
                    )
                found.append(item.to_unmanaged())
        return found

    @classmethod
    def get_custom_setting(cls, name: str) -> Any:
        """Return the ``default`` a custom setting declares; storekeeper stores no other value.

        Raises ``KeyError`` for a name the app does not declare, and
        ``LookupError`` for a setting declared without a default.
        """
        for item in cls().custom_settings() or ():
            if isinstance(item, TethysUnmanagedSetting) and item.name == name:
                if "default" in item.options and item.options["default"] is not None:
                    return item.options["default"]
                kind = "custom setting" if isinstance(item, CustomSetting) else type(item).__name__
                raise LookupError(
                    f'App "{cls.package}": {kind} "{name}" has no value: storekeeper does not manage '
                    "custom settings, so only a declared default can be returned."
                )
        raise KeyError(f'App "{cls.package}" declares no custom setting "{name}"')
