"""Every error storekeeper raises on purpose.

Each error says who is involved (app, setting, store, service, user), what went
wrong, and how to fix it (``hint``, usually a command). Entry points print the
message and the hint; they never need to parse the text. ``status`` is the HTTP
status the portal answers with; it is fixed when the error is made (a class
default, or one per cause: ``ServiceError.not_found`` is a 404).

::

    StorekeeperError
    ├── ConfigError             home directory, config file, secret key, tools missing here
    ├── PlatformError           platform database missing, unmigrated, unreachable
    ├── InvalidNameError        an app, setting, store or service name breaks the rules
    ├── InputError              a command or request lacks something it needs
    ├── ServiceError            a service is unknown, taken, in use, unreachable
    ├── AppError                an app is unknown, not installed, not ready
    ├── SettingError            a setting is unknown, unassigned, of the wrong kind
    ├── StoreError              a store cannot be created, found, dropped or initialized
    │   ├── InitializerError    an initializer raised or cannot be imported
    │   └── MigrationError      a store's schema migration failed, or its revision is unknown
    ├── ServerError             the local PostgreSQL server cannot be initialized, started, stopped
    ├── UserError               a portal user is unknown, taken, or cannot be made that way
    ├── TokenError              an API token is unknown or badly named
    ├── JobError                a sync job is unknown
    ├── PortalError             not signed in, not allowed, too many tries, no such page
    └── ConfirmationRequired    a destructive action needs --yes

The first line of each class's docstring is the ``title`` of the portal's
problem documents (RFC 9457), so it describes the error for a user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "AppError",
    "ConfigError",
    "ConfirmationRequired",
    "InitializerError",
    "InputError",
    "InvalidNameError",
    "JobError",
    "MigrationError",
    "PlatformError",
    "PortalError",
    "ServerError",
    "ServiceError",
    "SettingError",
    "StoreError",
    "StorekeeperError",
    "TokenError",
    "UserError",
]


class StorekeeperError(Exception):
    """Storekeeper could not do what was asked.

    The base of every error storekeeper raises on purpose: ``message`` says
    what went wrong, ``hint`` what to do next, ``status`` is the HTTP status
    the portal answers with (the class's default unless given), and the other
    keyword arguments name who is involved (``app=``, ``setting=``, ...): they
    are kept in ``fields`` and as attributes.
    """

    status: int = 400

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None, **fields: object) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if status is not None:
            self.status = status
        self.fields: dict[str, object] = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nFix: {self.hint}"
        return self.message


class ConfigError(StorekeeperError):
    """The configuration (home directory, config file, secret key) is unusable.

    Also raised when this environment lacks a tool a command needs (pytest).
    """

    status = 500


class PlatformError(StorekeeperError):
    """The platform database is missing, not migrated or unreachable."""

    status = 503


class InvalidNameError(StorekeeperError, ValueError):
    """A name breaks the rules for app packages, settings, stores or services."""

    status = 422


class InputError(StorekeeperError):
    """A command or request lacks something it needs.

    An argument left out, a password that cannot be read (empty standard
    input, no terminal to ask on).
    """


class ServiceError(StorekeeperError):
    """A service is unknown, unreachable or lacks a privilege."""

    @classmethod
    def not_found(cls, name: str) -> ServiceError:
        """No service has this name (404)."""
        return cls(
            f'Service "{name}" does not exist.',
            hint="storekeeper services list  (or: storekeeper services create persistent --name NAME ...)",
            status=404,
            service=name,
        )

    @classmethod
    def exists(cls, name: str) -> ServiceError:
        """A service of this name is already registered (409)."""
        return cls(
            f'Service "{name}" already exists.',
            hint=f"storekeeper services update {name} ...  (or choose another --name)",
            status=409,
            service=name,
        )

    @classmethod
    def in_use(cls, name: str, assigned: list[str]) -> ServiceError:
        """The service is assigned to settings, so it may not be removed without --force (409)."""
        return cls(
            f'Service "{name}" is assigned to {len(assigned)} setting(s): {", ".join(assigned)}.',
            hint=f"unassign them (storekeeper app-settings reset APP SETTING) or: storekeeper services remove {name} --force",
            status=409,
            service=name,
        )

    @classmethod
    def unreachable(cls, name: str, where: str, username: str, dbname: str | None, reason: str) -> ServiceError:
        """The service's database server refused or did not answer (502: the server, not the request, is at fault)."""
        return cls(
            f'Cannot connect to {where} as user "{username}"{"" if dbname is None else f" (database {dbname})"}: {reason}',
            hint=f"storekeeper services test {name}  (fix with: storekeeper services update {name} "
            "--host/--port/--username/--password-stdin)",
            status=502,
            service=name,
        )


class AppError(StorekeeperError):
    """An app is unknown, not installed or declares its settings wrongly."""

    @classmethod
    def not_found(cls, package: str) -> AppError:
        """No installed app has this package name (404)."""
        return cls(
            f'App "{package}" is not installed.',
            hint="install its package (pip install ...) and check: storekeeper apps list",
            status=404,
            app=package,
        )

    @classmethod
    def not_ready(cls, package: str, problems: list[str], steps: list[str]) -> AppError:
        """The app may not serve requests yet: settings unassigned or stores not synced (503)."""
        return cls(
            f'App "{package}" is not ready: {"; ".join(problems)}.',
            hint="an admin must " + ", then ".join(steps),
            status=503,
            app=package,
        )

    @classmethod
    def store_unreachable(cls, package: str) -> AppError:
        """A database server behind the app's stores did not answer a request (503: try again later)."""
        return cls(
            f'App "{package}" cannot reach its database right now: the server of one of its stores did not answer.',
            hint="try again in a few seconds; if it lasts, an admin finds the service with "
            f"storekeeper app-settings list {package} and checks it with storekeeper services test SERVICE",
            status=503,
            app=package,
        )


class SettingError(StorekeeperError):
    """A setting is unknown, has no service assigned, or is of the other kind."""

    @classmethod
    def not_found(cls, app: str, setting: str, known: list[str] | None = None) -> SettingError:
        """The app declares no persistent store setting of this name (404)."""
        listing = f" Known: {', '.join(known)}." if known else ""
        return cls(
            f'App "{app}" has no persistent store setting "{setting}".{listing}',
            hint=f"storekeeper app-settings list {app}",
            status=404,
            app=app,
            setting=setting,
        )

    @classmethod
    def unassigned(cls, app: str, setting: str) -> SettingError:
        """The setting has no service, so its store cannot be made or used (409)."""
        return cls(
            f'App "{app}" setting "{setting}" has no service assigned.',
            hint=f"storekeeper app-settings set {app} {setting} SERVICE  (see: storekeeper services list)",
            status=409,
            app=app,
            setting=setting,
        )


class StoreError(StorekeeperError):
    """A store cannot be created, found, dropped or initialized."""

    status = 409

    @classmethod
    def not_found(cls, app: str, store: str, *, hint: str) -> StoreError:
        """The app has no store of this name (404)."""
        return cls(f'App "{app}" has no store "{store}".', hint=hint, status=404, app=app)


class InitializerError(StoreError):
    """A store's initializer raised or could not be imported."""

    status = 500


class MigrationError(StoreError):
    """A store's schema migration failed or cannot run.

    A revision raised (the store stays at its last good revision), the store is
    at a revision its app's migrations do not know, or it has tables but no
    version table.
    """


class ServerError(StorekeeperError):
    """A private PostgreSQL server cannot be found, initialized, started or stopped.

    ``hint`` says what to do next; ``datadir`` is the data directory involved, if any.
    """

    status = 503
    datadir: Path | None

    def __init__(self, message: str, *, hint: str | None = None, datadir: Path | None = None) -> None:
        super().__init__(message, hint=hint, datadir=datadir)


class UserError(StorekeeperError):
    """A portal user is unknown, already exists, or cannot be made or changed that way."""

    @classmethod
    def not_found(cls, username: str) -> UserError:
        """No portal user has this name (404)."""
        return cls(
            f'User "{username}" does not exist.',
            hint="check the spelling; an admin lists the users with GET /api/v1/users",
            status=404,
            user=username,
        )

    @classmethod
    def taken(cls, username: str) -> UserError:
        """Another user already has this name (409)."""
        return cls(
            f'User "{username}" already exists.',
            hint=f"choose another username, or change this one: PATCH /api/v1/users/{username}",
            status=409,
            user=username,
        )

    @classmethod
    def last_admin(cls, username: str) -> UserError:
        """Disabling or demoting the only active admin would lock everyone out (409)."""
        return cls(
            f'User "{username}" is the only active admin; disabling or demoting them would lock everyone out.',
            hint="create or enable another admin first",
            status=409,
            user=username,
        )

    @classmethod
    def bad_username(cls, username: str, rule: str) -> UserError:
        """The username breaks the rule for new usernames (422).

        The name is shown escaped (``ascii()``), so control characters and look-alikes
        are visible and cannot break a terminal or a log line.
        """
        shown = ascii(username[:80]) + ("..." if len(username) > 80 else "")
        return cls(
            f"Username {shown} is not allowed: it must match {rule} "
            "(lowercase ASCII letters, digits, '_', '.', '-'; a letter first; 64 at most).",
            hint="choose a name like alice, j.smith or ops-admin (e.g. --username admin)",
            status=422,
        )

    @classmethod
    def unknown_role(cls, role: str, roles: tuple[str, ...]) -> UserError:
        """The role is not one of the portal's roles (400)."""
        return cls(
            f"Role {role!r} is not one of {', '.join(roles)}.", hint='"role": ' + " or ".join(f'"{r}"' for r in roles)
        )

    @classmethod
    def short_password(cls, min_length: int) -> UserError:
        """The password is too short (400)."""
        return cls(
            f"The password must be at least {min_length} characters long.",
            hint="choose a longer password",
        )


class TokenError(StorekeeperError):
    """An API token is unknown or badly named."""

    @classmethod
    def bad_name(cls) -> TokenError:
        """The token's name is empty or too long (400)."""
        return cls("A token name must be 1 to 100 characters.", hint='e.g. "name": "deploy script"')

    @classmethod
    def not_found(cls, token_id: int, owner: str | None = None) -> TokenError:
        """No token has this id, or none of ``owner``'s tokens does (404)."""
        return cls(
            f"API token {token_id} does not exist" + (f' among the tokens of user "{owner}".' if owner else "."),
            hint="list your tokens: GET /api/v1/auth/tokens",
            status=404,
        )


class JobError(StorekeeperError):
    """A sync job is unknown."""

    @classmethod
    def not_found(cls, job_id: str) -> JobError:
        """No job has this id (404)."""
        return cls(
            f'Job "{job_id}" does not exist.',
            hint="list recent jobs: GET /api/v1/jobs  (the Location header of POST .../sync names the job)",
            status=404,
            job=job_id,
        )


class PortalError(StorekeeperError):
    """A request the portal itself refuses: not signed in, not allowed, too many tries.

    ``headers`` go out with the response (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
        **fields: object,
    ) -> None:
        super().__init__(message, hint=hint, status=status, **fields)
        self.headers: dict[str, str] = headers or {}

    @classmethod
    def unauthenticated(cls, message: str = "Sign in first: this endpoint needs an API token.") -> PortalError:
        """The request carries no valid API token (401)."""
        return cls(
            message,
            status=401,
            hint='get a token with POST /api/v1/auth/token {"username": ..., "password": ...}, '
            "then send it as: Authorization: Bearer TOKEN",
            headers={"WWW-Authenticate": 'Bearer realm="storekeeper"'},
        )

    @classmethod
    def wrong_credentials(cls, max_failures: int, window: int, block: int) -> PortalError:
        """The username or password is wrong, or the user is disabled (401)."""
        return cls(
            "Wrong username or password, or the user is disabled.",
            status=401,
            hint=f"check both; after {max_failures} failures in {window} s, sign-in from this address "
            f"is paused for {block} s",
            headers={"WWW-Authenticate": 'Bearer realm="storekeeper"'},
        )

    @classmethod
    def forbidden(cls, username: str, what: str) -> PortalError:
        """A viewer asked for what only an admin may do, through the API (403)."""
        return cls(
            f'User "{username}" is a viewer: {what} needs the admin role.',
            status=403,
            hint=f'ask an admin to do it, or to make you an admin: PATCH /api/v1/users/{username} {{"role": "admin"}}',
            user=username,
        )

    @classmethod
    def viewer_form(cls, username: str) -> PortalError:
        """A viewer posted a form of the web admin that changes something (403)."""
        return cls(
            f'User "{username}" is a viewer: changes need the admin role.',
            status=403,
            hint="ask an admin to make the change, or to make you an admin on the Users page",
            user=username,
        )

    @classmethod
    def throttled(cls, username: str, retry_after: int) -> PortalError:
        """Too many failed sign-ins for this user from this address (429)."""
        return cls(
            f'Too many failed sign-ins for user "{username}" from this address.',
            status=429,
            hint=f"wait {retry_after} seconds, then try again with the right password "
            "(an admin can reset it: PATCH /api/v1/users/USERNAME)",
            headers={"Retry-After": str(retry_after)},
            user=username,
        )

    @classmethod
    def body_too_large(cls, limit: int, key: str = "portal.max_body_bytes") -> PortalError:
        """The request body is larger than the setting ``key`` allows (413)."""
        return cls(
            f"The request body is larger than this portal accepts ({limit} bytes); it was not read.",
            status=413,
            hint="send a smaller body; an operator raises the limit with: "
            f"storekeeper settings --set {key} BYTES (then restart the portal)",
            key=key,
        )

    @classmethod
    def csrf_failed(cls) -> PortalError:
        """A request signed in by session cookie lacks its CSRF token (403)."""
        return cls(
            "The request has no valid CSRF token, so it was refused.",
            status=403,
            hint="reload the page and submit the form again "
            "(API clients: send an Authorization: Bearer token instead of the session cookie)",
        )

    @classmethod
    def form_csrf_failed(cls) -> PortalError:
        """A web admin form was posted without this browser's CSRF token (403)."""
        return cls(
            "The form has no valid CSRF token, so it was refused.",
            status=403,
            hint="reload the page and submit the form again (the token comes with the page; "
            "a form from another site, or an old tab, does not have it)",
        )

    @classmethod
    def no_page(cls, path: str) -> PortalError:
        """The web admin has no page at this address (404)."""
        return cls(
            f"There is no page at {path}.", status=404, hint="use the menu on the left, or start from the home page"
        )

    @classmethod
    def invalid_page_request(cls) -> PortalError:
        """A web admin address or form does not validate (422)."""
        return cls(
            "The address or the form is not valid.", status=422, hint="go back and use the links and forms of the pages"
        )

    @classmethod
    def unexpected(cls) -> PortalError:
        """Stands for an unexpected exception on a web admin page, whose details stay in the log (500)."""
        return cls(
            "The portal hit an unexpected error; nothing about it is shown here.",
            hint="look in the portal's log (the process running storekeeper start)",
            status=500,
        )


class ConfirmationRequired(StorekeeperError):
    """A destructive action was asked for without confirmation."""

    status = 428
