"""Crash safety and one installation's stores, checked from outside.

A drop that a server crash cuts short leaves PostgreSQL's *invalid* database
(``datconnlimit = -2``): it can only be dropped. The tests make that state as
the server does (a superuser's catalog update), then check that storekeeper
alone finishes it. The kill -9 runs of real servers and processes live in
``tests/reliability``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from storekeeper import StoreError, apps, stores
from storekeeper.platform import Platform
from tests.conftest import TEST_INSTALLATION, storekeeper_exe
from tests.core.conftest import APP, EXAMPLE_DB, database_exists, first_time_runs, set_record, setting_record


def sync_example(platform: Platform, **options: Any) -> stores.SyncResult:
    (result,) = stores.sync_stores(platform, [APP], database="example_db", **options)
    return result


def make_invalid(admin_conn: psycopg.Connection[Any], dbname: str) -> None:
    """Leave ``dbname`` as a DROP DATABASE cut short by a server crash does (PostgreSQL 15.4+)."""
    admin_conn.execute("UPDATE pg_database SET datconnlimit = -2 WHERE datname = %s", (dbname,))


def is_invalid(admin_conn: psycopg.Connection[Any], dbname: str) -> bool:
    row = admin_conn.execute("SELECT datconnlimit FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
    return row is not None and row[0] == -2


def listed(platform: Platform, name: str = "example_db") -> stores.StoreInfo:
    return next(s for s in stores.list_stores(platform, APP) if s.name == name)


# -- interrupted drops ---------------------------------------------------------------


def test_invalid_database_is_not_ready_and_the_next_sync_finishes_the_drop(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any], pg_admin_url: str
) -> None:
    sync_example(platform)
    make_invalid(admin_conn, EXAMPLE_DB)
    info = listed(platform)
    assert (info.exists, info.ready) == (False, False)
    assert "drop was cut short" in (info.problem or "")
    assert "storekeeper syncstores my_first_app --database example_db" in (info.problem or "")
    assert not apps.get_app(platform, APP).ready

    result = sync_example(platform)
    assert (result.ok, result.action, result.first_time) == (True, "recreated (finished an interrupted drop)", True)
    assert not is_invalid(admin_conn, EXAMPLE_DB)
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]
    assert listed(platform).ready


def test_invalid_database_is_finished_by_the_next_drop(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any]
) -> None:
    sync_example(platform)
    make_invalid(admin_conn, EXAMPLE_DB)
    assert stores.drop_store(platform, APP, "example_db")
    assert not database_exists(admin_conn, EXAMPLE_DB)
    assert setting_record(platform, APP, "example_db")["state"] == "absent"  # type: ignore[index]
    # The store's role went with it.
    assert admin_conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (EXAMPLE_DB,)).fetchone() is None


def test_invalid_database_is_finished_by_a_refresh(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any], pg_admin_url: str
) -> None:
    sync_example(platform)
    make_invalid(admin_conn, EXAMPLE_DB)
    result = sync_example(platform, refresh=True)
    assert (result.ok, result.first_time) == (True, True)
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]


def test_drop_recorded_but_not_done_is_never_ready_and_is_finished(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any], pg_admin_url: str
) -> None:
    """A process killed after recording a drop and before making it: not ready; the next sync or drop finishes."""
    sync_example(platform)
    set_record(platform, APP, "example_db", state="dropping")
    info = listed(platform)
    assert info.exists and not info.ready
    assert "drop did not finish" in (info.problem or "")
    result = sync_example(platform)
    assert (result.ok, result.first_time) == (True, True)  # the drop was finished, then the store made anew
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]
    set_record(platform, APP, "example_db", state="dropping")
    stores.drop_store(platform, APP, "example_db")
    assert not database_exists(admin_conn, EXAMPLE_DB)


def test_store_recorded_ready_but_missing_on_the_server_is_not_ready(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any]
) -> None:
    stores.sync_stores(platform, [APP])
    assert apps.get_app(platform, APP).ready or not all(s.ready for s in stores.list_stores(platform, APP))
    admin_conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(EXAMPLE_DB)))
    info = listed(platform)
    assert (info.initialized, info.exists, info.ready) == (True, False, False)
    assert "missing on the server" in (info.problem or "")
    app = apps.get_app(platform, APP)
    assert not app.ready
    (setting,) = [s for s in app.settings if s.name == "example_db"]
    assert setting.ready is False and "syncstores" in (setting.problem or "")
    listed_apps, _ = apps.list_apps(platform)
    assert not next(a for a in listed_apps if a.package == APP).ready


def test_interrupted_create_is_recorded_as_creating_never_as_ready(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any], pg_admin_url: str
) -> None:
    """A kill after CREATE DATABASE and before its marker: an unmarked database owned by the store's role."""
    sync_example(platform)
    admin_conn.execute(sql.SQL("COMMENT ON DATABASE {} IS NULL").format(sql.Identifier(EXAMPLE_DB)))
    set_record(platform, APP, "example_db", state="creating")
    assert not listed(platform).ready
    result = sync_example(platform)
    assert (result.ok, result.action, result.first_time) == (True, "recreated", True)
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]
    assert listed(platform).ready


# -- two installations on one server ----------------------------------------------------


def _other_installation(tmp_path: Path, pg_admin_url: str) -> Any:
    """A second home (its own platform database and installation id) with the test server registered."""
    home = tmp_path / "other-home"
    env = {**os.environ, "STOREKEEPER_HOME": str(home), "COLUMNS": "200"}

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [storekeeper_exe(), *args], input=input, capture_output=True, text=True, env=env, timeout=180
        )

    u = make_url(pg_admin_url)
    assert run("db", "upgrade").returncode == 0
    made = run(
        "services",
        "create",
        "persistent",
        "--name",
        "local",
        "--url",
        f"postgresql://{u.username}@{u.host}:{u.port}",
        "--password-stdin",
        input=f"{u.password}\n",
    )
    assert made.returncode == 0, made.stderr
    for setting in ("example_db", "spatial_db", "temp_db", "primary", "creator"):
        assert run("app-settings", "set", APP, setting, "local").returncode == 0
    return run


def test_another_installation_never_touches_this_ones_stores(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any], pg_admin_url: str, tmp_path: Path
) -> None:
    sync_example(platform)
    oid = admin_conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (EXAMPLE_DB,)).fetchone()
    run = _other_installation(tmp_path, pg_admin_url)
    info = json.loads(run("db", "info", "--json").stdout)
    other = info["installation_id"]
    assert other != TEST_INSTALLATION

    for args in (
        ("syncstores", APP, "--database", "example_db"),
        ("syncstores", APP, "--database", "example_db", "--refresh", "--yes"),
        ("stores", "drop", APP, "example_db", "--yes"),
    ):
        done = run(*args)
        assert done.returncode != 0, args
        assert "another storekeeper installation" in done.stdout + done.stderr, args
        assert TEST_INSTALLATION in done.stdout + done.stderr, args
        assert "Traceback" not in done.stderr

    # The database, its data and its role are untouched; the other installation lists nothing ready.
    assert admin_conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (EXAMPLE_DB,)).fetchone() == oid
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]
    marker = admin_conn.execute(
        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s", (EXAMPLE_DB,)
    ).fetchone()
    assert marker == (f"storekeeper:role {APP}/example_db installation={TEST_INSTALLATION}",)
    theirs = json.loads(run("stores", "list", APP, "--json").stdout)
    example = next(s for s in theirs if s["name"] == "example_db")
    assert example["ready"] is False and example["state"] != "initialized"
    assert listed(platform).ready


def test_a_role_of_another_installation_is_refused(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any]
) -> None:
    role = sql.Identifier(EXAMPLE_DB)
    if admin_conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (EXAMPLE_DB,)).fetchone():
        admin_conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        admin_conn.execute(sql.SQL("DROP ROLE {}").format(role))
    admin_conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
    admin_conn.execute(
        sql.SQL("COMMENT ON ROLE {} IS {}").format(
            sql.Identifier(EXAMPLE_DB), sql.Literal(f"storekeeper:role {APP}/example_db installation=elsewhere")
        )
    )
    result = sync_example(platform)
    assert not result.ok
    assert "another storekeeper installation" in (result.error or "") and "elsewhere" in (result.error or "")
    assert not database_exists(admin_conn, EXAMPLE_DB)
    assert admin_conn.execute(
        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s", (EXAMPLE_DB,)
    ).fetchone() == (f"storekeeper:role {APP}/example_db installation=elsewhere",)
    admin_conn.execute(sql.SQL("DROP ROLE {}").format(role))


def test_drop_of_a_database_of_another_installation_is_refused(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any]
) -> None:
    sync_example(platform)
    marker = f"storekeeper:initialized {APP}/example_db installation=elsewhere"
    admin_conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(EXAMPLE_DB), sql.Literal(marker)))
    with pytest.raises(StoreError, match="another storekeeper installation"):
        stores.drop_store(platform, APP, "example_db")
    assert database_exists(admin_conn, EXAMPLE_DB)
    assert not listed(platform).ready


def test_refresh_cut_short_after_refusing_connections_is_repaired_by_a_plain_sync(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any], pg_admin_url: str
) -> None:
    """A kill between ALTER DATABASE ... ALLOW_CONNECTIONS false and DROP DATABASE (found by tests/reliability)."""
    sync_example(platform)
    admin_conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(EXAMPLE_DB)))
    set_record(platform, APP, "example_db", state="creating")
    info = listed(platform)
    assert not info.ready and "refuses connections" in (info.problem or "")
    result = sync_example(platform)
    assert (result.ok, result.first_time) == (True, False)  # the data was never dropped: kept
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True, False]
    assert listed(platform).ready
