"""Tethys's app setting classes, on storekeeper.

The two persistent store settings are storekeeper's own
(:mod:`storekeeper.app_settings`), and work as in Tethys: a portal admin
assigns a service to each (``storekeeper app-settings set``) and
``storekeeper syncstores`` makes the stores. The database setting also
accepts Tethys's ``dynamic`` and ``initialized`` keywords, and ignores them:
a declared setting is always a static store, and storekeeper itself records
whether a store was initialized.

Every other kind of Tethys setting (custom settings, dataset services,
spatial dataset services, web processing services, schedulers) is *accepted*
with its usual arguments, so an app that declares them loads, and *listed*
by ``storekeeper apps show`` and the REST app resource as "declared, not
managed by storekeeper". Nothing assigns them a value or a service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from storekeeper.app_settings import PersistentStoreConnectionSetting, UnmanagedSetting
from storekeeper.app_settings import PersistentStoreDatabaseSetting as _StoreDatabaseSetting

__all__ = [
    "CustomSecretSetting",
    "CustomSetting",
    "DatasetServiceSetting",
    "JSONCustomSetting",
    "PersistentStoreConnectionSetting",
    "PersistentStoreDatabaseSetting",
    "SchedulerSetting",
    "SecretCustomSetting",
    "SpatialDatasetServiceSetting",
    "TethysUnmanagedSetting",
    "WebProcessingServiceSetting",
]


@dataclass(frozen=True)
class PersistentStoreDatabaseSetting(_StoreDatabaseSetting):
    """A database the app owns: storekeeper's setting, also taking Tethys's ``dynamic`` and ``initialized``.

    Both extra keywords are accepted and ignored (see the module docs).

    Example::

        PersistentStoreDatabaseSetting(
            name="primary_db",
            description="Primary database for Dam Inventory.",
            initializer="dam_inventory.model.init_primary_db",
            required=True,
        )
    """

    dynamic: bool = False
    initialized: bool = False


class TethysUnmanagedSetting:
    """Base of the Tethys setting kinds storekeeper accepts but does not manage.

    ``name`` must be a non-empty string; it is shown as written and never
    becomes an SQL identifier. Every other keyword is kept in :attr:`options`.
    """

    def __init__(self, name: str, description: str = "", required: bool = True, **options: Any) -> None:
        kind = type(self).__name__
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{kind} needs a name: a non-empty string, not {name!r}")
        if not isinstance(description, str):
            raise ValueError(f"{kind} {name!r}: description must be a string, not {type(description).__name__}")
        self.name = name
        self.description = description
        self.required = bool(required)
        self.options = options

    def to_unmanaged(self) -> UnmanagedSetting:
        """Return how storekeeper lists this setting (kind, name, description)."""
        return UnmanagedSetting(kind=type(self).__name__, name=self.name, description=self.description)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class CustomSetting(TethysUnmanagedSetting):
    """A Tethys custom setting (a value a portal admin sets): accepted, listed, not managed.

    ``type`` is one of the ``TYPE_*`` constants; ``default`` is kept in
    :attr:`options`, and ``TethysAppBase.get_custom_setting`` returns it.

    Example::

        CustomSetting(name="max_dams", type=CustomSetting.TYPE_INTEGER, description="Most dams.", required=False)
    """

    TYPE_STRING: ClassVar[str] = "STRING"
    TYPE_INTEGER: ClassVar[str] = "INTEGER"
    TYPE_FLOAT: ClassVar[str] = "FLOAT"
    TYPE_BOOLEAN: ClassVar[str] = "BOOLEAN"
    TYPE_UUID: ClassVar[str] = "UUID"


class JSONCustomSetting(TethysUnmanagedSetting):
    """A Tethys custom setting holding JSON: accepted, listed, not managed."""


class SecretCustomSetting(TethysUnmanagedSetting):
    """A Tethys custom setting holding a secret: accepted, listed, not managed (no value is stored)."""


#: The other spelling some apps and docs use.
CustomSecretSetting = SecretCustomSetting


class DatasetServiceSetting(TethysUnmanagedSetting):
    """A Tethys dataset service (CKAN, HydroShare): accepted, listed, not managed."""

    CKAN: ClassVar[str] = "ckan"
    HYDROSHARE: ClassVar[str] = "hydroshare"


class SpatialDatasetServiceSetting(TethysUnmanagedSetting):
    """A Tethys spatial dataset service (GeoServer, THREDDS): accepted, listed, not managed."""

    GEOSERVER: ClassVar[str] = "geoserver"
    THREDDS: ClassVar[str] = "thredds"


class WebProcessingServiceSetting(TethysUnmanagedSetting):
    """A Tethys web processing service (WPS): accepted, listed, not managed."""


class SchedulerSetting(TethysUnmanagedSetting):
    """A Tethys job scheduler (HTCondor, Dask): accepted, listed, not managed."""

    HTCONDOR: ClassVar[str] = "htcondor"
    DASK: ClassVar[str] = "dask"
