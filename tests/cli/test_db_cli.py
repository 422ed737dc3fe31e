"""``storekeeper db configure`` and ``db upgrade``: the platform database and its admin user."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from psycopg import sql

from storekeeper import users
from storekeeper.config import load_config
from storekeeper.platform import open_platform, reset_platform
from storekeeper.platform.db import HEAD_REVISION
from tests.cli.helpers import fails, ok, process_fails, process_ok

PASSWORD = "correct-horse-battery"


def _verify(home, username, password):
    """Check a password against the platform database of ``home`` (not whichever home the env names)."""
    platform = open_platform(load_config(home))
    try:
        return users.verify_user(platform, username, password) is not None
    finally:
        platform.close()


def _users(home):
    with sqlite3.connect(home / "platform.sqlite3") as conn:
        return conn.execute("SELECT username, password_hash, role, active FROM users ORDER BY username").fetchall()


def test_configure_creates_the_platform_database_and_an_admin_user(invoke_fresh, fresh_home):
    result = ok(invoke_fresh(["db", "configure", "--username", "alice", "--password", PASSWORD]))
    assert "alice" in result.stdout
    assert PASSWORD not in result.output
    [(username, password_hash, role, active)] = _users(fresh_home)
    assert (username, role, active) == ("alice", "admin", 1)
    assert password_hash.startswith("$argon2")
    assert PASSWORD not in password_hash
    assert _verify(fresh_home, "alice", PASSWORD)


def test_configure_again_updates_the_user_without_a_second_row(invoke_fresh, fresh_home):
    ok(invoke_fresh(["db", "configure", "--username", "alice", "--password", PASSWORD]))
    result = ok(invoke_fresh(["db", "configure", "--username", "alice", "--password", "another-password"]))
    assert "updated" in result.stdout
    assert [u[0] for u in _users(fresh_home)] == ["alice"]
    assert _verify(fresh_home, "alice", "another-password")
    assert not _verify(fresh_home, "alice", PASSWORD)


def test_configure_without_password_and_no_terminal_is_a_clear_error(invoke_fresh, fresh_home):
    err = fails(invoke_fresh(["db", "configure", "--username", "alice"]), "--password-stdin", "db configure")
    assert "--connection" not in err
    assert not (fresh_home / "platform.sqlite3").exists() or _users(fresh_home) == []


def test_configure_refuses_a_short_password(invoke_fresh):
    fails(invoke_fresh(["db", "configure", "--username", "alice", "--password", "short"]), "at least")


def test_configure_reads_the_password_from_stdin(run_cli, fresh_home):
    proc = process_ok(
        run_cli(
            "db",
            "configure",
            "--username",
            "bob",
            "--password-stdin",
            input=PASSWORD + "\n",
            env={"STOREKEEPER_HOME": str(fresh_home)},
        )
    )
    assert PASSWORD not in proc.stdout + proc.stderr
    assert _verify(fresh_home, "bob", PASSWORD)


def test_configure_with_empty_stdin_is_an_error(run_cli, fresh_home):
    process_fails(
        run_cli("db", "configure", "--password-stdin", input="", env={"STOREKEEPER_HOME": str(fresh_home)}),
        "--password-stdin",
    )


def test_configure_with_no_password_in_a_real_process_without_terminal_fails(run_cli, fresh_home):
    process_fails(run_cli("db", "configure", input="", env={"STOREKEEPER_HOME": str(fresh_home)}), "--password-stdin")


def test_upgrade_is_idempotent(invoke_fresh):
    first = ok(invoke_fresh("db upgrade")).stdout
    assert HEAD_REVISION in first
    second = ok(invoke_fresh("db upgrade")).stdout
    assert "already" in second
    assert HEAD_REVISION in second


@pytest.mark.parametrize(
    "command",
    [
        "services list",
        "apps list",
        "stores list",
        "syncstores my_first_app",
        "app-settings list my_first_app",
        "services create persistent --name x --connection u:p@localhost:5432",
    ],
)
def test_commands_before_configure_name_db_configure(invoke_fresh, command):
    fails(invoke_fresh(command), "storekeeper db configure")


def test_command_before_configure_in_a_real_process_has_no_traceback(run_cli, fresh_home):
    process_fails(run_cli("services", "list", env={"STOREKEEPER_HOME": str(fresh_home)}), "storekeeper db configure")


def test_unreachable_platform_database_is_a_clear_error(invoke_fresh):
    from tests.cli.helpers import closed_port

    url = f"postgresql+psycopg://nobody:pw@127.0.0.1:{closed_port()}/sk_platform"
    ok(invoke_fresh(["settings", "--set", "database.url", url]))
    err = fails(invoke_fresh("services list"), "database.url")
    assert ":pw@" not in err


@pytest.fixture
def pg_platform_url(pg, admin_conn):
    """A PostgreSQL platform database URL on the test server, for a database that does not exist yet."""
    name = f"sk_cli_platform_{uuid.uuid4().hex[:8]}"
    yield name, f"postgresql+psycopg://{pg.user}:{pg.password}@{pg.host}:{pg.port}/{name}"
    reset_platform()
    admin_conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_configure_on_postgresql_creates_the_platform_database(
    invoke_fresh, fresh_home, pg, pg_platform_url, admin_conn
):
    name, url = pg_platform_url
    ok(invoke_fresh(["settings", "--set", "database.url", url]))
    result = ok(invoke_fresh(["db", "configure", "--username", "admin", "--password", PASSWORD]))
    assert pg.password not in result.output
    assert PASSWORD not in result.output
    assert admin_conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert _verify(fresh_home, "admin", PASSWORD)
    assert "already" in ok(invoke_fresh("db upgrade")).stdout
    ok(invoke_fresh(["services", "create", "persistent", "--name", "local", "--connection", pg.connection]))
    assert "local" in ok(invoke_fresh("services list")).stdout
