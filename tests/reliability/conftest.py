"""Shared helpers of the reliability suite: homes, a server to crash, looking at the server from outside.

* :class:`Home`: a storekeeper home with its own SQLite platform database and
  secret key; runs the real ``storekeeper`` command in it (``cli``/``popen``: a
  process; ``invoke``: the same command in this process, for cheap listings).
* ``crash_app``: the suite's app (:mod:`tests.reliability.crash_app`), visible
  only to the suite's processes through a ``*.dist-info`` entry point on their path.
* :class:`CrashServer`: a private PostgreSQL server (``LocalServer.temporary``)
  that a test may kill with SIGKILL and restart on the same data directory and port.
* :func:`store_check`, :func:`catalog`, :func:`wipe`: what the server says, read
  with plain catalog queries (nothing a test reads this way is repaired by hand).
* :func:`figures`: the one figure line each case prints and asserts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from storekeeper import apps, discovery, services
from storekeeper.pgserver import LocalServer
from storekeeper.platform import Platform
from tests.conftest import _forget_process_state, storekeeper_exe
from tests.reliability import crash_app

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = crash_app.PACKAGE
#: Databases and roles the suite makes: crash_app's stores, their test copies and templates.
OURS_RE = r"^((test\d*|tpl)_)?crash_app_"
#: Environment variables a home's processes must not inherit from the test process.
_DROP_ENV = ("STOREKEEPER_", crash_app.DELAY_ENV, "FLAKY_APP_")
_KEEP_ENV = ("STOREKEEPER_TEST_DATABASE_URL", "STOREKEEPER_REQUIRE_POSTGIS")


# -- an app only the suite sees ---------------------------------------------------------


def write_dist_info(directory: Path, dist: str, entry_points: dict[str, str]) -> Path:
    """Install a distribution with ``storekeeper.apps`` entry points by writing its metadata into ``directory``.

    ``importlib.metadata`` finds it in any directory on ``sys.path``, as pip's
    own installs: the processes the suite starts get ``directory`` on their
    ``PYTHONPATH``, and no other test sees the app.
    """
    info = directory / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[storekeeper.apps]\n{lines}")
    return directory


@pytest.fixture(scope="session")
def apps_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding crash_app's entry point (put on the path of the suite's processes)."""
    return write_dist_info(
        tmp_path_factory.mktemp("reliability-apps"),
        "storekeeper_reliability_crash_app",
        {APP: f"{crash_app.__name__}:App"},
    )


@pytest.fixture
def installed(apps_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make crash_app an installed app for this process too (for the test's own, in-process calls)."""
    monkeypatch.syspath_prepend(str(apps_dir))
    discovery.forget()
    yield apps_dir
    discovery.forget()


# -- homes ------------------------------------------------------------------------------


class Home:
    """A storekeeper home; runs the real ``storekeeper`` command in it."""

    def __init__(
        self,
        path: Path,
        apps_dir: Path,
        platform: Platform | None = None,
        label: str = "",
        paths: tuple[Path, ...] = (),
    ) -> None:
        self.path = path
        self.label = label or path.name
        #: More directories for the processes' path (other apps' entry points).
        self.paths = paths
        self.apps_dir = apps_dir
        self._platform = platform

    @property
    def platform(self) -> Platform:
        if self._platform is None:
            from storekeeper.config import load_config
            from storekeeper.platform import db, open_platform

            config = load_config(self.path)
            engine = db.make_engine(config.database_url)
            db.upgrade(engine)
            engine.dispose()
            self._platform = open_platform(config)
        return self._platform

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k in _KEEP_ENV or not any(k.startswith(p) for p in _DROP_ENV)}
        path = [
            *map(str, self.paths),
            str(self.apps_dir),
            str(REPO_ROOT),
            *filter(None, [os.environ.get("PYTHONPATH")]),
        ]
        return {**base, "STOREKEEPER_HOME": str(self.path), "PYTHONPATH": os.pathsep.join(path), **extra}

    def cli(
        self, *args: str, timeout: float = 180, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``storekeeper ARGS`` as a process; return when it has exited."""
        return subprocess.run(
            [storekeeper_exe(), *args],
            capture_output=True,
            text=True,
            env=self.env(**env),
            timeout=timeout,
            input=input,
        )

    def python(self, code: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
        """Run a Python snippet as a process in this home (an app's own process)."""
        import sys

        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=self.env(**env), timeout=timeout
        )

    def popen(self, *args: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
        """Start ``storekeeper ARGS`` as a process writing stdout and stderr to ``log``."""
        with log.open("wb") as out:
            return subprocess.Popen(
                [storekeeper_exe(), *args], stdout=out, stderr=subprocess.STDOUT, env=self.env(**env)
            )

    def invoke(self, *args: str, input: str | None = None) -> Result:
        """Run ``storekeeper ARGS`` in this process (the same command code, no interpreter start-up)."""
        from storekeeper.cli.main import cli

        result = CliRunner().invoke(cli, list(args), input=input, env={"STOREKEEPER_HOME": str(self.path)})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def run(self, *args: str, input: str | None = None) -> tuple[int, str, str]:
        """Run a command as an admin would and return (exit code, stdout, stderr).

        In this process by default (the same command code, after dropping cached
        engines and apps: no interpreter start-up), as a new process with
        ``RELIABILITY_PROCESSES=1``. A traceback counts as exit -1.
        """
        if os.environ.get("RELIABILITY_PROCESSES") == "1":
            done = self.cli(*args, input=input)
            return done.returncode, done.stdout, done.stderr
        from storekeeper import engines

        engines.clear()
        discovery.forget()
        try:
            ran = self.invoke(*args, input=input)
        except Exception as err:
            return -1, "", f"Error: {type(err).__name__}: {err}"
        return ran.exit_code, ran.stdout, ran.stderr

    def stores(self) -> dict[str, dict[str, Any]]:
        """``storekeeper stores list crash_app --json``, by store name."""
        result = self.invoke("stores", "list", APP, "--json")
        assert result.exit_code == 0, result.output
        return {s["name"]: s for s in json.loads(result.stdout)}

    def app(self) -> dict[str, Any]:
        """crash_app as ``storekeeper apps list --json`` shows it."""
        result = self.invoke("apps", "list", "--json")
        assert result.exit_code == 0, result.output
        return next(a for a in json.loads(result.stdout)["apps"] if a["package"] == APP)


def register_service(platform: Platform, name: str, url: str) -> None:
    u = make_url(url)
    services.create_service(
        platform, name=name, host=u.host or "127.0.0.1", port=u.port or 5432, username=u.username or "postgres",
        password=u.password, pool_size=3,
    )  # fmt: skip


def assign_crash_app(platform: Platform, service: str, *, spatial: bool, plain: int = 2) -> list[str]:
    """Assign ``primary`` and ``plain`` plain stores (and ``geo`` when ``spatial``) to ``service``; return the stores."""
    stores = [*crash_app.PLAIN_STORES[:plain], *([crash_app.SPATIAL_STORE] if spatial else [])]
    for setting in ("primary", *stores):
        apps.assign_service(platform, APP, setting, service)
    return stores


def installation_id(home: Path) -> str | None:
    """This home's installation id: from ``storekeeper settings --json`` or the platform database's table."""
    import sqlite3

    from storekeeper.config import load_config

    url = make_url(load_config(home).database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    with contextlib.closing(sqlite3.connect(url.database)) as conn:
        try:
            cursor = conn.execute("SELECT * FROM installation")
        except sqlite3.OperationalError:
            return None
        row = cursor.fetchone()
        if row is None:
            return None
        columns = [c[0] for c in cursor.description]
        for name in ("installation_id", "id", "uuid", "value"):
            if name in columns and isinstance(row[columns.index(name)], str):
                return str(row[columns.index(name)])
        return next((str(v) for v in row if isinstance(v, str) and len(v) >= 8), None)


# -- a server to crash ------------------------------------------------------------------


@dataclass
class CrashServer:
    """A private server the suite may kill with SIGKILL and restart (same data directory, same port)."""

    server: LocalServer
    port: int = 0
    crashes: int = 0

    @property
    def url(self) -> str:
        return self.server.url()

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        """A connection (autocommit) to one database, as the superuser unless ``user``/``password`` are given."""
        u = make_url(self.url)
        params = {"host": u.host, "port": u.port, "user": u.username, "password": u.password, **kwargs}
        return psycopg.connect(dbname=dbname, autocommit=True, **params)

    def processes(self) -> list[int]:
        """Every process of the cluster: the postmaster and its children all work in the data directory."""
        found = []
        datadir = str(self.server.datadir)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "cwd") == datadir:
                        found.append(int(entry.name))
        return found

    def postmaster_pid(self) -> int:
        return int((self.server.datadir / "postmaster.pid").read_text().split()[0])

    def crash(self) -> None:
        """SIGKILL the postmaster (as a crash would); its children then die of its death (SIGKILL after 5 s)."""
        pid = self.postmaster_pid()
        os.kill(pid, signal.SIGKILL)
        self.crashes += 1
        deadline = time.monotonic() + 5
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.02)
        for straggler in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(straggler, signal.SIGKILL)
        while self.processes():
            time.sleep(0.02)
        # The dead postmaster stays a zombie until init reaps it (some inits take seconds), and a
        # zombie's pid still "exists", so the new postmaster would take the stale lock file for a
        # live server's. The zombie holds no port, memory or file: its lock files are stale, remove them.
        if _zombie(pid):
            for lock in [self.server.datadir / "postmaster.pid", *self.server.datadir.glob(".s.PGSQL.*.lock")]:
                lock.unlink(missing_ok=True)

    def restart(self) -> None:
        """Start the server again on its data directory (crash recovery runs) and port."""
        self.server.start()
        assert self.server.port == self.port, f"the server came back on port {self.server.port}, not {self.port}"

    def ensure_running(self) -> None:
        if not self.processes():
            self.restart()

    def wait_quiet(self, timeout: float = 10) -> None:
        """Wait until no client but us is connected (backends of a killed client end on their own)."""
        deadline = time.monotonic() + timeout
        with self.connect() as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid()"
                ).fetchone()
                if row and row[0] == 0:
                    return
                time.sleep(0.05)


@pytest.fixture(scope="session")
def crash_server() -> Iterator[CrashServer]:
    """A private PostgreSQL server for the kill tests (never the shared session server).

    Made with ``fast=True`` (no fsync: only the server is killed, never the machine,
    so the OS still writes what it was given), but with ``synchronous_commit`` back
    on: without it a killed postmaster loses commits it had already acknowledged,
    which no real server does.
    """
    with LocalServer.temporary() as server:
        port = server.port
        assert port is not None
        crash = CrashServer(server, port=port)
        with crash.connect() as conn:
            conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            conn.execute("SELECT pg_reload_conf()")
        yield crash


@pytest.fixture(scope="session")
def crash_server_postgis(crash_server: CrashServer) -> bool:
    with crash_server.connect() as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone()
    return row is not None


# -- the server, from outside -----------------------------------------------------------


def admin_connect(url: str, dbname: str = "postgres") -> psycopg.Connection[Any]:
    u = make_url(url)
    return psycopg.connect(
        host=u.host, port=u.port or 5432, user=u.username, password=u.password, dbname=dbname, autocommit=True
    )


def database_row(conn: psycopg.Connection[Any], name: str) -> dict[str, Any] | None:
    """A database's oid, datconnlimit (-2: invalid, a DROP cut short) and marker comment; None when absent."""
    row = conn.execute(
        "SELECT oid, datconnlimit, shobj_description(oid, 'pg_database'), pg_get_userbyid(datdba) "
        "FROM pg_database WHERE datname = %s",
        (name,),
    ).fetchone()
    if row is None:
        return None
    return {"oid": row[0], "datconnlimit": row[1], "marker": row[2], "owner": row[3]}


def describe(conn: psycopg.Connection[Any], name: str) -> str:
    """One line on what the server has under a database name (for failure reports)."""
    row = database_row(conn, name)
    if row is None:
        return f"{name}: absent"
    return f"{name}: oid={row['oid']} datconnlimit={row['datconnlimit']} marker={row['marker']!r}"


def marker_says(marker: str | None, state: str, owner: str) -> bool:
    """Whether a marker comment reads ``storekeeper:STATE OWNER`` (anything may follow, e.g. an installation id)."""
    words = (marker or "").split()
    return words[:2] == [f"storekeeper:{state}", owner]


def store_check(url: str, conn: psycopg.Connection[Any], database: str, owner: str) -> str | None:
    """Why a store storekeeper calls ready is not (None: it is).

    Ready: the database exists, is valid (``datconnlimit <> -2``), carries the
    marker ``storekeeper:initialized APP/STORE``, and its first-time
    initialization ran exactly once (one ``first_time=True`` row in
    ``init_log``, the first one, and the first-time data once).
    """
    row = database_row(conn, database)
    if row is None:
        return "database does not exist"
    if row["datconnlimit"] == -2:
        return "database is invalid (datconnlimit = -2: a DROP DATABASE was cut short)"
    if not marker_says(row["marker"], "initialized", owner):
        return f"marker is {row['marker']!r}, not 'storekeeper:initialized {owner}'"
    try:
        with admin_connect(url, database) as db:
            runs = [r[0] for r in db.execute("SELECT first_time FROM init_log ORDER BY id").fetchall()]
            items = db.execute("SELECT count(*) FROM items").fetchone()
    except psycopg.Error as err:
        return f"cannot read it: {str(err).strip().splitlines()[0]}"
    if runs.count(True) != 1 or runs[0] is not True:
        return f"first_time runs are {runs} (want exactly one True, first)"
    if items is None or items[0] != 1:
        return f"first-time data rows: {items[0] if items else None} (want 1)"
    return None


def catalog(conn: psycopg.Connection[Any], pattern: str = OURS_RE) -> dict[str, tuple[Any, ...]]:
    """Fingerprint of the databases and roles whose names match ``pattern``: oid, marker, validity, password."""
    found: dict[str, tuple[Any, ...]] = {}
    for name, oid, limit, marker, owner in conn.execute(
        "SELECT datname, oid, datconnlimit, shobj_description(oid, 'pg_database'), pg_get_userbyid(datdba) "
        "FROM pg_database WHERE datname ~ %s",
        (pattern,),
    ).fetchall():
        found[f"database {name}"] = (oid, limit, marker, owner)
    for name, oid, marker, password in conn.execute(
        "SELECT rolname, oid, shobj_description(oid, 'pg_authid'), rolpassword FROM pg_authid WHERE rolname ~ %s",
        (pattern,),
    ).fetchall():
        found[f"role {name}"] = (oid, marker, password)
    return found


def server_objects(conn: psycopg.Connection[Any]) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """Every database and role on the server (name, oid): to show that nothing was created."""
    dbs = {tuple(r) for r in conn.execute("SELECT datname, oid FROM pg_database").fetchall()}
    roles = {tuple(r) for r in conn.execute("SELECT rolname, oid FROM pg_roles").fetchall()}
    return dbs, roles


def wipe(url: str, pattern: str = OURS_RE) -> None:
    """Drop every database and role whose name matches ``pattern`` (test set-up and tear-down only)."""
    with admin_connect(url) as conn:
        for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname ~ %s", (pattern,)).fetchall():
            ident = sql.Identifier(name)
            if not _invalid(conn, name):  # an invalid database can only be dropped
                conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(ident))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        for (name,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname ~ %s", (pattern,)).fetchall():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _invalid(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT datconnlimit = -2 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return bool(row and row[0])


def summary(text: str, limit: int = 400) -> str:
    """What a command said, in one line: the errors of a JSON answer, else its ``Error:`` line, else its first line."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        failed = [r for r in data.get("results", []) if isinstance(r, dict) and not r.get("ok", True)]
        if failed:
            said = "; ".join(f"{r.get('store')}: {r.get('error')}" for r in failed)
        elif data.get("error"):
            said = f"Error: {data['error']}"
        else:
            said = "ok: " + ", ".join(f"{r.get('store')} {r.get('action')}" for r in data.get("results", []))
        return said[:limit]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    return (errors or lines or ["(no output)"])[0][:limit]


# -- figures --------------------------------------------------------------------------


@dataclass
class Figures:
    """What one case tried and what went wrong, printed on one line and asserted."""

    case: str
    tried: int = 0
    failed: int = 0
    lost: int = 0
    extra: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        more = "".join(f" {k}={v}" for k, v in self.extra.items())
        return f"FIGURES {self.case}: tried={self.tried} failed={self.failed} lost={self.lost}{more}"

    def check(self) -> None:
        print(self.line())
        for problem in self.problems:
            print(f"  - {problem}")
        assert self.failed == 0 and self.lost == 0, self.line() + "\n" + "\n".join(self.problems)


def clean_env() -> None:
    """Forget the process's engines, discovered apps and platforms (between homes and after a crash)."""
    _forget_process_state()


@pytest.fixture
def crash_home(
    platform: Platform, sk_home: Path, installed: Path, crash_server: CrashServer, crash_server_postgis: bool
) -> Iterator[Callable[[list[str]], tuple[Home, list[str]]]]:
    """Make a home whose service "local" is the crash server, with the given crash_app stores assigned to it.

    The server is wiped of crash_app's databases and roles first; ``geo`` is left
    out when the server has no PostGIS (a failure when CI requires PostGIS).
    """
    if not crash_server_postgis and os.environ.get("STOREKEEPER_REQUIRE_POSTGIS") == "1":
        pytest.fail("PostGIS is not available on the crash server; STOREKEEPER_REQUIRE_POSTGIS=1 forbids going without")

    def make(wanted: list[str]) -> tuple[Home, list[str]]:
        crash_server.ensure_running()
        wipe(crash_server.url)
        register_service(platform, "local", crash_server.url)
        statics = [s for s in wanted if crash_server_postgis or s != crash_app.SPATIAL_STORE]
        for setting in ("primary", *statics):
            apps.assign_service(platform, APP, setting, "local")
        return Home(sk_home, installed, platform), statics

    yield make
    from storekeeper import engines

    engines.clear()


def _zombie(pid: int) -> bool:
    """Whether ``pid`` is dead but not yet reaped."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"
