"""Rotating a store role's password: no request fails, the old password is refused, a crash is finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from storekeeper import engines, stores
from storekeeper.backends.postgresql import scram_verifier
from storekeeper.platform import Platform
from storekeeper.stores import records
from tests.core.conftest import APP, EXAMPLE_DB, connect_to, drop_service_user, make_service_user

CLIENT = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy import text
    from my_first_app.app import App

    deadline = time.monotonic() + float(sys.argv[1])
    ok = failed = 0
    while time.monotonic() < deadline:
        engine = App.get_persistent_store_database("example_db")
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one()
            ok += 1
        except Exception as err:
            failed += 1
            print(type(err).__name__, str(err).splitlines()[0], file=sys.stderr)
        engine.dispose()  # the next request logs in afresh
    print(ok, failed)
    """
)


def _login(url: URL, password: str | None = None) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=url.host, port=url.port, user=url.username, password=password or url.password, dbname=url.database
    )


@pytest.fixture
def synced(platform: Platform, my_first_app: type) -> type:
    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok
    return my_first_app


def _setting_id(platform: Platform) -> int:
    with platform.session() as session:
        return records.get_setting(records.load_app(session, APP), "example_db").id


def test_rotation_fails_no_request_of_a_running_process_and_refuses_the_old_password(
    platform: Platform, synced: type, sk_home: Path
) -> None:
    old = synced.get_persistent_store_database("example_db", as_url=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, "8"],
        env={**env, "STOREKEEPER_HOME": str(sk_home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)  # the client holds the old password
    for _ in range(3):
        results = stores.rotate_credentials(platform, APP, database="example_db")
        assert [(r.store, r.action, r.role) for r in results] == [("example_db", "rotated", EXAMPLE_DB)]
        time.sleep(1)
    out, err = client.communicate(timeout=60)
    ok, failed = (int(n) for n in out.split())
    assert failed == 0, err
    assert ok > 20
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _login(old).close()
    engines.clear()
    new = synced.get_persistent_store_database("example_db", as_url=True)
    assert new.username == EXAMPLE_DB and new.password != old.password
    with _login(new) as conn:
        assert conn.execute("SELECT count(*) FROM stream_gages").fetchone() == (2,)


def test_a_rotation_cut_short_before_the_server_changed_is_finished_by_the_next_command(
    platform: Platform, synced: type
) -> None:
    setting_id = _setting_id(platform)
    role, current, _ = records.read_role(platform, setting_id) or ("", "", None)
    # The crash: the new password was recorded as pending, the server was never told.
    records.set_state(platform, setting_id, role_password_pending=platform.encrypt("pending-secret-1"))
    engines.clear()
    with synced.get_persistent_store_database("example_db").connect() as conn:  # still the current password
        assert conn.execute(text("SELECT current_user")).scalar_one() == role
    [result] = stores.rotate_credentials(platform, APP, database="example_db")
    assert result.action == "rotated"
    assert records.read_role(platform, setting_id) == (role, "pending-secret-1", None)
    url = synced.get_persistent_store_database("example_db", as_url=True)
    with _login(url, "pending-secret-1"):
        pass
    with pytest.raises(psycopg.OperationalError):
        _login(url, current).close()


def test_a_rotation_cut_short_after_the_server_changed_still_connects_and_sync_finishes_it(
    platform: Platform, synced: type, pg_admin_url: str
) -> None:
    setting_id = _setting_id(platform)
    role, _, _ = records.read_role(platform, setting_id) or ("", "", None)
    records.set_state(platform, setting_id, role_password_pending=platform.encrypt("pending-secret-2"))
    from psycopg import sql

    with connect_to(pg_admin_url, "postgres") as admin:  # the server got the new password, then the crash
        admin.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(scram_verifier("pending-secret-2"))
            )
        )
    engines.clear()  # a new process: it reads the (old) current password first, then the pending one
    with synced.get_persistent_store_database("example_db").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 2
    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok
    assert records.read_role(platform, setting_id) == (role, "pending-secret-2", None)


def test_rotate_credentials_cli_reports_each_store_and_skips_those_without_a_role(
    platform: Platform, synced: type, run_cli: Any
) -> None:
    proc = run_cli("stores", "rotate-credentials", APP, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    by_store = {r["store"]: r for r in report["results"]}
    assert by_store["example_db"]["action"] == "rotated" and by_store["example_db"]["role"] == EXAMPLE_DB
    assert by_store["spatial_db"]["action"] == "skipped (not created yet)"
    assert "password" not in proc.stdout.lower()
    unknown = run_cli("stores", "rotate-credentials", "no_such_app")
    assert unknown.returncode != 0 and "storekeeper apps list" in unknown.stdout + unknown.stderr


ROTATOR = "sk_rotator"


@pytest.fixture
def rotator_service(platform: Platform, service: str, pg_admin_url: str) -> Any:
    """Service "rot": a user with exactly LOGIN CREATEDB CREATEROLE, whose password the test rotates."""
    make_service_user(platform, pg_admin_url, "rot", ROTATOR, "first-pw", "LOGIN CREATEDB CREATEROLE")
    yield "rot"
    with connect_to(pg_admin_url, "postgres") as conn:
        drop_service_user(conn, ROTATOR)


def test_service_password_rotation_keeps_connections_working_and_refuses_the_old_password(
    platform: Platform, my_first_app: type, rotator_service: str, pg_admin_url: str, run_cli: Any
) -> None:
    from sqlalchemy.engine import make_url

    from storekeeper import apps, services

    apps.assign_service(platform, APP, "primary", rotator_service)
    apps.assign_service(platform, APP, "example_db", rotator_service)
    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok  # a store role made by this user
    engine = my_first_app.get_persistent_store_connection("primary")  # holds "first-pw"
    proc = run_cli("services", "rotate-password", rotator_service, "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "first-pw" not in proc.stdout + proc.stderr
    engine.dispose()
    with engine.connect() as conn:  # a fresh login with the old password in hand: re-read, no failure
        assert conn.execute(text("SELECT current_user")).scalar_one() == ROTATOR
    u = make_url(pg_admin_url)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=u.host, port=u.port, user=ROTATOR, password="first-pw", dbname="postgres").close()
    assert services.test_service(platform, rotator_service)["can_create_role"] is True
    # The stores on it are untouched: their own roles, their own passwords.
    with my_first_app.get_persistent_store_database("example_db").connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == EXAMPLE_DB
    unknown = run_cli("services", "rotate-password", "nope", "--yes")
    assert unknown.returncode != 0 and "storekeeper services list" in unknown.stdout + unknown.stderr
