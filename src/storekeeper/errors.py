"""Every error storekeeper raises on purpose.

Each error says who is involved (app, setting, store, service), what went
wrong, and how to fix it (``hint``, usually a command). Entry points print the
message and the hint; they never need to parse the text.

::

    StorekeeperError
    ├── ConfigError             config file, home directory, secret key
    ├── PlatformError           platform database missing, unmigrated, unreachable
    ├── NameError_              an app, setting, store or service name breaks the rules
    ├── ServiceError            a service is unknown, unreachable, lacks a privilege
    ├── AppError                an app is unknown, not installed, badly declared
    ├── SettingError            a setting is unknown, unassigned, of the wrong kind
    ├── StoreError              a store cannot be created, dropped or initialized
    │   └── InitializerError    an initializer raised or cannot be imported
    └── ConfirmationRequired    a destructive action needs --yes
"""

from __future__ import annotations

__all__ = [
    "AppError",
    "ConfigError",
    "ConfirmationRequired",
    "InitializerError",
    "InvalidNameError",
    "PlatformError",
    "ServiceError",
    "SettingError",
    "StoreError",
    "StorekeeperError",
]


class StorekeeperError(Exception):
    """Base of every error storekeeper raises on purpose.

    ``hint`` tells the reader what to do next; ``status`` is the HTTP status
    the portal answers with.
    """

    status: int = 400

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None, **fields: object) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if status is not None:
            self.status = status
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nFix: {self.hint}"
        return self.message


class ConfigError(StorekeeperError):
    """The configuration (home directory, config file, secret key) is unusable."""

    status = 500


class PlatformError(StorekeeperError):
    """The platform database is missing, not migrated or unreachable."""

    status = 503


class InvalidNameError(StorekeeperError, ValueError):
    """A name breaks the rules for app packages, settings, stores or services."""

    status = 422


class ServiceError(StorekeeperError):
    """A service is unknown, unreachable or lacks a privilege."""

    @classmethod
    def not_found(cls, name: str) -> ServiceError:
        err = cls(
            f'Service "{name}" does not exist.',
            hint="storekeeper services list  (or: storekeeper services create persistent --name NAME ...)",
            service=name,
        )
        err.status = 404
        return err


class AppError(StorekeeperError):
    """An app is unknown, not installed or declares its settings wrongly."""

    @classmethod
    def not_found(cls, package: str) -> AppError:
        err = cls(
            f'App "{package}" is not installed.',
            hint="install its package (pip install ...) and check: storekeeper apps list",
            app=package,
        )
        err.status = 404
        return err


class SettingError(StorekeeperError):
    """A setting is unknown, has no service assigned, or is of the other kind."""

    @classmethod
    def not_found(cls, app: str, setting: str, known: list[str] | None = None) -> SettingError:
        listing = f" Known: {', '.join(known)}." if known else ""
        err = cls(
            f'App "{app}" has no persistent store setting "{setting}".{listing}',
            hint=f"storekeeper app-settings list {app}",
            app=app,
            setting=setting,
        )
        err.status = 404
        return err

    @classmethod
    def unassigned(cls, app: str, setting: str) -> SettingError:
        err = cls(
            f'App "{app}" setting "{setting}" has no service assigned.',
            hint=f"storekeeper app-settings set {app} {setting} SERVICE  (see: storekeeper services list)",
            app=app,
            setting=setting,
        )
        err.status = 409
        return err


class StoreError(StorekeeperError):
    """A store cannot be created, found, dropped or initialized."""

    status = 409


class InitializerError(StoreError):
    """A store's initializer raised or could not be imported."""

    status = 500


class ConfirmationRequired(StorekeeperError):
    """A destructive action was asked for without confirmation."""

    status = 428
