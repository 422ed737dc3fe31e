"""Export, import and clone stores; list backup files.

Export writes one file (see :mod:`storekeeper.stores.dumps`): a consistent
``pg_dump -Fc`` snapshot of the store and a manifest.

Import never restores into the live database. Under the store's advisory lock
it checks the whole file, then::

    restore into <db>_restore_<id>   (marker "restoring": a crash leaves only this, dropped next time)
    swap: refuse new connections to <db>, end its sessions, then in ONE transaction
          <db> -> <db>_previous_<id> (marker "previous", or "kept")  and  <db>_restore_<id> -> <db>
    bump the store's generation (cached engines here and in other processes switch)
    drop <db>_previous_<id>          (unless --keep-previous; a crash leaves it marked, dropped next time)

A kill -9 at any point leaves either the old store in place or the new one (see
:func:`_swap` for the one case where the old one refuses connections until the
next import or sync);
the next import, clone or sync of the store drops the leftovers
(:func:`clean_leftovers`). A corrupt or truncated file is refused before
anything is touched.

Clone makes a new dynamic store of the same app with its own role owning
everything in it: ``CREATE DATABASE ... TEMPLATE`` on the same service (the
source's sessions are ended first, see :data:`CLONE_ATTEMPTS`), dump and
restore across services.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storekeeper import audit, engines
from storekeeper.backends import get_backend
from storekeeper.backends import postgresql as pg
from storekeeper.backends.names import check_name, database_name
from storekeeper.errors import InputError, ServiceError, StoreError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import ABSENT, CREATING, DATABASE, INITIALIZED, Service, Setting, utcnow
from storekeeper.stores import dumps, records, roles
from storekeeper.stores.model import IMPORT_SIDE_PATTERN, Target

#: Marker states of an import's databases besides the store's own.
RESTORING = "restoring"
PREVIOUS = "previous"
KEPT = "kept"
#: How many times a swap (or a template copy) ends the sessions and tries again when someone connects in between.
SWAP_ATTEMPTS = 5
CLONE_ATTEMPTS = 5
_SIDE = re.compile(IMPORT_SIDE_PATTERN)


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    app: str
    store: str
    file: str
    bytes: int
    dump_sha256: str
    spatial: bool
    migrations_revision: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImportResult:
    app: str
    store: str
    database: str
    file: str
    action: str  # "created" or "replaced"
    previous: str | None  # the kept previous database (--keep-previous)
    cleaned: list[str]  # leftovers of earlier imports that were dropped
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CloneResult:
    app: str
    source: str
    store: str
    database: str
    service: str
    method: str  # "template" or "dump and restore"
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BackupFile:
    """One file of a backups directory, as ``storekeeper backups`` lists it."""

    file: str
    bytes: int
    app: str | None = None
    store: str | None = None
    spatial: bool | None = None
    created_at: str | None = None
    migrations_revision: str | None = None
    server_version: str | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- helpers -------------------------------------------------------------------------------


def side_name(database: str, kind: str, short: str | None = None) -> str:
    """Return ``<database>_<kind>_<8 hex>`` (the base shortened to fit PostgreSQL's 63 bytes)."""
    suffix = f"_{kind}_{short or secrets.token_hex(4)}"
    return database[: 63 - len(suffix)] + suffix


def default_dir(platform: Platform) -> Path:
    """The home's ``backups/`` directory."""
    return platform.config.home / "backups"


def _store(platform: Platform, package: str, name: str) -> tuple[Target, str]:
    """Return a live store's target and recorded state."""
    check_name(name, what="store")
    with platform.session() as session:
        app = records.load_app(session, package)
        row = records.get_setting(app, name)
        if row.kind != DATABASE:
            raise records.wrong_kind(package, name, row.kind)
        return records.make_target(platform, app, row, database_name(package, name)), row.state


def _not_there(target: Target) -> StoreError:
    return StoreError(
        f"{target.what} does not exist on {target.spec.where}.",
        hint=f"storekeeper syncstores {target.app} --database {target.name}",
        status=404,
        app=target.app,
        setting=target.name,
    )


def _existing_marker(backend: pg.PostgresBackend, conn: Any, target: Target) -> pg.Marker:
    """The store's marker; raise when it is missing, broken, or not this installation's store."""
    marker = backend.marker(conn, target.database)
    if not marker.exists or marker.invalid:
        raise _not_there(target)
    target.check_owner(marker)
    if not marker.storekeepers:
        raise StoreError(
            f"{target.what} exists on {target.spec.where} but was not made by storekeeper; it is left alone.",
            hint=f"storekeeper syncstores {target.app} --database {target.name}",
            app=target.app,
            setting=target.name,
        )
    return marker


def _revision(backend: pg.PostgresBackend, database: str) -> str | None:
    """The store's Alembic revision (``alembic_version.version_num``), or None without that table."""
    with backend.connect(database) as conn:
        row = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return None
        found = conn.execute("SELECT version_num FROM alembic_version LIMIT 1").fetchone()
        return str(found[0]) if found else None


def _conn_args(spec: pg.ServiceSpec, user: str, database: str) -> list[str]:
    """Connection options of a client program (never a password: that is in its PGPASSFILE)."""
    return ["--no-password", f"--host={spec.host}", f"--port={spec.port}", f"--username={user}", f"--dbname={database}"]


def _client_env(env: dict[str, str], spec: pg.ServiceSpec) -> dict[str, str]:
    extra = {"PGCONNECT_TIMEOUT": str(spec.connect_timeout), "PGAPPNAME": "storekeeper"}
    if spec.sslmode:
        extra["PGSSLMODE"] = spec.sslmode
    return {**env, **extra}


def _tool_failed(what: str, program: str, stderr: str, spec: pg.ServiceSpec) -> StoreError:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    detail = "; ".join(lines[-3:]) or "no message"
    return StoreError(
        f"{program} failed while working on {what}: {detail}",
        hint=f"storekeeper services test {spec.name}",
        service=spec.name,
    )


# -- export ----------------------------------------------------------------------------------


def export_store(
    platform: Platform, package: str, name: str, path: Path, *, on_progress: dumps.Progress | None = None
) -> ExportResult:
    """Write a store's backup file at ``path`` (refused when it exists); see :mod:`storekeeper.stores.dumps`."""
    started = time.perf_counter()
    target, _state = _store(platform, package, name)
    path = Path(path).absolute()
    if path.exists():
        raise InputError(
            f"{path} already exists; an export never overwrites a file.",
            hint=f"choose another file: storekeeper stores export {package} --database {name} -o FILE",
        )
    if not path.parent.is_dir():
        raise InputError(f"Directory {path.parent} does not exist.", hint=f"mkdir -p {path.parent}")
    result = _dump(platform, target, path, on_progress=on_progress)
    audit.record_now(platform, "store.export", target.owner, "ok", f"{result.bytes} bytes to {path.name}")
    return ExportResult(
        app=package,
        store=name,
        file=str(path),
        bytes=result.bytes,
        dump_sha256=result.dump_sha256,
        spatial=target.spatial,
        migrations_revision=result.migrations_revision,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class _Dumped:
    bytes: int
    dump_sha256: str
    migrations_revision: str | None


def _dump(platform: Platform, target: Target, path: Path, *, on_progress: dumps.Progress | None) -> _Dumped:
    backend = get_backend(target.backend, target.spec)
    spec = target.spec
    with backend.connect() as conn:
        marker = _existing_marker(backend, conn, target)
        if not marker.allows_connections:
            raise StoreError(
                f"{target.what} refuses connections: an import or a drop of it was cut short.",
                hint=f"storekeeper syncstores {target.app} --database {target.name}  (lets connections in again)",
                app=target.app,
                setting=target.name,
            )
        row = conn.execute(
            "SELECT current_setting('server_version'), "
            "CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END "
            "FROM pg_database WHERE datname = %s",
            (target.database,),
        ).fetchone()
        assert row is not None
        server_version, db_bytes = str(row[0]), row[1]
        server_num = conn.info.server_version
    revision = _revision(backend, target.database)
    program, version = dumps.find_program("pg_dump", server_num // 10000)
    partial = dumps.partial_path(path)
    argv = [str(program), "--format=custom", *_conn_args(spec, spec.username, target.database)]
    mtime = time.time()
    try:
        with (
            dumps.passfile(spec.host, spec.port, spec.username, spec.password) as env,
            tempfile.TemporaryFile() as err,
            open(partial, "wb") as out,
        ):
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=_client_env(env, spec))
            assert proc.stdout is not None
            try:
                written = dumps.write_dump(out, proc.stdout, mtime, on_progress)
            finally:
                proc.stdout.close()
                code = proc.wait()
            if code != 0:
                err.seek(0)
                raise _tool_failed(target.what, "pg_dump", err.read().decode(errors="replace"), spec)
            manifest = dumps.Manifest(
                app=target.app,
                store=target.name,
                spatial=target.spatial,
                database=target.database,
                server_version=server_version,
                server_version_num=server_num,
                pg_dump_version=version,
                migrations_revision=revision,
                installation=spec.installation,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                dump_bytes=written.size,
                dump_sha256=written.sha256,
                database_bytes=int(db_bytes) if db_bytes is not None else None,
            )
            dumps.write_manifest(out, manifest, mtime)
        dumps.publish(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return _Dumped(written.size, written.sha256, revision)


def export_app(
    platform: Platform, package: str, directory: Path, *, on_progress: dumps.Progress | None = None
) -> list[ExportResult]:
    """Export every existing store of an app into ``directory`` (one file each, named by store and time)."""
    directory = _backup_dir(directory)
    with platform.session() as session:
        app = records.load_app(session, package)
        names = [s.name for s in app.settings if s.kind == DATABASE and s.service_id is not None and not s.orphaned]
    return _export_existing(platform, package, names, directory, on_progress=on_progress)


def _backup_dir(directory: Path) -> Path:
    """Make a backups directory (0700) if needed; refuse a path that is something else."""
    directory = Path(directory).absolute()
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a directory.", hint="choose a directory for the backups")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _export_existing(
    platform: Platform,
    package: str,
    names: list[str],
    directory: Path,
    *,
    skip_missing: bool = False,
    on_progress: dumps.Progress | None = None,
) -> list[ExportResult]:
    results = []
    for name in names:
        try:
            target, state = _store(platform, package, name)
            if state == ABSENT:
                continue
            file = directory / f"{target.database}-{_stamp()}{dumps.SUFFIX}"
            results.append(export_store(platform, package, name, file, on_progress=on_progress))
        except StorekeeperError as err:
            if skip_missing and err.status == 404:  # no such app, store or database: nothing to lose
                continue
            raise
    return results


def backup_before(
    platform: Platform,
    package: str,
    names: list[str] | None,
    directory: Path,
    *,
    keep: int | None = None,
    on_progress: dumps.Progress | None = None,
) -> list[ExportResult]:
    """Export an app's stores (``names``, or all) that exist, before a refresh or drop destroys them.

    Each goes to ``directory/<database>-<UTC time>.skbackup``; afterwards only the newest
    ``keep`` files of each store (default: the ``backups.keep`` setting) stay there. Raises
    when an export fails, so the caller destroys nothing that was not backed up.
    """
    directory = _backup_dir(directory)
    keep = keep if keep is not None else platform.config.backups_keep
    if names is None:
        with platform.session() as session:
            app = records.find_app(session, package)
            names = [s.name for s in app.settings if s.kind == DATABASE and s.service_id is not None] if app else []
    results = _export_existing(platform, package, names, directory, skip_missing=True, on_progress=on_progress)
    for result in results:
        database = database_name(result.app, result.store)
        old = sorted(directory.glob(f"{database}-*{dumps.SUFFIX}"), key=lambda p: p.name, reverse=True)[keep:]
        for path in old:
            path.unlink(missing_ok=True)
    return results


# -- listing -----------------------------------------------------------------------------------


def list_backups(directory: Path) -> list[BackupFile]:
    """Describe each backup file in ``directory`` (newest first); unreadable ones say why."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory.", hint="storekeeper backups DIR")
    found = []
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        if path.name.endswith(dumps.SUFFIX + ".partial"):
            found.append(
                BackupFile(file=path.name, bytes=path.stat().st_size, problem="incomplete (an export was cut short)")
            )
            continue
        if not path.name.endswith(dumps.SUFFIX):
            continue
        try:
            backup = dumps.read_manifest(path)
        except StoreError as err:
            found.append(BackupFile(file=path.name, bytes=path.stat().st_size, problem=err.message))
            continue
        m = backup.manifest
        found.append(
            BackupFile(
                file=path.name,
                bytes=path.stat().st_size,
                app=m.app,
                store=m.store,
                spatial=m.spatial,
                created_at=m.created_at,
                migrations_revision=m.migrations_revision,
                server_version=m.server_version,
            )
        )
    return sorted(found, key=lambda b: b.created_at or "", reverse=True)


# -- leftovers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leftover:
    database: str
    state: str | None


def all_leftovers(backend: pg.PostgresBackend, conn: Any) -> list[tuple[str, Leftover]]:
    """Every store's databases on this service left by imports, as (``APP/STORE``, leftover); this installation's."""
    rows = conn.execute(
        "SELECT datname, shobj_description(oid, 'pg_database'), datconnlimit, datallowconn FROM pg_database "
        "WHERE datname ~ %s",
        (IMPORT_SIDE_PATTERN,),
    ).fetchall()
    found = []
    for name, *rest in rows:
        marker = pg.Marker.read(tuple(rest))
        if (
            _SIDE.search(name)
            and marker.owner is not None
            and marker.state in (pg.CREATED, RESTORING, PREVIOUS, KEPT)
            and marker.installation is not None
            and not backend.foreign(marker)
        ):
            found.append((marker.owner, Leftover(name, marker.state)))
    return found


def leftovers(backend: pg.PostgresBackend, conn: Any, target: Target) -> list[Leftover]:
    """This store's databases left by imports: being restored, previous, or kept (this installation's only)."""
    return [
        left
        for owner, left in all_leftovers(backend, conn)
        if owner == target.owner and left.database != target.database
    ]


def clean_leftovers(backend: pg.PostgresBackend, conn: Any, target: Target, *, reopen: bool = True) -> list[str]:
    """Drop what a cut-short import left (a half-restored or a previous database); kept ones stay.

    Called under the store's lock. Also lets connections into the store again when an
    import was cut short after refusing them (and before its swap).
    """
    dropped = []
    for left in leftovers(backend, conn, target):
        if left.state != KEPT:
            backend.drop_database(conn, left.database, what=f"{target.what} (left by an import)")
            dropped.append(left.database)
    if not reopen:  # a sync lets connections in itself
        return dropped
    marker = backend.marker(conn, target.database)
    if marker.exists and not marker.invalid and not marker.allows_connections and marker.state == pg.INITIALIZED:
        backend.allow_connections(conn, target.database)
    return dropped


# -- import ------------------------------------------------------------------------------------


def read_backup(path: Path) -> dumps.Backup:
    """Read a backup file's manifest (for ``import``'s checks before it asks anything)."""
    return dumps.read_manifest(Path(path))


def import_store(
    platform: Platform,
    package: str,
    name: str,
    path: Path,
    *,
    replace: bool = False,
    keep_previous: bool = False,
    on_progress: dumps.Progress | None = None,
) -> ImportResult:
    """Restore a backup file into a store, swapping it in whole (see the module's docstring)."""
    started = time.perf_counter()
    path = Path(path).absolute()
    backup = dumps.read_manifest(path)
    target, state = _store(platform, package, name)
    m = backup.manifest
    if (m.app, m.store) != (package, name):
        raise StoreError(
            f'{path.name} holds store "{m.store}" of app "{m.app}", not {target.what}; nothing was changed.',
            hint=f"storekeeper stores import {m.app} --database {m.store} {path}  (or, to copy a store, "
            f"storekeeper stores clone {package} --database SRC --to NEW)",
            status=422,
            app=package,
            setting=name,
        )
    if m.spatial != target.spatial:
        kinds = {True: "spatial (PostGIS)", False: "not spatial"}
        raise StoreError(
            f"{path.name} holds a {kinds[m.spatial]} store, but {target.what} is {kinds[target.spatial]}; "
            "nothing was changed.",
            hint="import it into a store of the same kind (storekeeper backups lists what each file holds)",
            status=422,
            app=package,
            setting=name,
        )
    dumps.verify(backup)
    backend = get_backend(target.backend, target.spec)
    try:
        with backend.store_lock(target.database) as conn:
            cleaned = clean_leftovers(backend, conn, target)
            marker = backend.marker(conn, target.database)
            exists = marker.exists and not marker.invalid
            if marker.exists:
                _existing_marker(backend, conn, target)
                if not replace:
                    raise StoreError(
                        f"{target.what} exists and holds data; an import does not replace it without --replace. "
                        "Nothing was changed.",
                        hint=f"storekeeper stores import {package} --database {name} {path} --replace",
                        app=package,
                        setting=name,
                    )
            previous = _restore_and_swap(
                platform,
                backend,
                conn,
                target,
                backup,
                exists=exists,
                keep_previous=keep_previous,
                state=state,
                on_progress=on_progress,
            )
    except Exception as err:
        audit.record_now(platform, "store.import", target.owner, "error", getattr(err, "message", str(err))[:500])
        raise
    action = "replaced" if exists else "created"
    audit.record_now(platform, "store.import", target.owner, "ok", f"{action} from {path.name}")
    return ImportResult(
        app=package,
        store=name,
        database=target.database,
        file=str(path),
        action=action,
        previous=previous,
        cleaned=cleaned,
        seconds=time.perf_counter() - started,
    )


def _restore_and_swap(
    platform: Platform,
    backend: pg.PostgresBackend,
    conn: Any,
    target: Target,
    backup: dumps.Backup,
    *,
    exists: bool,
    keep_previous: bool,
    state: str,
    on_progress: dumps.Progress | None,
) -> str | None:
    """Restore into a fresh database, then swap it in; return the kept previous database (or None)."""
    server_major = conn.info.server_version // 10000
    program, version = dumps.find_program("pg_restore", server_major)
    archive_major = int(backup.manifest.pg_dump_version.split(".")[0])
    if int(version.split(".")[0]) < archive_major:
        raise StoreError(
            f"{backup.path.name} was made by pg_dump {backup.manifest.pg_dump_version}; pg_restore {version} "
            "cannot read it. Nothing was changed.",
            hint=dumps.client_hint(archive_major),
        )
    target = roles.ensure_store_role(platform, backend, conn, target)
    if not exists:  # recorded before the server is touched (as a sync's create is)
        records.bump(platform, target.setting_id, state=CREATING, initialized_at=None, last_error=None)
    restore_db = side_name(target.database, "restore")
    try:
        if target.spatial:
            backend.create_spatial_database(conn, restore_db, what=target.what, owner=target.owner, role=target.role)
        else:
            backend.create_database(conn, restore_db, what=target.what, owner=target.owner, role=target.role)
        backend.set_marker(conn, restore_db, RESTORING, target.owner)
        _restore(backend, target, restore_db, backup, program, on_progress=on_progress)
        previous = _swap(backend, conn, target, restore_db, exists=exists, keep_previous=keep_previous)
    except BaseException:
        with contextlib.suppress(Exception):
            backend.drop_database(conn, restore_db, what=target.what)
            if not exists:
                records.set_state(platform, target.setting_id, state=state if state != CREATING else ABSENT)
        raise
    # The new database is in place: record it, and have every process's engines switch to it.
    records.bump(platform, target.setting_id, state=INITIALIZED, initialized_at=utcnow(), last_error=None)
    engines.invalidate(target.app, target.name)
    if previous is not None and not keep_previous:
        backend.drop_database(conn, previous, what=f"{target.what} (its previous database)")
        return None
    return previous


def _restore(
    backend: pg.PostgresBackend,
    target: Target,
    restore_db: str,
    backup: dumps.Backup,
    program: Path,
    *,
    on_progress: dumps.Progress | None,
) -> None:
    """Run pg_restore into ``restore_db`` as the store's role: everything restored is its own."""
    spec = target.spec
    with backend.connect(restore_db) as db:
        extensions = {r[0] for r in db.execute("SELECT extname FROM pg_extension").fetchall()}
        config_tables = {
            (r[0], r[1])
            for r in db.execute(
                "SELECT quote_ident(n.nspname), quote_ident(c.relname) FROM pg_extension e "
                "CROSS JOIN LATERAL unnest(e.extconfig) AS cfg(oid) JOIN pg_class c ON c.oid = cfg.oid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace"
            ).fetchall()
        }
    user, password = target.login if target.login is not None else (spec.username, spec.password)
    with dumps.passfile(spec.host, spec.port, user, password) as env, tempfile.TemporaryDirectory() as tmp:
        env = _client_env(env, spec)
        listing = _run_fed([str(program), "--list"], backup, env, what=target.what, spec=spec)
        wanted, _skipped = dumps.filter_list(listing, extensions, config_tables)
        list_file = Path(tmp) / "restore.list"
        list_file.write_text(wanted)
        argv = [
            str(program),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            f"--use-list={list_file}",
            *_conn_args(spec, user, restore_db),
        ]
        _run_fed(argv, backup, env, what=target.what, spec=spec, on_progress=on_progress)


def _run_fed(
    argv: list[str],
    backup: dumps.Backup,
    env: dict[str, str],
    *,
    what: str,
    spec: pg.ServiceSpec,
    on_progress: dumps.Progress | None = None,
) -> str:
    """Run ``argv`` with the dump on its standard input; return its output."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out, dumps.dump_stream(backup) as source:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err, env=env)
        assert proc.stdin is not None
        feeder = threading.Thread(target=dumps.pump, args=(_Reporting(source, on_progress), proc.stdin), daemon=True)
        feeder.start()
        try:
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            feeder.join(timeout=5)
        if code != 0:
            err.seek(0)
            raise _tool_failed(what, Path(argv[0]).name, err.read().decode(errors="replace"), spec)
        out.seek(0)
        return out.read().decode(errors="replace")


class _Reporting:
    """A reader that reports how many bytes were read."""

    def __init__(self, source: IO[bytes], on_progress: dumps.Progress | None) -> None:
        self._source, self._on_progress, self._read = source, on_progress, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        self._read += len(chunk)
        if self._on_progress is not None and chunk:
            self._on_progress(self._read)
        return chunk


def _terminate(conn: Any, database: str) -> None:
    """End the sessions on a database that the service user may end (its own, its store roles')."""
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid() AND (pg_has_role(usesysid, 'MEMBER') "
        "OR (pg_has_role('pg_signal_backend', 'MEMBER') "
        "AND NOT coalesce((SELECT rolsuper FROM pg_roles r WHERE r.oid = usesysid), false)))",
        (database,),
    )


def _swap(
    backend: pg.PostgresBackend, conn: Any, target: Target, restore_db: str, *, exists: bool, keep_previous: bool
) -> str | None:
    """Put ``restore_db`` in the store's place in one transaction; return the previous database's new name.

    In the transaction the store's sessions are ended and both databases renamed:
    the first rename locks the store's database, so a connect that comes meanwhile
    waits, then fails (the name moved) and is tried once more by storekeeper's
    engines. Someone who connects between the end of the sessions and that lock
    makes the rename fail after 5 s: the transaction is rolled back (the store is
    unchanged) and tried again; from the third try on, new connections are refused
    first (``ALLOW_CONNECTIONS false``, committed: a crash then leaves the old store
    refusing connections until the next import or sync lets them in again).
    """
    ident = sql.Identifier(target.database)
    previous = side_name(target.database, "previous") if exists else None
    refused = False
    try:
        for attempt in range(SWAP_ATTEMPTS):
            if exists and attempt >= 2 and not refused:
                conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(ident))
                refused = True
            try:
                with conn.transaction():
                    if exists:
                        _terminate(conn, target.database)
                    _terminate(conn, restore_db)
                    if previous is not None:
                        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(ident, sql.Identifier(previous)))
                        backend.set_marker(conn, previous, KEPT if keep_previous else PREVIOUS, target.owner)
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(restore_db), ident))
                    backend.set_marker(conn, target.database, pg.INITIALIZED, target.owner)
                break
            except pgerrors.ObjectInUse as err:
                if attempt == SWAP_ATTEMPTS - 1:
                    raise StoreError(
                        f"Cannot swap the restored database into {target.what}: sessions kept reconnecting "
                        f"({pg.first_line(err)}). The store is unchanged.",
                        hint="stop the apps using it for a moment, then import again",
                        app=target.app,
                        setting=target.name,
                    ) from None
                time.sleep(0.2 * (attempt + 1))
    except BaseException:
        if refused:
            with contextlib.suppress(psycopg.Error):
                conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(ident))
        raise
    if previous is not None and keep_previous and refused:  # a kept database may be looked at
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(previous)))
    return previous


# -- clone -------------------------------------------------------------------------------------


def clone_store(
    platform: Platform,
    package: str,
    source: str,
    new: str,
    *,
    service: str | None = None,
    on_progress: dumps.Progress | None = None,
) -> CloneResult:
    """Make dynamic store ``new`` of the app a copy of store ``source``, with its own role owning everything."""
    started = time.perf_counter()
    src, src_state = _store(platform, package, source)
    check_name(new, what="store")
    new_db = database_name(package, new)
    if src_state != INITIALIZED:
        raise _not_there(src)
    with platform.session() as session:
        app = records.load_app(session, package)
        if records.find_setting(app, new) is not None:
            raise StoreError(
                f'App "{package}" already has a store or setting named "{new}"; a clone never overwrites one.',
                hint=f"choose another name, or drop it first: storekeeper stores drop {package} {new}",
                app=package,
                setting=new,
            )
        src_row = records.get_setting(app, source)
        if service is None:
            service_id = src_row.service_id
        else:
            found = session.scalar(select(Service).where(Service.name == service))
            if found is None:
                raise ServiceError.not_found(service)
            service_id = found.id
        row = Setting(
            name=new,
            kind=DATABASE,
            dynamic=True,
            required=False,
            description=f"clone of {source}",
            initializer=src_row.initializer,
            spatial=src_row.spatial,
            service_id=service_id,
            connection_name=src_row.connection_name,
            state=ABSENT,
        )
        app.settings.append(row)
        try:
            session.flush()
        except IntegrityError:
            raise StoreError(
                f'Another process is making store "{new}" of app "{package}" right now.',
                hint=f"storekeeper stores list {package}",
                app=package,
                setting=new,
            ) from None
        audit.record(session, "store.register", f"{package}/{new}", detail=f"clone of {source}")
        target = records.make_target(platform, app, row, new_db)
    same = target.spec.id == src.spec.id
    try:
        method = _clone_template(platform, src, target) if same else _clone_dump(platform, src, target, on_progress)
    except BaseException as err:
        with contextlib.suppress(Exception):
            _forget_clone(platform, target)
        with contextlib.suppress(Exception):
            audit.record_now(platform, "store.clone", target.owner, "error", getattr(err, "message", str(err))[:500])
        raise
    audit.record_now(platform, "store.clone", target.owner, "ok", f"{method} from {source}")
    return CloneResult(
        app=package,
        source=source,
        store=new,
        database=new_db,
        service=target.spec.name,
        method=method,
        seconds=time.perf_counter() - started,
    )


def _forget_clone(platform: Platform, target: Target) -> None:
    """Undo a clone that failed: its database, its role and its record."""
    backend = get_backend(target.backend, target.spec)
    with backend.store_lock(target.database) as conn:
        if backend.marker(conn, target.database).owner == target.owner:
            backend.drop_database(conn, target.database, what=target.what)
        backend.drop_role(conn, target.database, owner=target.owner)
    with platform.session() as session:
        row = session.get(Setting, target.setting_id)
        if row is not None:
            session.delete(row)


@contextlib.contextmanager
def _new_store(platform: Platform, target: Target) -> Iterator[tuple[pg.PostgresBackend, Any, Target]]:
    """Hold the new store's lock, with its role made and its record saying "creating"."""
    backend = get_backend(target.backend, target.spec)
    with backend.store_lock(target.database) as conn:
        marker = backend.marker(conn, target.database)
        if marker.exists:
            target.check_owner(marker)
            raise StoreError(
                f"Database {target.database} already exists on {target.spec.where}; a clone never overwrites it.",
                hint=f"choose another name for the clone (storekeeper stores list {target.app})",
                app=target.app,
                setting=target.name,
            )
        target = roles.ensure_store_role(platform, backend, conn, target)
        records.bump(platform, target.setting_id, state=CREATING)
        yield backend, conn, target


def _clone_template(platform: Platform, src: Target, target: Target) -> str:
    """``CREATE DATABASE new TEMPLATE src``: the source's sessions are ended, and new ones wait for the copy."""
    with _new_store(platform, target) as (backend, conn, target):
        with backend.store_lock(src.database) as src_conn:  # no import swaps the source meanwhile
            clean_leftovers(backend, src_conn, src)
            _existing_marker(backend, src_conn, src)
            for attempt in range(CLONE_ATTEMPTS):
                _terminate(conn, src.database)
                try:
                    backend.create_database(
                        conn,
                        target.database,
                        what=target.what,
                        owner=target.owner,
                        role=target.role,
                        template=src.database,
                    )
                    break
                except StoreError as err:
                    if "being accessed by other users" not in err.message or attempt == CLONE_ATTEMPTS - 1:
                        raise
                    time.sleep(0.2 * (attempt + 1))
        if target.role is not None and src.role is not None and src.role != target.role:
            backend.hand_over(target.database, src.role, target.role)
        elif target.role is not None:
            backend.adopt(conn, target.database, target.role)
        backend.set_marker(conn, target.database, pg.INITIALIZED, target.owner)
        records.bump(platform, target.setting_id, state=INITIALIZED, initialized_at=utcnow(), last_error=None)
    return "template"


def _clone_dump(platform: Platform, src: Target, target: Target, on_progress: dumps.Progress | None) -> str:
    """Dump the source into a temporary file, and restore it into the new store on the other service."""
    with tempfile.TemporaryDirectory(prefix="storekeeper-clone-") as tmp:
        path = Path(tmp) / f"{src.database}{dumps.SUFFIX}"
        _dump(platform, src, path, on_progress=on_progress)
        backup = dumps.read_manifest(path)
        with _new_store(platform, target) as (backend, conn, target):
            _restore_and_swap(
                platform,
                backend,
                conn,
                target,
                backup,
                exists=False,
                keep_previous=False,
                state=CREATING,
                on_progress=None,
            )
    return "dump and restore"
