"""The one seam between live stores and test copies: which databases store names resolve to.

In a plain process, store names resolve to the live stores (:data:`LIVE`).
With ``STOREKEEPER_TESTING=1`` they resolve to test copies, whose
implementation lives in :mod:`storekeeper.testing.copies`. The core never
imports that package in code: :func:`current` loads it by its dotted path
(:data:`TESTING_IMPLEMENTATION`) the first time testing mode is asked for, so
a plain script with the variable set (no pytest, nothing registered) resolves
to test copies too. If it cannot be loaded the call fails: a process in
testing mode never falls back to a live store.

A mode decides, for every operation on a store: the database name, whether an
engine needs an initialized store, how a store is provisioned, created,
dropped and found, and whether outcomes are recorded in the platform database.
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import Protocol

from sqlalchemy.orm import Session

from storekeeper.declaration import AppClass
from storekeeper.errors import StoreError
from storekeeper.platform import Platform
from storekeeper.stores.model import SyncResult, Target
from storekeeper.stores.provision import LIVE

#: The environment variable that turns testing mode on (``1``).
TESTING_ENV = "STOREKEEPER_TESTING"
#: Where testing mode's implementation lives: ``module:attribute``.
TESTING_IMPLEMENTATION = "storekeeper.testing.copies:TESTING"


class StoreMode(Protocol):
    """What a mode does with stores; :data:`LIVE` and ``storekeeper.testing.copies.TESTING`` implement it."""

    name: str
    #: Whether outcomes (store state, audit entries) are written to the platform database.
    records: bool
    #: Whether an engine is handed out only for a store recorded as initialized.
    requires_initialized: bool

    def database_name(self, package: str, name: str) -> str:
        """Return the database a store's name resolves to."""
        ...

    def unrecorded_target(self, platform: Platform, session: Session, package: str, name: str) -> Target | None:
        """Return the target of a store this mode knows that has no setting record, or None."""
        ...

    def before_engine(self, platform: Platform, target: Target) -> Target:
        """Make sure the database exists before an engine is handed out for it; return how to reach it."""
        ...

    def provision(self, platform: Platform, target: Target, *, refresh: bool, force_first_time: bool) -> SyncResult:
        """Make a store's database exist and run its initializer."""
        ...

    def create(
        self,
        platform: Platform,
        package: str,
        name: str,
        connection_name: str | None,
        *,
        spatial: bool,
        initializer: str,
        refresh: bool,
        force_first_time: bool,
        app_cls: AppClass | None,
        migrations: str = "",
    ) -> SyncResult:
        """Create a store at run time through a connection setting (``create_persistent_store``)."""
        ...

    def drop(self, platform: Platform, package: str, name: str) -> bool:
        """Drop a store (idempotent)."""
        ...

    def exists(self, platform: Platform, package: str, name: str) -> bool:
        """Ask the server whether a store's database exists."""
        ...

    def extra_store_names(self, platform: Platform, package: str, known: set[str]) -> list[str]:
        """Return names of an app's existing stores that the records do not list (not in ``known``)."""
        ...


_testing: StoreMode | None = None
_load_lock = threading.Lock()


def testing_mode() -> bool:
    """Return True when stores resolve to test copies (``STOREKEEPER_TESTING=1``)."""
    return os.environ.get(TESTING_ENV) == "1"


def current() -> StoreMode:
    """Return the mode of this process right now: live stores, or test copies in testing mode."""
    if not testing_mode():
        return LIVE
    return _testing if _testing is not None else _load_testing()


def _load_testing() -> StoreMode:
    global _testing
    with _load_lock:
        if _testing is None:
            module_name, _, attr = TESTING_IMPLEMENTATION.partition(":")
            try:
                _testing = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as err:
                raise StoreError(
                    f"{TESTING_ENV}=1 asks for test copies, but their implementation "
                    f"({TESTING_IMPLEMENTATION}) cannot be loaded: {err}",
                    hint=f"reinstall storekeeper (pip install --force-reinstall storekeeper), or unset {TESTING_ENV}",
                ) from None
        return _testing
