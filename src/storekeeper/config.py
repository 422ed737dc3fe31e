"""storekeeper's own configuration: home directory, ``config.yml``, ``STOREKEEPER_*``.

Precedence, lowest first: defaults, the config file in the home directory,
environment variables, then values passed in code (CLI flags). Each key is
declared once in :class:`Config` with its type, default and one-line help;
the docs table (``storekeeper settings``, which lists every key) is generated from it.

A key's environment variable is its dotted name upper-cased with dots turned
into underscores and ``STOREKEEPER_`` in front: ``database.url`` →
``STOREKEEPER_DATABASE_URL``.

The CLI calls this "settings" (as the Tethys ``settings`` command does); the
code calls it *config*, because a *setting* is a socket an app declares.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import os
import secrets as _secrets
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from cryptography.fernet import Fernet, MultiFernet
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from storekeeper.errors import ConfigError

ENV_PREFIX = "STOREKEEPER_"
HOME_ENV = "STOREKEEPER_HOME"
DEFAULT_HOME = Path("~/.storekeeper")
CONFIG_FILE = "config.yml"
#: Lock file of read-modify-write changes to the config file (see :func:`locked`).
LOCK_FILE = ".config.lock"
#: Values that look like a secret key but are someone's placeholder.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "changethis", "secret", "secret_key", "xxx"})


def home_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the home directory: ``home``, else ``$STOREKEEPER_HOME``, else ``~/.storekeeper``."""
    raw = home if home is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(raw).expanduser().resolve()


class _FileSource(PydanticBaseSettingsSource):
    """Feed the flattened ``config.yml`` to pydantic-settings below the environment."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = dict(values)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if v is not None}


class _Keys(BaseSettings):
    """The declaration of every config key (field name = dotted key with ``.`` → ``_``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: str | None = Field(
        None, description="Platform database URL (default: SQLite file platform.sqlite3 in the home)."
    )
    secret_key: str | None = Field(
        None, description="Key that encrypts service passwords at rest; generated on first use. Secret."
    )
    secret_key_previous: str | None = Field(
        None,
        description="The key before the last rotation, still accepted for decrypting until "
        "storekeeper settings rotate-secret-key finishes (then removed). Secret.",
    )
    portal_host: str = Field("127.0.0.1", description="Address the portal listens on.")
    portal_port: int = Field(8000, ge=1, le=65535, description="Port the portal listens on.")
    portal_server: Literal["uvicorn", "granian"] = Field(
        "uvicorn",
        description="HTTP server storekeeper start runs: uvicorn, or granian (needs pip install 'storekeeper[granian]'); "
        "--server overrides it.",
    )
    portal_forwarded_allow_ips: str = Field(
        "",
        description="Proxies whose X-Forwarded-For and X-Forwarded-Proto headers the portal believes: "
        "comma-separated IP addresses or networks (e.g. 10.0.0.1,10.1.0.0/16), or * for any; "
        "default none (the headers are ignored and the client is who connected).",
    )
    portal_max_body_bytes: int = Field(
        1024 * 1024,
        ge=1,
        description="Largest request body the portal reads, in bytes; a larger one is refused with 413.",
    )
    portal_token_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        description="How long a portal worker trusts an API token it has checked, in seconds (0: check every "
        "request). A token revoked or a user disabled in another process is refused within this time.",
    )
    engines_revalidate_seconds: float = Field(
        30.0,
        description="How long a process trusts a cached engine before checking the platform database "
        "for a dropped store or changed service (the bound on cross-process staleness).",
    )
    engines_idle_timeout_seconds: int = Field(
        300, description="Pooled store connections idle this long are closed (0 keeps them open)."
    )
    backups_keep: int = Field(
        5,
        ge=1,
        description="How many backup files per store a --backup DIR keeps in that directory "
        "(the oldest beyond it are removed after each new one).",
    )
    backups_max_upload_bytes: int = Field(
        2 * 1024**3,
        ge=1,
        description="Largest backup file the portal takes as an upload to restore a store, in bytes "
        "(uploads are exempt from portal.max_body_bytes).",
    )
    local_datadir: str | None = Field(
        None,
        description="Data directory of the local PostgreSQL server (storekeeper db init/start); default "
        "<home>/pgdata, or /var/lib/storekeeper/<home id>/pgdata when run as root.",
    )
    local_password: str | None = Field(
        None, description="The local server's superuser password, encrypted with the secret key. Secret."
    )
    local_port: int = Field(
        5432,
        ge=1,
        le=65535,
        description="Port a new local PostgreSQL server asks for (storekeeper db init); a free one when it is taken.",
    )

    @field_validator("portal_forwarded_allow_ips", mode="before")
    @classmethod
    def _allow_ips(cls, value: Any) -> Any:
        """Accept a YAML list as well as a comma-separated string; check each entry is an address or network."""
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        if isinstance(value, str):
            for entry in forwarded_allow_ips(value):
                if entry != "*":
                    try:
                        ipaddress.ip_network(entry, strict=False)
                    except ValueError:
                        raise ValueError(f"{entry!r} is not an IP address, a network or *") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls, _PENDING_FILE_VALUES))


_PENDING_FILE_VALUES: dict[str, Any] = {}
#: Keys whose values are never shown in listings.
SECRET_KEYS = frozenset({"secret_key", "secret_key_previous", "local.password"})
#: Keys whose values are secrets encrypted with the secret key (Fernet tokens); the secret key
#: rotation (:mod:`storekeeper.secret_key`) re-encrypts each. The platform database's are
#: listed in ``storekeeper.platform.ENCRYPTED_COLUMNS``.
ENCRYPTED_KEYS = ("local.password",)
#: Keys holding a database URL, shown with the password masked.
URL_KEYS = frozenset({"database.url"})


#: Top-level keys whose names hold an underscore (every other field is ``section_key``).
_TOP_LEVEL = frozenset({"secret_key", "secret_key_previous"})


def _dotted(field: str) -> str:
    return field if field in _TOP_LEVEL else field.replace("_", ".", 1)


#: dotted key -> (field name, help text, default)
KEYS: dict[str, tuple[str, str, Any]] = {
    _dotted(name): (name, info.description or "", info.default) for name, info in _Keys.model_fields.items()
}


def forwarded_allow_ips(value: str) -> list[str]:
    """Return the entries of ``portal.forwarded_allow_ips`` (empty: trust no proxy)."""
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def env_var(key: str) -> str:
    """Return the environment variable that overrides ``key``."""
    return ENV_PREFIX + key.replace(".", "_").upper()


@dataclass(frozen=True)
class Config:
    """storekeeper's configuration, loaded once per process.

    Example::

        config = load_config()              # ~/.storekeeper or $STOREKEEPER_HOME
        config.database_url                 # 'sqlite:////root/.storekeeper/platform.sqlite3'
    """

    home: Path
    database_url: str = field(repr=False)  # may hold a password
    secret_key: str = field(repr=False)
    portal_host: str
    portal_port: int
    engines_revalidate_seconds: float
    engines_idle_timeout_seconds: int
    local_datadir: str | None = None
    local_password: str | None = field(default=None, repr=False)
    local_port: int = 5432
    #: The key before the last rotation while one is under way (or interrupted); see :mod:`storekeeper.secret_key`.
    secret_key_previous: str | None = field(default=None, repr=False)
    #: Proxies whose forwarding headers are believed (comma-separated; empty: none). See :func:`forwarded_allow_ips`.
    portal_forwarded_allow_ips: str = ""
    portal_max_body_bytes: int = 1024 * 1024
    portal_token_cache_seconds: float = 5.0
    #: The HTTP server ``storekeeper start`` runs: ``uvicorn`` or ``granian``.
    portal_server: str = "uvicorn"
    backups_keep: int = 5
    backups_max_upload_bytes: int = 2 * 1024**3

    @property
    def config_file(self) -> Path:
        return self.home / CONFIG_FILE

    def fernet_key(self) -> bytes:
        """Return the Fernet key derived from the secret key."""
        return fernet_key(self.secret_key)

    def fernet(self) -> MultiFernet:
        """Return what encrypts with the secret key and decrypts with it or the previous key.

        Everything that encrypts or decrypts a secret with the secret key goes through this,
        so a rotation under way (``secret_key_previous`` set) never leaves a secret unreadable.
        """
        keys = [Fernet(self.fernet_key())]
        if self.secret_key_previous:
            keys.append(Fernet(fernet_key(self.secret_key_previous)))
        return MultiFernet(keys)


def fernet_key(secret: str) -> bytes:
    """Return the Fernet key of a secret key: itself when it is one, else derived from it."""
    raw = secret.encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def new_secret_key() -> str:
    """Return a new random secret key (a Fernet key)."""
    return base64.urlsafe_b64encode(_secrets.token_bytes(32)).decode()


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in sorted(flat.items()):
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def read_file(home: Path) -> dict[str, Any]:
    """Return the config file's values as ``{dotted key: value}`` (empty when there is no file)."""
    path = home / CONFIG_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(
            f"Cannot read config file {path}: {err.strerror}.",
            hint=f"check its permissions, or point {HOME_ENV} at another home",
        ) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"Config file {path} is not valid YAML: {err}", hint=f"fix or remove {path}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"Config file {path} must hold a mapping of keys.", hint=f"fix or remove {path}")
    return _flatten(data)


def write_file(home: Path, values: Mapping[str, Any], *, only_if_missing: bool = False) -> bool:
    """Write ``values`` (dotted keys) to the config file, readable by its owner only.

    With ``only_if_missing`` the file is created only if there is none yet (atomically:
    of several processes creating a fresh home at once, exactly one wins); returns
    whether this call wrote it.
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / CONFIG_FILE
    # A private temporary file per writer, created 0600 from the start so the secret
    # key is never readable by others, then moved into place in one step.
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=home)
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(_nest(values), fh, default_flow_style=False, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())  # the new content is on disk before it replaces the old
        os.chmod(tmp, 0o600)
        if only_if_missing:
            try:
                os.link(tmp, path)  # fails if another process created the file first
            except FileExistsError:
                return False
            return True
        os.replace(tmp, path)
        _fsync_dir(home)  # ... and the rename too, before anything relies on it
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(home: Path) -> Iterator[None]:
    """Hold the home's config lock: read-modify-write of config.yml by one process at a time.

    :func:`set_values`, the first-use key generation of :func:`load_config` and the secret key
    rotation take it, so a ``settings --set`` during a rotation cannot write back a config file
    read before the key changed. Not reentrant: do not call :func:`set_values` while holding it.
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_key(key: str) -> str:
    """Return ``key`` when it is a known config key, else raise naming the known ones."""
    if key not in KEYS:
        raise ConfigError(
            f'Unknown config key "{key}". Known keys: {", ".join(sorted(KEYS))}.',
            hint="storekeeper settings  (lists every key)",
            key=key,
        )
    return key


def _check_secret(value: str, source: str) -> None:
    if value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < 32:
        raise ConfigError(
            f"The secret key from {source} is a placeholder or shorter than 32 characters.",
            hint=f"unset {env_var('secret_key')} and remove secret_key from the config file to have one "
            'generated, or set a long random value: python -c "import secrets; print(secrets.token_urlsafe(32))"',
            key="secret_key",
        )


def load_config(home: str | os.PathLike[str] | None = None, **overrides: Any) -> Config:
    """Load the configuration; create the home and a secret key on first use.

    ``overrides`` (field names such as ``database_url``) win over everything,
    as CLI flags do.
    """
    root = home_dir(home)
    file_values = read_file(root)
    if not file_values.get("secret_key") and not os.environ.get(env_var("secret_key")):
        with locked(root):
            # Another process may have made the key since we read: use its key, never a second one.
            file_values = read_file(root)
            if not file_values.get("secret_key"):
                file_values["secret_key"] = new_secret_key()
                write_file(root, file_values)
    flat = {KEYS[k][0]: v for k, v in file_values.items() if k in KEYS}
    _PENDING_FILE_VALUES.clear()
    _PENDING_FILE_VALUES.update(flat)
    try:
        keys = _Keys(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(
            f'Config key "{_dotted(field)}" is invalid: {first["msg"]}.',
            hint=f"storekeeper settings --set {_dotted(field)} VALUE  (or fix {env_var(_dotted(field))})",
            key=_dotted(field),
        ) from None
    finally:
        _PENDING_FILE_VALUES.clear()
    secret = keys.secret_key or ""
    _check_secret(secret, env_var("secret_key") if os.environ.get(env_var("secret_key")) else str(root / CONFIG_FILE))
    return Config(
        home=root,
        database_url=keys.database_url or f"sqlite:///{root / 'platform.sqlite3'}",
        secret_key=secret,
        portal_host=keys.portal_host,
        portal_port=keys.portal_port,
        engines_revalidate_seconds=keys.engines_revalidate_seconds,
        engines_idle_timeout_seconds=keys.engines_idle_timeout_seconds,
        backups_keep=keys.backups_keep,
        backups_max_upload_bytes=keys.backups_max_upload_bytes,
        local_datadir=keys.local_datadir,
        local_password=keys.local_password,
        local_port=keys.local_port,
        secret_key_previous=keys.secret_key_previous or None,
        portal_forwarded_allow_ips=keys.portal_forwarded_allow_ips,
        portal_max_body_bytes=keys.portal_max_body_bytes,
        portal_token_cache_seconds=keys.portal_token_cache_seconds,
        portal_server=keys.portal_server,
    )


def _hide_url_password(url: str) -> str:
    """Return a database URL with its password replaced by ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<not a valid URL; hidden, as it may hold a password>"


def describe(config: Config) -> list[dict[str, Any]]:
    """Return every key with its value, source and help, secrets masked."""
    file_values = read_file(config.home)
    rows = []
    for key, (attr, help_text, _default) in KEYS.items():
        value = getattr(config, attr)
        if os.environ.get(env_var(key)) is not None:
            source = f"env {env_var(key)}"
        elif key in file_values:
            source = "file"
        else:
            source = "default"
        if key in SECRET_KEYS and value:
            value = "********"
        elif key in URL_KEYS and value:
            value = _hide_url_password(str(value))
        rows.append({"key": key, "value": value, "source": source, "env": env_var(key), "help": help_text})
    return rows


def set_values(home: Path, updates: Mapping[str, Any], unset: list[str] = ()) -> None:  # type: ignore[assignment]
    """Set and unset keys in the config file; validate them first so a bad value changes nothing."""
    with locked(home):
        _set_values(home, updates, unset)


def _set_values(home: Path, updates: Mapping[str, Any], unset: list[str]) -> None:
    values = read_file(home)
    for key in unset:
        check_key(key)
        values.pop(key, None)
    for key, value in updates.items():
        check_key(key)
        values[key] = value
    # Validate the result with the same rules as load_config before writing anything.
    flat = {KEYS[k][0]: v for k, v in values.items() if k in KEYS}
    try:
        _PENDING_FILE_VALUES.clear()
        checked = _Keys(**flat)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(
            f'Invalid value for config key "{_dotted(field)}": {first["msg"]}.',
            hint="storekeeper settings  (shows every key with its help)",
            key=_dotted(field),
        ) from None
    if "secret_key" in updates:
        _check_secret(str(updates["secret_key"]), "--set secret_key")
    # Store typed values ("8001" from the command line becomes 8001 in the file).
    for key in updates:
        values[key] = getattr(checked, KEYS[key][0])
    write_file(home, values)
