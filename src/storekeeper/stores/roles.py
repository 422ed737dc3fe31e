"""Store roles: each store's own login role, its password, and rotating that password.

When the service user may create roles, every store is reached as a login
role named like its database, which owns the database and everything in it.
Its password is recorded in the platform database (encrypted) before the
server is told, so a crash at any point is finished by the next command:

    recorded: current            -> rotation starts
    recorded: current + pending  -> ALTER ROLE ... PASSWORD <pending> (as a SCRAM verifier)
    recorded: pending promoted   -> done; the old password is refused from now on

Processes still holding the old password recover on their own: a connect that
fails re-reads the current and pending passwords and tries them once
(:func:`login_candidates`, used by :mod:`storekeeper.stores.resolve`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from storekeeper import audit, engines
from storekeeper.backends import get_backend
from storekeeper.backends import postgresql as pg
from storekeeper.backends.names import database_name
from storekeeper.errors import StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import ABSENT, DATABASE, Setting
from storekeeper.stores import records
from storekeeper.stores.model import Target


def ensure_store_role(
    platform: Platform, backend: pg.PostgresBackend, conn: Any, target: Target, *, trust_recorded: bool = False
) -> Target:
    """Give a store its own login role when the service may create roles; return the target reached as it.

    The role is named like the store's database. Its password is recorded
    (encrypted) before the role is created or changed, so a crash in between
    is repaired by the next sync, which sets the recorded password again (a
    rotation left pending is finished). When the service user may not create
    roles, the store is reached as the service user, as before.

    ``trust_recorded``: an existing role keeps its password (no catalog write) when no
    rotation is pending; the caller logs in as the role next and, if the server refuses
    the recorded password, sets it with :func:`reset_password` and tries again.
    """
    if not backend.can_create_roles(conn):
        return target.as_role(None, None)
    role = target.database
    found = records.read_role(platform, target.setting_id)
    if found is None or found[0] != role:
        password = pg.new_password()
        records.set_state(platform, target.setting_id, role_name=role, role_password=platform.encrypt(password))
        backend.ensure_role(conn, role, password, owner=target.owner, what=target.what)
        return target.as_role(role, password)
    _, current, pending = found
    keep = trust_recorded and pending is None
    backend.ensure_role(conn, role, pending or current, owner=target.owner, what=target.what, set_password=not keep)
    if pending is not None:
        _promote(platform, target.setting_id)
    return target.as_role(role, pending or current)


def reset_password(backend: pg.PostgresBackend, conn: Any, target: Target) -> None:
    """Give a store's role its recorded password again (the server refused it: changed by hand, or restored)."""
    if target.role is not None and target.role_password is not None:
        backend.set_role_password(conn, target.role, target.role_password, what=target.what)


def _promote(platform: Platform, setting_id: int) -> None:
    """Make the pending password the current one (the server already has it)."""
    with platform.session() as session:
        row = session.get(Setting, setting_id)
        if row is not None and row.role_password_pending:
            row.role_password, row.role_password_pending = row.role_password_pending, None
            row.generation += 1


def login_candidates(platform: Platform, setting_id: int) -> list[str]:
    """Return the passwords a store's role may have right now: the recorded one, then a pending one."""
    found = records.read_role(platform, setting_id)
    if found is None:
        return []
    return [p for p in (found[1], found[2]) if p]


@dataclass(frozen=True)
class RotationResult:
    """What rotating one store's credentials did."""

    app: str
    store: str
    role: str | None
    action: str  # "rotated", "skipped (...)"
    ok: bool = True
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rotate_credentials(platform: Platform, package: str, *, database: str | None = None) -> list[RotationResult]:
    """Give each store of an app (or one) a new role password; the old one is refused from then on.

    Sessions already open stay open (as PostgreSQL does); new connections of
    processes that still hold the old password re-read it and succeed.
    """
    with platform.session() as session:
        app = records.load_app(session, package)
        rows = [records.get_setting(app, database)] if database is not None else list(app.settings)
        if database is not None and rows[0].kind != DATABASE:
            raise records.wrong_kind(package, database, rows[0].kind)
        work = [
            (
                row.name,
                row.state,
                records.make_target(platform, app, row, database_name(package, row.name)) if row.service else None,
            )
            for row in rows
            if row.kind == DATABASE and not row.orphaned
        ]
    results = []
    for name, state, target in work:
        if target is None:
            results.append(RotationResult(package, name, None, "skipped (no service assigned)"))
        elif target.role is None and state == ABSENT:
            results.append(RotationResult(package, name, None, "skipped (not created yet)"))
        elif target.role is None:
            results.append(RotationResult(package, name, None, "skipped (reached as the service user)"))
        else:
            results.append(_rotate_one(platform, target))
    return results


def _rotate_one(platform: Platform, target: Target) -> RotationResult:
    started = time.perf_counter()
    assert target.role is not None
    backend = get_backend(target.backend, target.spec)
    try:
        with backend.store_lock(target.database) as conn:
            found = records.read_role(platform, target.setting_id)
            # A rotation a crash left pending is finished with its own password, not a new one.
            new = found[2] if found is not None and found[2] else pg.new_password()
            records.set_state(platform, target.setting_id, role_password_pending=platform.encrypt(new))
            backend.set_role_password(conn, target.role, new, what=target.what)
            _promote(platform, target.setting_id)
    except StorekeeperError as err:
        audit.record_now(platform, "store.rotate", target.owner, "error", err.message)
        return RotationResult(target.app, target.name, target.role, "failed", ok=False, error=err.message)
    engines.invalidate(target.app, target.name)
    audit.record_now(platform, "store.rotate", target.owner, "ok", f"role {target.role}")
    return RotationResult(target.app, target.name, target.role, "rotated", seconds=time.perf_counter() - started)
