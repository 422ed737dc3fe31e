"""Adopting databases another tool made under a store's name: ``storekeeper apps adopt``.

Tethys Platform names an app's databases as storekeeper does
(``<app package>_<setting name>``), owned by its service user and with no
marker, so a sync refuses them. Adoption is the one explicit way to take such a
database over, in place, data and all. It changes owners and markers, never a
database's contents: it creates no table and no extension, and runs no
initializer (the next sync runs it with ``first_time=False``).

Under the store's advisory lock, each step is written before the next is taken,
so a kill -9 anywhere is finished by the next adoption or sync and nothing is
recorded ready before the server's marker says so::

    unmarked --marker "adopting"--> ours: a sync keeps it (never recreates it empty) and finishes the rest
             --store role made (password recorded first, see roles)-->
             --database and every object the service user owns in it handed to the role-->
             --marker "initialized"--> --record "initialized"--> adopted

A database no installation marked, with tables in it, is what is adopted. One
marked by this installation is *already adopted* (or its adoption is finished).
Another installation's, another store's, an empty one, or one whose tables
other roles own are refused, as is a spatial setting's database without
PostGIS; a non-spatial setting's database with PostGIS is adopted, with a note.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from psycopg import sql

from storekeeper import audit, discovery, engines
from storekeeper.backends import get_backend
from storekeeper.backends import postgresql as pg
from storekeeper.backends.names import check_name, database_name
from storekeeper.errors import AppError, SettingError, StoreError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import ABSENT, DATABASE, INITIALIZED, utcnow
from storekeeper.stores import mode, records, roles
from storekeeper.stores.model import Target

ADOPTED, ALREADY, WOULD = "adopted", "already adopted", "would adopt"


@dataclass(frozen=True)
class AdoptResult:
    """What adopting one store's database did (or, in a dry run, would do)."""

    app: str
    store: str
    database: str | None
    service: str | None
    #: "adopted", "already adopted", "would adopt", "skipped (...)" or "failed".
    action: str
    ok: bool
    #: The tables and views found in it (``public.`` left out of their names).
    tables: list[str] = field(default_factory=list)
    #: The PostGIS version installed in it; None: none.
    postgis: str | None = None
    #: The store's own role, which owns the database once adopted; None: reached as the service user.
    role: str | None = None
    #: Objects handed to the role (in a dry run: that would be).
    objects: int | None = None
    #: What an admin should know that did not stop it.
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def adopt_stores(
    platform: Platform, package: str, *, database: str | None = None, dry_run: bool = False
) -> list[AdoptResult]:
    """Adopt the databases of an installed app's database settings (all assigned ones, or one).

    Each setting's outcome is returned in declaration order; one store's refusal
    does not stop the others. A named setting that is unknown, not a database
    setting, or has no service raises.
    """
    if mode.current().name != "live":
        raise StoreError(
            "Adoption works on live stores only, and testing mode is on (STOREKEEPER_TESTING=1).",
            hint=f"unset STOREKEEPER_TESTING, then: storekeeper apps adopt {package}",
            app=package,
        )
    check_name(package, what="app package")
    problems = discovery.discover(platform, [package])  # imports this app only
    installed, _ = discovery.load_apps([package])
    if package not in installed:
        broken = next((p for p in problems if p.entry_point == package), None)
        raise AppError(broken.message, app=package) if broken else AppError.not_found(package)
    results: list[AdoptResult] = []
    for name, item in _work(platform, package, database):
        if isinstance(item, Target):
            results.append(adopt_one(platform, item, dry_run=dry_run))
        elif database is None and isinstance(item, SettingError):  # not assigned: not part of this adoption
            results.append(
                AdoptResult(
                    package,
                    name,
                    database_name(package, name),
                    None,
                    "skipped (no service assigned)",
                    True,
                    hint=item.hint,
                )
            )
        else:
            if not dry_run:
                audit.record_now(platform, "store.adopt", f"{package}/{name}", "error", item.message)
            results.append(_failure(package, name, None, None, item))
    return results


def _work(platform: Platform, package: str, database: str | None) -> list[tuple[str, Target | StorekeeperError]]:
    """Return the settings to adopt, each with its target (or why it has none)."""
    work: list[tuple[str, Target | StorekeeperError]] = []
    with platform.session() as session:
        app = records.load_app(session, package)
        if database is not None:
            row = records.get_setting(app, database)
            if row.kind != DATABASE:
                raise records.wrong_kind(package, database, row.kind)
            if row.service is None:
                raise SettingError.unassigned(package, database)
            rows = [row]
        else:
            rows = [s for s in app.settings if s.kind == DATABASE and not s.orphaned and not s.dynamic]
        for row in rows:
            try:
                work.append((row.name, records.make_target(platform, app, row, database_name(package, row.name))))
            except StorekeeperError as err:
                work.append((row.name, err))
    return work


def _failure(app: str, store: str, database: str | None, service: str | None, err: StorekeeperError) -> AdoptResult:
    return AdoptResult(app, store, database, service, "failed", False, error=err.message, hint=err.hint)


def adopt_one(platform: Platform, target: Target, *, dry_run: bool = False) -> AdoptResult:
    """Adopt one store's database (see the module docstring); a refusal is returned as a failed result."""
    started = time.perf_counter()
    backend = get_backend(target.backend, target.spec)
    try:
        if dry_run:  # reads only: no lock, no record, no audit entry
            with backend.connect() as conn:
                result = _adopt(platform, backend, conn, target, dry_run=True)
        else:
            with backend.store_lock(target.database) as conn:
                result = _adopt(platform, backend, conn, target, dry_run=False)
    except Exception as exc:
        # One store's failure, whatever it is (a dropped connection too), never stops the others;
        # whatever was done is finished by running the adoption (or a sync) again.
        err = (
            exc
            if isinstance(exc, StorekeeperError)
            else StoreError(
                f"Adopting {target.what} failed: {type(exc).__name__}: {pg.first_line(exc)}",
                hint=f"storekeeper services test {target.spec.name}; then: "
                f"storekeeper apps adopt {target.app} --database {target.name}",
                app=target.app,
                setting=target.name,
            )
        )
        if not dry_run:
            with contextlib.suppress(Exception):
                audit.record_now(platform, "store.adopt", target.owner, "error", err.message)
        return _failure(target.app, target.name, target.database, target.spec.name, err)
    if not dry_run:
        detail = result.action if result.action == ALREADY else f"{result.action}: {len(result.tables)} table(s)"
        if result.role and result.action != ALREADY:
            detail += f"; role {result.role} owns the database and {result.objects} object(s) moved to it"
        audit.record_now(platform, "store.adopt", target.owner, "ok", detail)
    return AdoptResult(**{**result.to_dict(), "seconds": time.perf_counter() - started})


def _adopt(platform: Platform, backend: pg.PostgresBackend, conn: Any, target: Target, *, dry_run: bool) -> AdoptResult:
    db = target.database
    quoted = sql.Identifier(db).as_string(None)
    again = f"storekeeper apps adopt {target.app} --database {target.name}"

    def refuse(message: str, hint: str) -> StoreError:
        return StoreError(
            f"Cannot adopt {target.what} on {target.spec.where}: {message}",
            hint=hint,
            app=target.app,
            setting=target.name,
            service=target.spec.name,
        )

    marker = backend.marker(conn, db)
    state = records.read_state(platform, target.setting_id, ABSENT)
    if not marker.exists:
        raise refuse(
            f"there is no database {db}.",
            f"check the app and setting (the database is named APP_SETTING, as Tethys names it); or have a sync "
            f"make it empty: storekeeper syncstores {target.app} --database {target.name}",
        )
    target.check_owner(marker)  # another installation's, or another store's: never adopted
    if marker.invalid:
        raise refuse(
            "a DROP DATABASE of it was cut short, so PostgreSQL can only drop it now; its data is gone.",
            f"on the server: DROP DATABASE {quoted}; then: storekeeper syncstores {target.app} --database {target.name}",
        )
    if marker.storekeepers and marker.state not in (pg.INITIALIZED, pg.ADOPTING):
        raise refuse(
            f"a storekeeper sync made it (marker {marker.state!r}) and never initialized it; there is nothing to adopt.",
            f"storekeeper syncstores {target.app} --database {target.name}",
        )
    role = db if backend.can_create_roles(conn) else None
    done = marker.state == pg.INITIALIZED and state == INITIALIZED
    if done and (role is None or backend.database_owner(conn, db) == role):
        return AdoptResult(target.app, target.name, db, target.spec.name, ALREADY, True, role=role)  # nothing changes
    survey = backend.survey(conn, db, role)
    notes = []
    if not survey.may_take:
        raise refuse(
            f'it is owned by "{survey.owner}", and user "{target.spec.username}" is neither a superuser nor a '
            "member of that role, so it may not hand the database over.",
            f"as a superuser: GRANT {sql.Identifier(survey.owner or '').as_string(None)} TO "
            f"{sql.Identifier(target.spec.username).as_string(None)}; then: {again}",
        )
    if survey.others:
        owners = sorted({owner for _, owner in survey.others})
        shown = ", ".join(f"{name} (owner {owner})" for name, owner in survey.others[:5])
        more = f" and {len(survey.others) - 5} more" if len(survey.others) > 5 else ""
        raise refuse(
            f"tables in it are owned by roles other than the service user, and adoption moves only what that "
            f"user owns: {shown}{more}.",
            f"as a superuser, in database {quoted}: "
            + "; ".join(
                f"REASSIGN OWNED BY {sql.Identifier(o).as_string(None)} TO "
                f"{sql.Identifier(target.spec.username).as_string(None)}"
                for o in owners
            )
            + f"; then: {again}",
        )
    if not survey.tables and marker.state is None:
        raise refuse(
            "it has no tables, so there is no data to keep (its initializer never ran, or failed).",
            f"drop it on the server (DROP DATABASE {quoted}), then have a sync make it and run the "
            f"initializer with first_time=True: storekeeper syncstores {target.app} --database {target.name}",
        )
    if target.spatial and survey.postgis is None:
        raise refuse(
            "the setting is spatial but PostGIS is not installed in the database (adoption changes owners and "
            "markers, never a database's contents).",
            f"as a superuser, in database {quoted}: CREATE EXTENSION postgis; then: {again}",
        )
    if not target.spatial and survey.postgis is not None:
        notes.append(f"PostGIS {survey.postgis} is installed, though the setting is not spatial (it is kept)")
    if role is None:
        notes.append(
            f'user "{target.spec.username}" may not create roles: the store is reached as that user, and the '
            "database keeps its owner"
        )
    found = AdoptResult(
        target.app,
        target.name,
        db,
        target.spec.name,
        WOULD if dry_run else ADOPTED,
        True,
        tables=survey.tables,
        postgis=survey.postgis,
        role=role,
        objects=survey.objects,
        notes=notes,
    )
    if dry_run:
        return found
    # 1. Ours from here on: a sync keeps it and finishes the rest; it is never recreated empty.
    if marker.state is None:
        backend.set_marker(conn, db, pg.ADOPTING, target.owner)
    # 2. Its own role (password recorded before the role is made).
    target = roles.ensure_store_role(platform, backend, conn, target)
    moved = 0
    if target.role is not None:
        # 3. The database and everything the service user owns in it (idempotent: moved objects are skipped).
        engines.invalidate(target.app, target.name)
        moved = backend.adopt(conn, db, target.role)
    # 4. Marker first, record second: a crash between them is finished by the next adoption or sync.
    backend.set_marker(conn, db, pg.INITIALIZED, target.owner)
    records.bump(platform, target.setting_id, state=INITIALIZED, initialized_at=utcnow(), last_error=None)
    return AdoptResult(**{**found.to_dict(), "objects": moved})
