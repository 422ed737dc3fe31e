"""Stores: sync, create, drop, check, list and resolve the databases behind apps' settings.

The functions here are the core's store API, which the CLI, the portal and
:class:`storekeeper.AppBase` call. Each idea has a module of its own:

============================  ===================================================
:mod:`~.model`                targets, results, listings
:mod:`~.records`              the platform records behind stores (state, settings)
:mod:`~.provision`            the live create / initialize / drop state machine
:mod:`~.initializers`         finding and running ``init(engine, first_time)``
:mod:`~.mode`                 live stores or test copies: the one seam for testing
:mod:`~.resolve`              engines by name (the cold side of the hot path)
:mod:`~.roles`                each store's own login role; rotating its password
:mod:`~.sync`                 sync, create and drop in the current mode
:mod:`~.listing`              which stores exist
:mod:`~.dumps`                backup files; finding pg_dump and pg_restore
:mod:`~.backups`              export, import (restore aside, swap in), clone
:mod:`~.adopt`                taking over databases another tool made (Tethys)
:mod:`~.migrations`           schema migrations (Alembic) of stores that declare them
============================  ===================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storekeeper.stores.adopt import AdoptResult, adopt_stores
from storekeeper.stores.initializers import check_initializer_path
from storekeeper.stores.listing import connection_names, existing_store_names, list_stores, store_exists
from storekeeper.stores.mode import StoreMode, testing_mode
from storekeeper.stores.model import DEFAULT_JOBS, StoreInfo, SyncResult, Target
from storekeeper.stores.resolve import resolve
from storekeeper.stores.roles import RotationResult, rotate_credentials
from storekeeper.stores.sync import create_store, drop_store, sync_stores

if TYPE_CHECKING:
    from storekeeper.stores.migrations import (
        MigrateResult,
        MigrationStatus,
        NewRevision,
        RevisionInfo,
        migrate,
        migration_history,
        migration_status,
        migration_target,
        new_revision,
    )

#: Names from :mod:`~.migrations`, imported on first use: it imports Alembic (and Mako), which a
#: command on stores without migrations never needs.
_MIGRATION_NAMES = frozenset(
    {
        "MigrateResult",
        "MigrationStatus",
        "NewRevision",
        "RevisionInfo",
        "migrate",
        "migration_history",
        "migration_status",
        "migration_target",
        "new_revision",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MIGRATION_NAMES:
        from storekeeper.stores import migrations

        return getattr(migrations, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_JOBS",
    "AdoptResult",
    "MigrateResult",
    "MigrationStatus",
    "NewRevision",
    "RevisionInfo",
    "RotationResult",
    "StoreInfo",
    "StoreMode",
    "SyncResult",
    "Target",
    "adopt_stores",
    "check_initializer_path",
    "connection_names",
    "create_store",
    "drop_store",
    "existing_store_names",
    "list_stores",
    "migrate",
    "migration_history",
    "migration_status",
    "migration_target",
    "new_revision",
    "resolve",
    "rotate_credentials",
    "store_exists",
    "sync_stores",
    "testing_mode",
]
