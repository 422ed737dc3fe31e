"""Sync, create and drop stores: the operations the CLI, the portal and apps call.

Each works in the current mode (:mod:`storekeeper.stores.mode`): on the live
stores, or on test copies in testing mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from storekeeper import audit, discovery
from storekeeper.app_settings import check_migrations
from storekeeper.backends import postgresql as pg
from storekeeper.backends.names import check_name, database_name
from storekeeper.declaration import AppClass
from storekeeper.errors import AppError, SettingError, StoreError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import DATABASE
from storekeeper.stores import mode, provision, records
from storekeeper.stores.model import DEFAULT_JOBS, SyncResult, Target

#: One unit of a sync: app, store, and its target (or why it has none; None: skipped).
_Work = tuple[str, str, Target | StorekeeperError | None]


def sync_stores(
    platform: Platform,
    apps: Sequence[str] | None = None,
    *,
    refresh: bool = False,
    first_time: bool = False,
    database: str | None = None,
    dry_run: bool = False,
    on_result: Callable[[SyncResult], None] | None = None,
    jobs: int = DEFAULT_JOBS,
) -> list[SyncResult]:
    """Create missing stores and run their initializers.

    ``apps=None`` syncs every installed app. Each store's outcome is returned
    in declaration order (and passed to ``on_result`` as it finishes); one
    store's failure does not stop the others. Up to ``jobs`` stores are worked
    on at once, so initializers may run in parallel threads (``jobs=1`` runs
    them one after another).
    """
    packages = _selected_apps(platform, apps)
    stores = mode.current()
    work = _work(platform, packages, database, stores)

    def one(package: str, name: str, item: Target | StorekeeperError | None) -> SyncResult:
        if item is None:
            return SyncResult(
                app=package, store=name, database=None, service=None, action="skipped (optional, no service)", ok=True
            )
        if isinstance(item, StorekeeperError):
            return SyncResult.failure(package, name, None, None, item)
        if dry_run:  # a dry run writes nothing, not even to the audit log
            try:
                return provision.plan(platform, item, refresh=refresh, force_first_time=first_time)
            except StorekeeperError as err:
                return SyncResult.failure(package, name, item.database, item.spec.name, err)
        try:
            result = stores.provision(platform, item, refresh=refresh, force_first_time=first_time)
        except Exception as exc:
            # One store's failure, whatever it is (a dropped connection too), never stops the others.
            failed = (
                exc
                if isinstance(exc, StorekeeperError)
                else StoreError(
                    f"Syncing {item.what} failed: {type(exc).__name__}: {pg.first_line(exc)}",
                    hint=f"storekeeper services test {item.spec.name}; then run the sync again",
                )
            )
            if stores.records:
                with contextlib.suppress(Exception):
                    audit.record_now(platform, "store.sync", f"{package}/{name}", "error", failed.message)
            return SyncResult.failure(package, name, item.database, item.spec.name, failed)
        if stores.records:
            audit.record_now(platform, "store.sync", f"{package}/{name}", "ok", result.action)
        return result

    with pg.reusing_lock_connections():  # a few lock connections per service, not one per store
        return _run(work, one, jobs, on_result)


def _run(
    work: list[_Work],
    one: Callable[[str, str, Target | StorekeeperError | None], SyncResult],
    jobs: int,
    on_result: Callable[[SyncResult], None] | None,
) -> list[SyncResult]:
    """Work on each store, up to ``jobs`` at once; return the results in ``work``'s order."""
    workers = max(1, min(jobs, len(work)))
    if workers == 1:
        results = []
        for entry in work:
            results.append(one(*entry))
            if on_result is not None:
                on_result(results[-1])
        return results
    # Stores are independent (each has its own advisory lock), and most of a store's
    # time is spent waiting on its server: work on several at once.
    done: dict[int, SyncResult] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="storekeeper-sync") as pool:
        futures = {pool.submit(one, *entry): i for i, entry in enumerate(work)}
        for future in as_completed(futures):
            result = future.result()
            done[futures[future]] = result
            if on_result is not None:
                on_result(result)
    return [done[i] for i in range(len(work))]


def _selected_apps(platform: Platform, apps: Sequence[str] | None) -> list[str]:
    """Return the packages to sync: every installed app, or the named ones (each must be installed)."""
    if apps is None:
        discovery.discover(platform)
        return sorted(discovery.installed_apps()[0])
    packages = list(dict.fromkeys(apps))
    for package in packages:
        check_name(package, what="app package")
    problems = discovery.discover(platform, packages)  # imports the named apps only
    installed, _ = discovery.load_apps(packages)
    for package in packages:
        if package not in installed:
            broken = next((p for p in problems if p.entry_point == package), None)
            if broken:
                raise AppError(broken.message, app=package)
            raise AppError.not_found(package)
    return packages


def _work(platform: Platform, packages: list[str], database: str | None, stores: mode.StoreMode) -> list[_Work]:
    """Return the stores a sync works on, each with its target (or why it has none)."""
    work: list[_Work] = []
    with platform.session() as session:
        for package in packages:
            app = records.load_app(session, package)
            if database is not None:
                rows = [records.get_setting(app, database)]
                if rows[0].kind != DATABASE:
                    raise records.wrong_kind(package, database, rows[0].kind)
            else:
                rows = [s for s in app.settings if s.kind == DATABASE and not s.orphaned and not s.dynamic]
            for row in rows:
                if row.service is None:
                    err = SettingError.unassigned(package, row.name)
                    work.append((package, row.name, err if row.required else None))
                    continue
                try:
                    target = records.make_target(platform, app, row, stores.database_name(package, row.name))
                    work.append((package, row.name, target))
                except StorekeeperError as err:
                    work.append((package, row.name, err))
    return work


def create_store(
    platform: Platform,
    package: str,
    name: str,
    connection_name: str | None,
    *,
    spatial: bool = False,
    initializer: str = "",
    refresh: bool = False,
    force_first_time: bool = False,
    app_cls: AppClass | None = None,
    migrations: str = "",
) -> SyncResult:
    """Create a store at run time (idempotent) through a connection setting, and initialize it.

    A name that matches a declared database setting provisions that static
    store; any other name makes a dynamic store on the connection's service.
    In testing mode only test copies are made (``connection_name=None`` makes a
    copy of an existing store).
    """
    check_name(package, what="app package")
    database_name(package, name)
    check_migrations(migrations, setting=name)
    return mode.current().create(
        platform,
        package,
        name,
        connection_name,
        spatial=spatial,
        initializer=initializer,
        refresh=refresh,
        force_first_time=force_first_time,
        app_cls=app_cls,
        migrations=migrations,
    )


def drop_store(platform: Platform, package: str, name: str, *, app_cls: AppClass | None = None) -> bool:
    """Drop a store's database (idempotent); a dynamic store's record goes with it."""
    check_name(package, what="app package")
    check_name(name, what="store")
    if app_cls is not None:
        discovery.ensure_registered(platform, app_cls)
    return mode.current().drop(platform, package, name)
