"""The platform records behind stores: reading an app's settings, writing a store's state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from storekeeper.backends.names import check_name
from storekeeper.errors import AppError, SettingError, StoreError
from storekeeper.platform import Platform
from storekeeper.platform.models import CONNECTION, DATABASE, App, Setting
from storekeeper.services import service_spec
from storekeeper.stores.model import Target


def load_app(session: Session, package: str) -> App:
    """Return an app's record with its settings; raise naming the fix when it is unknown."""
    app = find_app(session, package)
    if app is None:
        raise AppError.not_found(package)
    return app


def find_app(session: Session, package: str) -> App | None:
    """Return an app's record with its settings, or None (a name that breaks the rule is refused, naming it)."""
    check_name(package, what="app package")
    return session.scalar(select(App).where(App.package == package).options(selectinload(App.settings)))


def find_setting(app: App, name: str) -> Setting | None:
    """Return an app's setting (declared or dynamic) by name, or None (a bad name is refused with the rule)."""
    check_name(name, what="setting")
    return next((s for s in app.settings if s.name == name), None)


def get_setting(app: App, name: str) -> Setting:
    """Return an app's setting by name; raise listing the known ones when there is none."""
    row = find_setting(app, name)
    if row is None:
        raise SettingError.not_found(app.package, name, [s.name for s in app.settings if not s.orphaned])
    return row


def wrong_kind(app: str, name: str, kind: str) -> SettingError:
    """Return the error for a setting used as the other kind (``kind`` is what it really is)."""
    if kind == CONNECTION:
        return SettingError(
            f'"{name}" of app "{app}" is a connection setting, not a database.',
            hint=f'use get_persistent_store_connection("{name}")',
            app=app,
            setting=name,
        )
    return SettingError(
        f'"{name}" of app "{app}" is a database setting, not a connection.',
        hint=f'use get_persistent_store_database("{name}")',
        app=app,
        setting=name,
    )


def connection_for_store(app: App, connection_name: str, store: str) -> Setting:
    """Return the assigned connection setting a store is created through; refuse a store name it owns."""
    conn_row = get_setting(app, connection_name)
    if conn_row.kind != CONNECTION:
        raise wrong_kind(app.package, connection_name, conn_row.kind)
    if conn_row.service is None:
        raise SettingError.unassigned(app.package, connection_name)
    clash = find_setting(app, store)
    if clash is not None and clash.kind != DATABASE:
        raise StoreError(
            f'App "{app.package}" already has a connection setting named "{store}"; a store cannot share its name.',
            hint="choose another store name",
            app=app.package,
            setting=store,
        )
    return conn_row


def make_target(platform: Platform, app: App, row: Setting, database: str) -> Target:
    """Return the target that provisions ``row``'s store as database ``database``."""
    if row.service is None:
        raise SettingError.unassigned(app.package, row.name)
    role = row.role_name if row.role_password else None
    return Target(
        app=app.package,
        name=row.name,
        setting_id=row.id,
        database=database,
        spatial=row.spatial,
        initializer=row.initializer,
        migrations=row.migrations or "",
        backend=row.service.backend,
        spec=service_spec(platform, row.service),
        role=role,
        role_password=platform.decrypt(row.role_password, service=row.service.name)
        if role and row.role_password
        else None,
    )


def read_role(platform: Platform, setting_id: int) -> tuple[str, str, str | None] | None:
    """Return a store's recorded role, its password and a pending new one (decrypted), or None."""
    with platform.session() as session:
        row = session.get(Setting, setting_id)
        if row is None or not row.role_name or not row.role_password:
            return None
        service = row.service.name if row.service else row.name
        pending = platform.decrypt(row.role_password_pending, service=service) if row.role_password_pending else None
        return row.role_name, platform.decrypt(row.role_password, service=service), pending


def read_state(platform: Platform, setting_id: int, default: str) -> str:
    """Return a store's recorded state (``default`` when its record is gone)."""
    with platform.session() as session:
        row = session.get(Setting, setting_id)
        return row.state if row is not None else default


def set_state(platform: Platform, setting_id: int, **values: Any) -> None:
    """Write a store's state (and other columns of its setting) in a transaction of its own."""
    with platform.session() as session:
        row = session.get(Setting, setting_id)
        if row is not None:
            for key, value in values.items():
                setattr(row, key, value)


def bump(platform: Platform, setting_id: int, **values: Any) -> None:
    """Like :func:`set_state`, and tell other processes' engine caches the database changed."""
    with platform.session() as session:
        row = session.get(Setting, setting_id)
        if row is not None:
            row.generation += 1
            for key, value in values.items():
                setattr(row, key, value)
