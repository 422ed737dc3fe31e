"""The platform: storekeeper's config plus its own database, opened once per process."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy import Engine, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from storekeeper.config import Config, env_var, load_config
from storekeeper.errors import ConfigError
from storekeeper.platform import db, models

#: Every column of the platform database that holds a secret encrypted with the secret key
#: (a Fernet token made by :meth:`Platform.encrypt`, or NULL). The secret key rotation
#: (:mod:`storekeeper.secret_key`) re-encrypts each, and a test checks that no column that
#: looks like a secret is missing: a new encrypted column is one line here.
ENCRYPTED_COLUMNS: tuple[InstrumentedAttribute[str | None], ...] = (
    models.Service.password_encrypted,
    models.Service.password_pending,
    models.Setting.role_password,
    models.Setting.role_password_pending,
)


@dataclass
class Platform:
    """The context every core function takes first: config, platform database, secrets.

    Example::

        platform = load_platform()
        with platform.session() as session:
            ...
    """

    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    _fernet: MultiFernet = field(repr=False)
    #: When config.yml was last seen; a change (a key rotation elsewhere) reloads the keys.
    _key_stamp: tuple[int, int, int] | None = field(default=None, repr=False)
    _installation: str | None = field(default=None, repr=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session in a transaction that commits on success and rolls back on error."""
        with self.sessions.begin() as session:
            yield session

    def encrypt(self, secret: str) -> str:
        """Encrypt a secret for storage in the platform database (a column of :data:`ENCRYPTED_COLUMNS`)."""
        return self._keys().encrypt(secret.encode()).decode()

    def decrypt(self, token: str, *, service: str) -> str:
        """Decrypt a stored secret; a wrong secret key names the service and the fix."""
        try:
            return self._keys().decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                f'The password of service "{service}" cannot be decrypted with the current secret key '
                "(the key changed since it was stored).",
                hint=f"give the old key back as secret_key_previous (storekeeper settings --set secret_key_previous "
                f"OLD_KEY, or {env_var('secret_key_previous')}), then: storekeeper settings rotate-secret-key; "
                f"or re-enter the password: storekeeper services update {service} --password-stdin",
                service=service,
            ) from None

    def _keys(self) -> MultiFernet:
        """Return the secret keys, reloaded if config.yml changed since they were read.

        A long-running process (the portal) thus follows a rotation made by another
        process: it decrypts with the new key and never encrypts with a forgotten one.
        """
        stamp = _stamp(self.config.config_file)
        if stamp != self._key_stamp:
            self._fernet = load_config(self.config.home).fernet()
            self._key_stamp = stamp
        return self._fernet

    @property
    def installation_id(self) -> str:
        """This installation's id (from the platform database; every host that shares it shares the id).

        It is written into the marker of every database and role storekeeper makes,
        so two installations pointed at one server never touch each other's.
        """
        if self._installation is None:
            with self.session() as session:
                row = session.scalars(select(models.Installation).order_by(models.Installation.created_at)).first()
                if row is None:  # a platform database made without migration 0004's row
                    row = models.Installation(id=uuid.uuid4().hex[:16])
                    session.add(row)
                self._installation = row.id
        return self._installation

    def close(self) -> None:
        self.engine.dispose()


def _stamp(path: os.PathLike[str]) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def open_platform(config: Config | None = None, *, check: bool = True) -> Platform:
    """Open the platform database described by ``config`` (default: load it)."""
    config = config or load_config()
    stamp = _stamp(config.config_file)
    engine = db.make_engine(config.database_url)
    if check:
        db.check_schema(engine)
    return Platform(
        config=config,
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        _fernet=config.fernet(),
        _key_stamp=stamp,
    )


_lock = threading.Lock()
_current: dict[str, Platform] = {}


def load_platform() -> Platform:
    """Return this process's platform for the current home, opening it on first use."""
    home = os.environ.get("STOREKEEPER_HOME", "")
    platform = _current.get(home)
    if platform is None:
        with _lock:
            platform = _current.get(home)
            if platform is None:
                platform = _current[home] = open_platform()
    return platform


def reset_platform() -> None:
    """Forget the cached platform (tests and long-lived tools that change the home)."""
    with _lock:
        for platform in _current.values():
            platform.close()
        _current.clear()
