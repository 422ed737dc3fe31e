"""Schema migrations of stores: the Alembic script directory an app declares on a setting.

A setting's ``migrations="my_app:migrations/example_db"`` names a directory
inside the app's package (found with :mod:`importlib.resources`, so it works
installed and editable) holding ordinary Alembic revision files under
``versions/``. When the directory has no ``env.py`` (and ``script.py.mako``),
storekeeper supplies its own (:mod:`storekeeper.stores.migration_env`).

Migrations always run on a connection of their own to the store's database,
logged in as the store's own role (so what they make is the role's), one
transaction per revision, and under the store's advisory lock, which the
caller holds: a sync (:mod:`~.provision`) or :func:`migrate`. Two processes
migrating one store apply each revision once.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.resources
import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, MetaData, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from storekeeper import audit, discovery
from storekeeper.app_settings import PersistentStoreDatabaseSetting
from storekeeper.backends import get_backend
from storekeeper.backends import postgresql as pg
from storekeeper.backends.names import database_name
from storekeeper.errors import MigrationError, StoreError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import DATABASE
from storekeeper.stores import records, roles
from storekeeper.stores.initializers import login_refused
from storekeeper.stores.model import Target

#: storekeeper's env.py and script.py.mako, for script directories without their own.
ENV_DIR = Path(__file__).parent / "migration_env"
#: Alembic's default version table, in the store.
VERSION_TABLE = "alembic_version"

#: Alembic runs a command through module-level proxies (``alembic.context``, ``alembic.op``), so two
#: threads of one process (a sync works on several stores at once) must not run commands together:
#: a revision's ``op`` calls would reach the other store. Processes are kept apart by the store's lock.
_alembic = threading.RLock()

#: Tables, views and sequences of a store that no extension (PostGIS) owns: the schema an app made.
_APP_RELATIONS = text(
    "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND c.relname <> :version_table AND NOT EXISTS ("
    "SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') "
    "ORDER BY 1 LIMIT 6"
)


@dataclass(frozen=True)
class RevisionInfo:
    """One revision of a script directory, as Alembic names it."""

    revision: str
    down_revision: str | None
    message: str
    #: Alembic's one-line form: ``0001 -> 0002 (head), add name``.
    line: str

    @classmethod
    def of(cls, script: Script) -> RevisionInfo:
        down = script.down_revision
        return cls(
            revision=script.revision,
            down_revision=down if down is None or isinstance(down, str) else ",".join(down),
            message=script.doc or "",
            line=script.cmd_format(verbose=False, include_branches=True, include_doc=True, include_parents=True),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MigrationStatus:
    """Where a store stands: its revision, its script directory's head, what is pending."""

    app: str
    store: str
    database: str
    migrations: str
    #: The store's revision (None: at base, or the store does not exist).
    current: str | None
    head: str | None
    exists: bool
    pending: list[RevisionInfo] = field(default_factory=list)
    #: Why the store cannot be migrated as it is (unknown revision, tables but no version table).
    problem: str | None = None
    hint: str | None = None

    @property
    def pending_count(self) -> int:
        return len(self.pending)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pending_count": self.pending_count}


@dataclass(frozen=True)
class MigrateResult:
    """What ``stores migrate`` did to one store."""

    app: str
    store: str
    database: str
    action: str  # "upgrade", "downgrade", "stamp", "up to date", "sql", "absent" (not made yet: a sync makes it)
    before: str | None
    after: str | None
    revisions: list[str] = field(default_factory=list)
    sql: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the script directory ------------------------------------------------------------------------


def directory(target: Target) -> Path:
    """Return the script directory a store's setting names; raise naming the setting when it is missing."""
    return resolve_location(target.migrations, app=target.app, store=target.name)


def resolve_location(location: str, *, app: str, store: str) -> Path:
    """Resolve ``package:relative/path`` to a directory on the file system that holds ``versions/``."""
    package, _, relative = location.partition(":")
    fix = f'fix migrations= of setting "{store}" in {app}\'s persistent_store_settings()'
    try:
        root = importlib.resources.files(package)
    except (ImportError, TypeError, ValueError) as err:
        raise MigrationError(
            f'The migrations of store "{store}" of app "{app}" are in package "{package}", which cannot be '
            f"imported: {type(err).__name__}: {err}",
            hint=fix,
            app=app,
            setting=store,
        ) from None
    found = root.joinpath(*relative.split("/"))
    path = Path(str(found))
    if not isinstance(found, Path) or not (path / "versions").is_dir():
        raise MigrationError(
            f'The migrations of store "{store}" of app "{app}" ({location}) are not a directory holding '
            f"versions/ on the file system (looked in {path}).",
            hint=fix + " (a directory inside the package, with the revision files under versions/)",
            app=app,
            setting=store,
        )
    return path


def _escape(value: str) -> str:
    return value.replace("%", "%%")  # Config options are interpolated by configparser


def config(
    folder: Path,
    *,
    connection: Connection | None = None,
    metadata: MetaData | None = None,
    on_version_apply: Callable[..., None] | None = None,
    stdout: io.StringIO | None = None,
) -> Config:
    """Return the Alembic configuration of a script directory (storekeeper's env.py unless it has its own)."""
    out = stdout if stdout is not None else io.StringIO()
    # output_buffer: where --sql writes; quiet: no "Generating ..." lines on stdout.
    cfg = Config(stdout=out, output_buffer=out, cmd_opts=argparse.Namespace(quiet=True))
    cfg.set_main_option("path_separator", "newline")
    if (folder / "env.py").is_file():
        cfg.set_main_option("script_location", _escape(str(folder)))
    else:
        cfg.set_main_option("script_location", _escape(str(ENV_DIR)))
        cfg.set_main_option("version_locations", _escape(str(folder / "versions")))
    cfg.attributes["connection"] = connection
    cfg.attributes["target_metadata"] = metadata
    cfg.attributes["on_version_apply"] = on_version_apply
    return cfg


def script_directory(target: Target) -> ScriptDirectory:
    """Return the Alembic script directory of a store's migrations."""
    try:
        return ScriptDirectory.from_config(config(directory(target)))
    except CommandError as err:
        raise _alembic_error(target, err) from None


def heads_of(folder: Path) -> list[str]:
    """Return the head revisions of a script directory, sorted."""
    return sorted(ScriptDirectory.from_config(config(folder)).get_heads())


def head(script: ScriptDirectory, target: Target) -> str | None:
    """Return the one head revision (a script directory with several heads is refused)."""
    heads = script.get_heads()
    if len(heads) > 1:
        raise MigrationError(
            f"The migrations of {target.what} ({target.migrations}) have {len(heads)} heads "
            f"({', '.join(sorted(heads))}); it needs one.",
            hint=f"merge them: alembic merge, or write a revision whose down_revision names both, in {target.migrations}",
            app=target.app,
            setting=target.name,
        )
    return heads[0] if heads else None


def history(target: Target) -> list[RevisionInfo]:
    """Return every revision of a store's script directory, newest first."""
    script = script_directory(target)
    head(script, target)
    return [RevisionInfo.of(s) for s in script.walk_revisions()]


def _alembic_error(target: Target, err: Exception) -> MigrationError:
    return MigrationError(
        f"The migrations of {target.what} ({target.migrations}): {pg.first_line(err)}",
        hint=f"check the revision files in {target.migrations}; then: storekeeper stores current {target.app}",
        app=target.app,
        setting=target.name,
    )


# -- the store's side ----------------------------------------------------------------------------


@contextlib.contextmanager
def store_connection(
    backend: pg.PostgresBackend, target: Target, *, on_login_refused: Callable[[], None] | None = None
) -> Iterator[Connection]:
    """Open a connection of its own to the store's database, as the store's role (never an app's engine)."""
    engine = create_engine(backend.url(target.database, login=target.login), poolclass=NullPool)
    try:
        try:
            conn = engine.connect()
        except OperationalError as err:
            if on_login_refused is None or not login_refused(err):
                raise
            on_login_refused()
            conn = engine.connect()
        with conn:
            yield conn
    finally:
        engine.dispose()


def current_revision(conn: Connection) -> str | None:
    """Return the store's revision (None: no version table, or at base); ends the reading transaction."""
    try:
        heads = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
    finally:
        conn.rollback()
    return ",".join(heads) if heads else None


def app_relations(conn: Connection) -> list[str]:
    """Return up to six tables or views the store holds that no extension owns (ends the transaction)."""
    try:
        return [r[0] for r in conn.execute(_APP_RELATIONS, {"version_table": VERSION_TABLE})]
    finally:
        conn.rollback()


def check(script: ScriptDirectory, target: Target, conn: Connection) -> str | None:
    """Return the store's revision; raise when it is unknown, or when the store has tables but no revision."""
    current = current_revision(conn)
    if current is None:
        tables = app_relations(conn)
        if tables:
            known = head(script, target)
            raise MigrationError(
                f"{target.what} has tables ({', '.join(tables[:5])}{', ...' if len(tables) > 5 else ''}) but no "
                f"{VERSION_TABLE} table: it was made before it used migrations, so it cannot be told which "
                "revision its schema matches, and running them all could fail or destroy data.",
                hint=f"record the revision it matches, running nothing: storekeeper stores migrate {target.app} "
                f"--database {target.name} --stamp REV  (REV: the revision its tables match, e.g. {known or 'head'}; "
                f"see: storekeeper stores history {target.app} --database {target.name})",
                app=target.app,
                setting=target.name,
            )
        return None
    for rev in current.split(","):
        try:
            script.get_revision(rev)
        except CommandError:
            known = head(script, target)
            raise MigrationError(
                f"{target.what} is at revision {rev}, which its app's migrations ({target.migrations}) do not know: "
                f"they end at {known or 'no revision'}. Newer code was rolled back, or the revision was renamed.",
                hint=f"install the version of {target.app} that has revision {rev}; or, if the store's schema "
                f"matches a revision the code knows: storekeeper stores migrate {target.app} --database "
                f"{target.name} --stamp REV",
                app=target.app,
                setting=target.name,
            ) from None
    return current


def pending(script: ScriptDirectory, current: str | None, to: str = "heads") -> list[Script]:
    """Return the revisions an upgrade from ``current`` to ``to`` applies, oldest first."""
    lower = tuple(current.split(",")) if current else "base"
    return list(reversed(list(script.iterate_revisions(to, lower))))


def status_locked(backend: pg.PostgresBackend, target: Target, *, exists: bool) -> MigrationStatus:
    """Read where a store stands (its revision, head, pending revisions); problems are reported, not raised."""
    script = script_directory(target)
    top = head(script, target)
    base = MigrationStatus(
        app=target.app,
        store=target.name,
        database=target.database,
        migrations=target.migrations,
        current=None,
        head=top,
        exists=exists,
    )
    if not exists:
        return _replace(base, pending=[RevisionInfo.of(s) for s in pending(script, None)])
    with store_connection(backend, target) as conn:
        try:
            current = check(script, target, conn)
        except MigrationError as err:
            return _replace(base, current=current_revision(conn), problem=err.message, hint=err.hint)
    return _replace(base, current=current, pending=[RevisionInfo.of(s) for s in pending(script, current)])


def _replace(status: MigrationStatus, **values: Any) -> MigrationStatus:
    return MigrationStatus(**{**asdict(status), "pending": status.pending, **values})


def upgrade_locked(
    backend: pg.PostgresBackend,
    target: Target,
    *,
    to: str = "heads",
    on_login_refused: Callable[[], None] | None = None,
) -> list[str]:
    """Upgrade a store to ``to`` under the store's lock (the caller holds it); return the revisions applied.

    Refuses a store at an unknown revision, or with tables but no version table.
    A revision that fails rolls back alone: the store stays at the one before.
    """
    script = script_directory(target)
    head(script, target)
    with store_connection(backend, target, on_login_refused=on_login_refused) as conn:
        current = check(script, target, conn)
        steps = pending(script, current, to)
        if not steps:
            return []
        return _run(target, conn, steps, lambda cfg: command.upgrade(cfg, to), before=current)


def _run(
    target: Target, conn: Connection, steps: list[Script], run: Callable[[Config], None], *, before: str | None
) -> list[str]:
    """Run an Alembic command over ``steps``; raise naming the revision that failed and where the store stays."""
    applied: list[str] = []

    def record(*, step: Any, **_: Any) -> None:
        applied.append(step.up_revision_id)  # the revision applied, or undone by a downgrade

    cfg = config(directory(target), connection=conn, on_version_apply=record)
    try:
        with _alembic:
            run(cfg)
    except Exception as err:
        with contextlib.suppress(Exception):
            conn.rollback()
        failed = steps[len(applied)] if len(applied) < len(steps) else steps[-1]
        stays = applied[-1] if applied else before
        with contextlib.suppress(Exception):
            stays = current_revision(conn)
        reason = f"{type(err).__name__}: {pg.first_line(getattr(err, 'orig', None) or err)}"
        raise MigrationError(
            f'Migration {failed.revision} ("{failed.doc or ""}") of {target.what} failed: {reason}. '
            f"The store stays at revision {stays or 'base'}.",
            hint=f"fix revision {failed.revision} in {target.migrations}, then run: storekeeper stores migrate "
            f"{target.app} --database {target.name}",
            app=target.app,
            setting=target.name,
            revision=failed.revision,
        ) from None
    conn.commit()
    return applied


# -- the stores migrate command --------------------------------------------------------------------


def targets(platform: Platform, package: str, store: str | None) -> list[Target]:
    """Return the targets of an app's database stores that declare migrations (or the one named)."""
    discovery.discover(platform, [package])
    found: list[Target] = []
    with platform.session() as session:
        app = records.load_app(session, package)
        if store is not None:
            rows = [records.get_setting(app, store)]
            if rows[0].kind != DATABASE:
                raise records.wrong_kind(package, store, rows[0].kind)
            if not rows[0].migrations:
                raise MigrationError(
                    f'Store "{store}" of app "{package}" declares no migrations.',
                    hint=f'add migrations="PACKAGE:path/to/dir" to setting "{store}" in {package}\'s '
                    "persistent_store_settings()",
                    app=package,
                    setting=store,
                )
        else:
            # Stores with no service yet are left out: a sync makes them once one is assigned.
            rows = [s for s in app.settings if s.kind == DATABASE and not s.orphaned and s.migrations and s.service]
        for row in rows:
            found.append(records.make_target(platform, app, row, database_name(package, row.name)))
    return found


def migration_status(platform: Platform, package: str, store: str | None = None) -> list[MigrationStatus]:
    """Return where each of an app's migrated stores stands (``stores current``)."""
    results = []
    for target in targets(platform, package, store):
        backend = get_backend(target.backend, target.spec)
        with backend.connect() as conn:
            exists = backend.marker(conn, target.database).exists
        try:
            results.append(status_locked(backend, target, exists=exists))
        except OperationalError as err:  # the store refused its role's login, or went away
            script = script_directory(target)
            results.append(
                MigrationStatus(
                    app=target.app,
                    store=target.name,
                    database=target.database,
                    migrations=target.migrations,
                    current=None,
                    head=head(script, target),
                    exists=exists,
                    problem=f"cannot read its revision: {pg.first_line(getattr(err, 'orig', None) or err)}",
                    hint=f"storekeeper syncstores {target.app} --database {target.name}",
                )
            )
    return results


def migrate(
    platform: Platform,
    package: str,
    store: str | None = None,
    *,
    to: str | None = None,
    stamp: str | None = None,
    sql: bool = False,
) -> list[MigrateResult]:
    """Upgrade (or downgrade, to an older ``to``) an app's stores, or ``stamp`` one; ``sql`` only prints the SQL.

    Each store is migrated under its advisory lock, on a connection of its own as
    the store's role; every change (and every failure) is in the audit log.
    """
    chosen = targets(platform, package, store)
    if (to is not None or stamp is not None) and store is None and len(chosen) != 1:
        raise MigrationError(
            f'--to and --stamp name a revision of one store: name it with --database (app "{package}" has '
            f"{len(chosen)} stores with migrations).",
            hint=f"storekeeper stores migrate {package} --database STORE --to REV",
            app=package,
        )
    results = []
    for target in chosen:
        subject = f"{target.app}/{target.name}"
        try:
            result = _migrate_one(platform, target, to=to, stamp=stamp, sql=sql, skip_absent=store is None)
        except StorekeeperError as err:
            if not sql:
                audit.record_now(platform, "store.migrate", subject, "error", err.message)
            raise
        if not sql and result.action not in ("up to date", "absent"):
            detail = f"{result.action} {result.before or 'base'} -> {result.after or 'base'}"
            audit.record_now(platform, "store.migrate", subject, "ok", detail)
        results.append(result)
    return results


def _migrate_one(
    platform: Platform, target: Target, *, to: str | None, stamp: str | None, sql: bool, skip_absent: bool
) -> MigrateResult:
    started = time.perf_counter()
    backend = get_backend(target.backend, target.spec)
    script = script_directory(target)
    head(script, target)
    with backend.store_lock(target.database) as lock:
        if not backend.marker(lock, target.database).exists:
            if skip_absent:  # a sync makes it, at head
                return _result(target, "absent", None, None, [], started)
            raise StoreError(
                f"{target.what} does not exist yet.",
                hint=f"storekeeper syncstores {target.app} --database {target.name}",
                app=target.app,
                setting=target.name,
            )

        def repair(target: Target = target) -> None:
            roles.reset_password(backend, lock, target)

        with store_connection(backend, target, on_login_refused=repair) as conn:
            before = current_revision(conn)
            if stamp is not None:
                rev = _resolve(script, target, stamp)
                out = io.StringIO()
                cfg = config(directory(target), connection=None if sql else conn, stdout=out)
                with _alembic:
                    command.stamp(cfg, rev, sql=sql, purge=True)
                if sql:
                    return _result(target, "sql", before, before, [], started, sql=out.getvalue())
                conn.commit()
                return _result(target, "stamp", before, current_revision(conn), [rev], started)
            before = check(script, target, conn)
            goal = "heads" if to in (None, "head", "heads") else _resolve(script, target, to)
            down = _is_downgrade(script, before, goal)
            if down:
                assert before is not None
                steps = list(script.iterate_revisions(before, goal))
            else:
                steps = pending(script, before, goal)
            if not steps:
                return _result(target, "up to date", before, before, [], started)
            action = "downgrade" if down else "upgrade"
            if sql:
                out = io.StringIO()
                span = f"{before}:{goal}" if before else goal
                with _alembic:
                    (command.downgrade if down else command.upgrade)(
                        config(directory(target), stdout=out), span, sql=True
                    )
                return _result(target, "sql", before, before, [s.revision for s in steps], started, sql=out.getvalue())
            run = command.downgrade if down else command.upgrade
            applied = _run(target, conn, steps, lambda cfg: run(cfg, goal), before=before)
            return _result(target, action, before, current_revision(conn), applied, started)


def _result(
    target: Target,
    action: str,
    before: str | None,
    after: str | None,
    revisions: list[str],
    started: float,
    *,
    sql: str | None = None,
) -> MigrateResult:
    return MigrateResult(
        app=target.app,
        store=target.name,
        database=target.database,
        action=action,
        before=before,
        after=after,
        revisions=revisions,
        sql=sql,
        seconds=time.perf_counter() - started,
    )


def _resolve(script: ScriptDirectory, target: Target, rev: str) -> str:
    """Return the full revision id ``rev`` names (``head``, ``base``, a unique prefix); raise naming the known ones."""
    if rev in ("base",):
        return rev
    try:
        found = script.get_revision(rev)
    except CommandError:
        found = None
    if found is None:
        known = ", ".join(s.revision for s in script.walk_revisions()) or "none"
        raise MigrationError(
            f"Revision {rev!r} is not one of the migrations of {target.what} (known: {known}).",
            hint=f"storekeeper stores history {target.app} --database {target.name}",
            app=target.app,
            setting=target.name,
        )
    return found.revision


def _is_downgrade(script: ScriptDirectory, current: str | None, goal: str) -> bool:
    """True when ``goal`` (a full revision id, ``heads`` or ``base``) is older than ``current``."""
    if current is None or goal == "heads":
        return False
    if goal == "base":
        return True
    ancestors = {s.revision for s in script.iterate_revisions(current, "base")}
    return goal in ancestors and goal != current


def migration_target(platform: Platform, package: str, store: str) -> Target:
    """Return the target of one store that declares migrations (raise when it declares none)."""
    (target,) = targets(platform, package, store)
    return target


def migration_history(platform: Platform, package: str, store: str) -> tuple[MigrationStatus, list[RevisionInfo]]:
    """Return where a store stands and every revision of its script directory, newest first."""
    (where,) = migration_status(platform, package, store)
    return where, history(migration_target(platform, package, store))


# -- the stores revision command -----------------------------------------------------------------


@dataclass(frozen=True)
class NewRevision:
    """A revision file ``stores revision`` wrote."""

    app: str
    store: str
    revision: str
    down_revision: str | None
    message: str
    path: str
    #: The database autogenerate compared the models with (None: not autogenerated).
    compared_with: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_metadata(path: str, target: Target) -> MetaData:
    """Import the ``MetaData`` a setting's ``metadata`` names (``module:attribute.path``)."""
    module_name, _, attrs = path.partition(":")
    fix = f'fix metadata= of setting "{target.name}" in {target.app}\'s persistent_store_settings()'
    try:
        value: Any = importlib.import_module(module_name)
        for attr in attrs.split("."):
            value = getattr(value, attr)
    except (ImportError, AttributeError) as err:
        raise MigrationError(
            f'Cannot import the metadata of {target.what} ("{path}"): {type(err).__name__}: {err}',
            hint=fix,
            app=target.app,
            setting=target.name,
        ) from None
    if not isinstance(value, MetaData):
        raise MigrationError(
            f'The metadata of {target.what} ("{path}") is a {type(value).__name__}, not a SQLAlchemy MetaData.',
            hint=fix + ' (e.g. "my_app.model:Base.metadata")',
            app=target.app,
            setting=target.name,
        )
    return value


def declared_metadata(package: str, store: str) -> str:
    """Return the ``metadata`` an installed app declares on a database setting ("" for none)."""
    app_cls = discovery.app_class(package)
    if app_cls is None:
        return ""
    for item in discovery.declared_settings(app_cls):
        if isinstance(item, PersistentStoreDatabaseSetting) and item.name == store:
            return item.metadata
    return ""


def new_revision(
    platform: Platform,
    package: str,
    store: str,
    message: str,
    *,
    autogenerate: bool = False,
    compare_with: Target | None = None,
) -> NewRevision:
    """Write a new revision file into a store's script directory, on top of its head.

    With ``autogenerate``, the setting's ``metadata`` is compared with a database
    at head: ``compare_with`` (a test copy) when it is at head, else the live store,
    read on a connection of its own and never under the store's lock.
    """
    (target,) = targets(platform, package, store)
    folder = directory(target)
    script = script_directory(target)
    top = head(script, target)
    out = io.StringIO()
    if not autogenerate:
        with _alembic:
            made = command.revision(config(folder, stdout=out), message=message)
        return _new_revision(target, made, None)
    path = declared_metadata(package, store)
    if not path:
        raise MigrationError(
            f"{target.what} declares no metadata, so there is nothing to compare the store with.",
            hint=f'add metadata="MODULE:Base.metadata" to setting "{store}" in {package}\'s persistent_store_settings()',
            app=package,
            setting=store,
        )
    metadata = load_metadata(path, target)
    for candidate in [compare_with, target]:
        if candidate is None:
            continue
        backend = get_backend(candidate.backend, candidate.spec)
        with backend.connect() as conn:
            if not backend.marker(conn, candidate.database).exists:
                continue
        with store_connection(backend, candidate) as conn:
            at = check(script, candidate, conn)
            if at != top:
                if candidate is compare_with:
                    continue  # a test copy built before the last revision: compare with the store
                raise MigrationError(
                    f"{target.what} is at revision {at or 'base'}, not at head ({top}): autogenerate compares the "
                    "models with a store at head.",
                    hint=f"storekeeper stores migrate {package} --database {store}",
                    app=package,
                    setting=store,
                )
            try:
                with _alembic:
                    made = command.revision(
                        config(folder, connection=conn, metadata=metadata, stdout=out),
                        message=message,
                        autogenerate=True,
                    )
            except CommandError as err:
                raise _alembic_error(target, err) from None
            finally:
                with contextlib.suppress(Exception):
                    conn.rollback()
            return _new_revision(target, made, candidate.database)
    raise MigrationError(
        f"{target.what} does not exist yet, and has no test copy: autogenerate needs a store at head to compare with.",
        hint=f"storekeeper syncstores {package} --database {store}",
        app=package,
        setting=store,
    )


def _new_revision(target: Target, made: Any, compared_with: str | None) -> NewRevision:
    script = made[0] if isinstance(made, list) else made
    if not isinstance(script, Script):
        raise MigrationError(f"Alembic wrote no revision for {target.what}.", app=target.app, setting=target.name)
    return NewRevision(
        app=target.app,
        store=target.name,
        revision=script.revision,
        down_revision=RevisionInfo.of(script).down_revision,
        message=script.doc or "",
        path=str(script.path),
        compared_with=compared_with,
    )
