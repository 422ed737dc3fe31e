"""Rotating the secret key: a new key, every secret re-encrypted with it, the old one forgotten.

``storekeeper settings rotate-secret-key`` calls :func:`rotate_secret_key`. The
steps, each leaving every secret readable if the process dies right after it:

1. Check that every secret decrypts with the current key (else refuse, changing nothing).
2. Write config.yml (atomically) with a new ``secret_key`` and the old one as
   ``secret_key_previous``. From here on everything that decrypts
   (:meth:`storekeeper.config.Config.fernet`) accepts either key, and encrypts
   with the new one.
3. Re-encrypt every column of :data:`storekeeper.platform.ENCRYPTED_COLUMNS`
   with the new key, in one transaction.
4. Write config.yml (atomically) with the encrypted config keys
   (:data:`storekeeper.config.ENCRYPTED_KEYS`: the local server's password)
   re-encrypted and ``secret_key_previous`` removed.

A rotation that finds ``secret_key_previous`` already set (one was interrupted,
or an operator put an old key there) *resumes*: it generates no new key, and does
steps 3 and 4 with the current key. So running the command again after a crash
finishes the job, with the key the crashed run made.

A secret key kept in the environment (``STOREKEEPER_SECRET_KEY``) cannot be
replaced from here: the rotation refuses. To rotate it, set the new key there and
the old one in ``STOREKEEPER_SECRET_KEY_PREVIOUS``, run the command (it resumes:
re-encrypts everything with the new key), then unset the previous one.

The whole rotation holds the home's config lock (:func:`storekeeper.config.locked`).
``STOREKEEPER_TEST_CRASH_AT`` (test-only) kills the process with SIGKILL at a named
step, so tests can show that a crash at any step loses nothing.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from storekeeper import audit
from storekeeper.config import (
    ENCRYPTED_KEYS,
    env_var,
    home_dir,
    load_config,
    locked,
    new_secret_key,
    read_file,
    write_file,
)
from storekeeper.errors import ConfigError
from storekeeper.platform import ENCRYPTED_COLUMNS, Platform, open_platform

#: Test-only: the step after which the rotation kills its own process (see :data:`CRASH_POINTS`).
CRASH_ENV = "STOREKEEPER_TEST_CRASH_AT"
#: The steps a test can crash the rotation at, in order.
CRASH_POINTS = ("after-config", "in-database", "after-database")
#: The config key that keeps the old key while a rotation is under way.
PREVIOUS = "secret_key_previous"


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did; it holds no secret."""

    #: True when it finished an interrupted rotation instead of making a new key.
    resumed: bool
    #: How many secrets were re-encrypted, by ``table.column`` or config key.
    reencrypted: dict[str, int] = field(default_factory=dict)
    #: True when the previous key comes from STOREKEEPER_SECRET_KEY_PREVIOUS, which the operator must now unset.
    previous_in_env: bool = False

    @property
    def total(self) -> int:
        return sum(self.reencrypted.values())


def _crash_point(name: str) -> None:
    """Die here, as kill -9 would, when a test asked for it (STOREKEEPER_TEST_CRASH_AT)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _undecryptable(where: str) -> ConfigError:
    return ConfigError(
        f"{where} cannot be decrypted with the secret key (nor secret_key_previous): it was encrypted with "
        "another key. Nothing was changed.",
        hint="give that key back as secret_key_previous (storekeeper settings --set secret_key_previous OLD_KEY), "
        "then run storekeeper settings rotate-secret-key again",
        key="secret_key",
    )


def _row_name(row: object) -> str:
    name = getattr(row, "name", None)
    return f'"{name}"' if name is not None else f"id {getattr(row, 'id', '?')}"


def _reencrypt_database(session: Session, fernet: MultiFernet, *, primary: Fernet | None = None) -> dict[str, int]:
    """Re-encrypt every encrypted column's values in ``session`` with the primary key; return counts.

    With ``primary``, only the values it cannot decrypt (written meanwhile with the previous key).
    """
    counts: dict[str, int] = {}
    for column in ENCRYPTED_COLUMNS:
        model = column.class_
        label = f"{model.__tablename__}.{column.key}"
        counts[label] = 0
        rows = session.scalars(select(model).where(column.is_not(None)).with_for_update())
        for row in rows:
            token = getattr(row, column.key)
            if primary is not None and _decrypts(primary, token):
                continue
            try:
                setattr(row, column.key, fernet.rotate(token.encode()).decode())
            except InvalidToken:
                raise _undecryptable(f"{label} of {model.__name__} {_row_name(row)}") from None
            counts[label] += 1
    return counts


def _decrypts(fernet: Fernet, token: str) -> bool:
    try:
        fernet.decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def _check_database(platform: Platform, fernet: MultiFernet) -> None:
    """Raise unless every encrypted value in the platform database decrypts (changes nothing)."""
    with platform.sessions() as session:
        for column in ENCRYPTED_COLUMNS:
            model = column.class_
            for row in session.scalars(select(model).where(column.is_not(None))):
                try:
                    fernet.decrypt(getattr(row, column.key).encode())
                except InvalidToken:
                    raise _undecryptable(
                        f"{model.__tablename__}.{column.key} of {model.__name__} {_row_name(row)}"
                    ) from None


def _rotate_file_values(values: dict[str, object], fernet: MultiFernet) -> dict[str, int]:
    """Re-encrypt the encrypted config keys of ``values`` in place; return counts by key."""
    done: dict[str, int] = {}
    for key in ENCRYPTED_KEYS:
        token = values.get(key)
        if not token:
            continue
        try:
            values[key] = fernet.rotate(str(token).encode()).decode()
        except InvalidToken:
            raise _undecryptable(f"The config key {key}") from None
        done[key] = 1
    return done


def _refuse_env_key() -> ConfigError:
    key, previous = env_var("secret_key"), env_var(PREVIOUS)
    return ConfigError(
        f"The secret key comes from the environment ({key}), so it cannot be replaced in config.yml. "
        "Nothing was changed.",
        hint=f"set the new key in {key} and the old one in {previous}, run storekeeper settings rotate-secret-key "
        f"(it re-encrypts every secret with the new key), then unset {previous}",
        key="secret_key",
    )


def rotate_secret_key(home: str | os.PathLike[str] | None = None) -> RotationResult:
    """Replace the secret key with a new one and re-encrypt every secret with it (or finish doing so).

    See the module docstring for the steps and what a crash between them leaves.
    """
    root = home_dir(home)
    with locked(root):
        config = load_config(root)
        resumed = bool(config.secret_key_previous)
        if os.environ.get(env_var("secret_key")) and not resumed:
            raise _refuse_env_key()
        for key in ENCRYPTED_KEYS:
            if os.environ.get(env_var(key)):
                raise ConfigError(
                    f"{key} comes from the environment ({env_var(key)}), encrypted with the current key; the "
                    "rotation can only re-encrypt it in config.yml. Nothing was changed.",
                    hint=f"unset {env_var(key)} (to keep it in config.yml: storekeeper settings --set {key} VALUE), "
                    "then run storekeeper settings rotate-secret-key",
                    key=key,
                )
        platform = open_platform(config)
        try:
            if not resumed:
                # 1. Refuse now, before a new key exists, if some secret is unreadable already.
                fernet = config.fernet()
                _check_database(platform, fernet)
                _rotate_file_values(read_file(root), fernet)
                # 2. New key in, old key kept as the previous one.
                values = read_file(root)
                values[PREVIOUS] = values["secret_key"]
                values["secret_key"] = new_secret_key()
                write_file(root, values)
                _crash_point("after-config")
                platform.close()
                config = load_config(root)
                platform = open_platform(config)
            fernet = config.fernet()
            # 3. The platform database, in one transaction.
            with platform.session() as session:
                counts = _reencrypt_database(session, fernet)
                session.flush()
                _crash_point("in-database")
            _crash_point("after-database")
            # A process that encrypted with the previous key just before step 2 and wrote after
            # step 3 (unlikely: the portal reloads the keys when config.yml changes) is caught here.
            with platform.session() as session:
                _reencrypt_database(session, fernet, primary=Fernet(config.fernet_key()))
            # 4. The config file's secrets, and the previous key forgotten, in one write.
            values = read_file(root)
            counts.update(_rotate_file_values(values, fernet))
            values.pop(PREVIOUS, None)
            write_file(root, values)
            result = RotationResult(
                resumed=resumed,
                reencrypted=counts,
                previous_in_env=bool(os.environ.get(env_var(PREVIOUS))),
            )
            detail = ", ".join(f"{label}: {n}" for label, n in counts.items())
            audit.record_now(
                platform,
                "settings.rotate_secret_key",
                "secret_key",
                detail=("finished an interrupted rotation; " if resumed else "new key; ")
                + f"re-encrypted {result.total} secret(s) ({detail})",
            )
            return result
        finally:
            platform.close()
