"""storekeeper: managed PostgreSQL databases ("persistent stores") for the web apps on a portal.

App developers need only the names exported here and the setting classes in
:mod:`storekeeper.app_settings`.
"""

from storekeeper._version import __version__
from storekeeper.app import AppBase
from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting
from storekeeper.errors import (
    AppError,
    ConfigError,
    ConfirmationRequired,
    InitializerError,
    InvalidNameError,
    PlatformError,
    ServiceError,
    SettingError,
    StoreError,
    StorekeeperError,
)

__all__ = [
    "AppBase",
    "AppError",
    "ConfigError",
    "ConfirmationRequired",
    "InitializerError",
    "InvalidNameError",
    "PersistentStoreConnectionSetting",
    "PersistentStoreDatabaseSetting",
    "PlatformError",
    "ServiceError",
    "SettingError",
    "StoreError",
    "StorekeeperError",
    "__version__",
]
