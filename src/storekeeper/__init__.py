"""storekeeper: managed PostgreSQL databases ("persistent stores") for the web apps on a portal.

App developers need only the names exported here and the setting classes in
:mod:`storekeeper.app_settings`.
"""

import typing as _typing

from storekeeper._version import __version__
from storekeeper.errors import (
    AppError,
    ConfigError,
    ConfirmationRequired,
    InitializerError,
    InvalidNameError,
    MigrationError,
    PlatformError,
    ServiceError,
    SettingError,
    StoreError,
    StorekeeperError,
)

if _typing.TYPE_CHECKING:
    from storekeeper.app import AppBase
    from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting

#: Imported on first use: ``import storekeeper`` (every command, ``--help``) stays free of SQLAlchemy.
_LAZY = {
    "AppBase": "storekeeper.app",
    "PersistentStoreConnectionSetting": "storekeeper.app_settings",
    "PersistentStoreDatabaseSetting": "storekeeper.app_settings",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'storekeeper' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AppBase",
    "AppError",
    "ConfigError",
    "ConfirmationRequired",
    "InitializerError",
    "InvalidNameError",
    "MigrationError",
    "PersistentStoreConnectionSetting",
    "PersistentStoreDatabaseSetting",
    "PlatformError",
    "ServiceError",
    "SettingError",
    "StoreError",
    "StorekeeperError",
    "__version__",
]
