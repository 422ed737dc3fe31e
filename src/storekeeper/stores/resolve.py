"""Resolution: the engine behind an app's store or connection setting, by name.

This is the cold side of the hot path: :class:`storekeeper.AppBase` reads the
engine cache (:mod:`storekeeper.engines`) directly and comes here only when a
handle is missing or due for revalidation.
"""

from __future__ import annotations

from collections.abc import Callable

from storekeeper import discovery, engines
from storekeeper.backends import get_backend
from storekeeper.backends.names import check_name
from storekeeper.declaration import AppClass
from storekeeper.errors import SettingError, StoreError
from storekeeper.platform import Platform
from storekeeper.platform.models import ABSENT, DATABASE, FAILED, INITIALIZED, Service, Setting
from storekeeper.services import password_candidates, service_spec
from storekeeper.stores import mode, records, roles
from storekeeper.stores.model import Target
from storekeeper.stores.provision import LIVE


def resolve(platform: Platform, app_cls: AppClass, name: str, kind: str) -> engines.Handle:
    """Build or revalidate the cached engine handle for an app's store or connection.

    In testing mode a store resolves to its test copy, cloned on demand.
    """
    # Cold path only: one thread builds a handle at a time, so two threads missing the
    # cache together do not build two engines (and briefly hold twice the pool).
    with engines.build_lock:
        return _resolve(platform, app_cls, name, kind)


def _resolve(platform: Platform, app_cls: AppClass, name: str, kind: str) -> engines.Handle:
    cache = engines.DATABASES if kind == DATABASE else engines.CONNECTIONS
    key = (app_cls.package, name)
    ttl = platform.config.engines_revalidate_seconds
    check_name(name, what="store" if kind == DATABASE else "setting")
    discovery.ensure_registered(platform, app_cls)
    stores = mode.current() if kind == DATABASE else LIVE  # connections are the same in every mode
    target: Target | None = None
    with platform.session() as session:
        app = records.load_app(session, app_cls.package)
        row = records.find_setting(app, name)
        unrecorded = stores.unrecorded_target(platform, session, app.package, name) if row is None else None
        if unrecorded is not None:
            target = unrecorded
            service, generation = session.get(Service, target.spec.id), 0
        else:
            row = row or records.get_setting(app, name)
            if row.kind != kind:
                raise records.wrong_kind(app.package, name, row.kind)
            if row.service is None:
                raise SettingError.unassigned(app.package, name)
            if kind == DATABASE and row.state != INITIALIZED and stores.requires_initialized:
                # Handing out an engine for a failed or half-made store would let the app
                # write data that the next sync drops when it recreates the store.
                raise _not_ready(app.package, row)
            if kind == DATABASE:
                target = records.make_target(platform, app, row, stores.database_name(app.package, name))
            service, generation = row.service, row.generation
        assert service is not None
        dbname = target.database if target is not None else service.maintenance_db
        token = (service.id, service.version, generation, dbname, target.role if target is not None else None)
        handle = cache.get(key)
        if handle is not None and handle.token == token:
            handle.expires = engines.deadline(ttl)
            return handle
        spec = target.spec if target is not None else service_spec(platform, service)
    if target is not None:
        target = stores.before_engine(platform, target)
    backend = get_backend("postgresql", spec)
    # A store is reached as its own role when it has one; a connection setting as the service user.
    url = backend.url(dbname, login=target.login if target is not None else None)
    passwords: Callable[[], list[str]] | None = None
    if target is None:  # a connection setting: the service user, whose password may be rotated
        service_id = spec.id
        passwords = lambda: password_candidates(platform, service_id)  # noqa: E731
    elif target.role is not None and target.setting_id >= 0 and stores.records:
        setting_id = target.setting_id
        passwords = lambda: roles.login_candidates(platform, setting_id)  # noqa: E731
    engine = engines.make_engine(
        spec,
        url,
        application=f"storekeeper:{app_cls.package}",
        idle_timeout=platform.config.engines_idle_timeout_seconds,
        passwords=passwords,
    )
    handle = engines.Handle(engine=engine, url=url, token=token, expires=engines.deadline(ttl), service=spec.name)
    return engines.install(cache, key, handle)


def _not_ready(package: str, row: Setting) -> StoreError:
    hint = (
        f"storekeeper syncstores {package}"
        if not row.dynamic
        else f'create it again: create_persistent_store("{row.name}", "{row.connection_name}")'
    )
    if row.state == ABSENT:
        what = "has not been created yet"
    elif row.state == FAILED:
        what = f"is not initialized (its last initializer run failed: {row.last_error})"
    else:
        what = "is not initialized yet"
    return StoreError(f'Store "{row.name}" of app "{package}" {what}.', hint=hint, app=package, setting=row.name)
