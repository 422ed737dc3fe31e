"""Sync, create, drop and list stores on a real PostgreSQL server."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storekeeper import AppError, InitializerError, SettingError, StoreError, apps, audit, services, stores
from storekeeper.audit import acting_as
from storekeeper.platform import Platform
from tests.conftest import INSTALLED_APPS
from tests.core.conftest import (
    APP,
    EXAMPLE_DB,
    connect_to,
    database_exists,
    databases_like,
    drop_behind_back,
    first_time_runs,
    rows,
    set_record,
    setting_record,
)
from tests.pg_server import require_postgis


def sync_example(platform: Platform, **options: object) -> stores.SyncResult:
    (result,) = stores.sync_stores(platform, [APP], database="example_db", **options)  # type: ignore[arg-type]
    return result


def gages(pg_admin_url: str) -> int:
    return rows(pg_admin_url, EXAMPLE_DB, "SELECT count(*) FROM stream_gages")[0][0]


# -- creating and initializing -------------------------------------------------------


def test_sync_creates_every_store_named_package_underscore_setting_with_postgis_where_spatial(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection, pg_admin_url: str, postgis_available: bool
) -> None:
    require_postgis(postgis_available)
    results = stores.sync_stores(platform, [APP])
    assert [(r.store, r.ok, r.action, r.first_time) for r in results] == [
        ("example_db", True, "created", True),
        ("spatial_db", True, "created", True),
        ("temp_db", True, "created", True),
    ]
    assert databases_like(admin_conn, APP) == [
        "my_first_app_example_db",
        "my_first_app_spatial_db",
        "my_first_app_temp_db",
    ]
    assert rows(pg_admin_url, "my_first_app_spatial_db", "SELECT postgis_version()")[0][0]
    (place,) = rows(pg_admin_url, "my_first_app_spatial_db", "SELECT name, ST_AsText(geom) FROM places")
    assert place == ("Provo", "POINT(-111.6585 40.2338)")
    postgis_elsewhere = rows(pg_admin_url, EXAMPLE_DB, "SELECT count(*) FROM pg_extension WHERE extname = 'postgis'")
    assert postgis_elsewhere == [(0,)]


def test_sync_runs_initializer_with_first_time_true_once_then_false(
    platform: Platform, my_first_app: type, pg_admin_url: str
) -> None:
    results = [sync_example(platform) for _ in range(3)]
    assert [r.first_time for r in results] == [True, False, False]
    assert [r.action for r in results] == ["created", "initializer ran", "initializer ran"]
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True, False, False]
    assert gages(pg_admin_url) == 2


def test_synced_store_is_recorded_as_initialized_and_listed_as_existing(platform: Platform, my_first_app: type) -> None:
    sync_example(platform)
    assert setting_record(platform, APP, "example_db")["state"] == "initialized"  # type: ignore[index]
    listed = {s.name: s for s in stores.list_stores(platform, APP)}
    example = listed["example_db"]
    assert (example.kind, example.database, example.exists, example.initialized) == (
        "static",
        EXAMPLE_DB,
        True,
        True,
    )
    assert example.size_bytes and example.size_bytes > 0
    assert listed["temp_db"].exists is False and not listed["temp_db"].initialized


def test_list_stores_says_existence_is_unknown_when_the_service_is_unreachable(
    platform: Platform, service: str
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    services.create_service(platform, name="gone", host="127.0.0.1", port=port, username="u", password="p")
    apps.assign_service(platform, "flaky_app", "db", "gone")
    (listed,) = stores.list_stores(platform, "flaky_app")
    assert listed.exists is None
    assert listed.service == "gone"


def test_refresh_recreates_the_store_with_fresh_data_and_first_time_true(
    platform: Platform, my_first_app: type, pg_admin_url: str
) -> None:
    sync_example(platform)
    sync_example(platform)
    with connect_to(pg_admin_url, EXAMPLE_DB) as conn:
        conn.execute("INSERT INTO stream_gages (latitude, longitude, value) VALUES (0, 0, 99)")
    result = sync_example(platform, refresh=True)
    assert (result.ok, result.action, result.first_time) == (True, "recreated", True)
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]
    assert gages(pg_admin_url) == 2


def test_first_time_flag_forces_first_time_true_and_keeps_the_data(
    platform: Platform, my_first_app: type, pg_admin_url: str
) -> None:
    sync_example(platform)
    result = sync_example(platform, first_time=True)
    assert (result.action, result.first_time) == ("initializer ran", True)
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True, True]
    assert gages(pg_admin_url) == 4


def test_database_option_syncs_only_that_store(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection
) -> None:
    results = stores.sync_stores(platform, [APP], database="temp_db")
    assert [r.store for r in results] == ["temp_db"]
    assert databases_like(admin_conn, APP) == ["my_first_app_temp_db"]


def test_database_option_with_unknown_store_names_the_list_command(platform: Platform, my_first_app: type) -> None:
    with pytest.raises(SettingError) as info:
        stores.sync_stores(platform, [APP], database="nope_db")
    assert "nope_db" in str(info.value)
    assert "storekeeper app-settings list my_first_app" in info.value.hint


def test_database_option_with_a_connection_setting_says_it_is_one(platform: Platform, my_first_app: type) -> None:
    with pytest.raises(SettingError, match="connection setting"):
        stores.sync_stores(platform, [APP], database="primary")


def test_sync_of_unknown_app_says_it_is_not_installed(platform: Platform) -> None:
    with pytest.raises(AppError) as info:
        stores.sync_stores(platform, ["no_such_app"])
    assert "no_such_app" in str(info.value)
    assert info.value.hint


def test_sync_all_apps_covers_every_installed_app(platform: Platform, flaky_app: str) -> None:
    results = stores.sync_stores(platform, None)
    assert {r.app for r in results} == INSTALLED_APPS
    assert [r.ok for r in results if r.app == "flaky_app"] == [True]


def test_dry_run_changes_nothing(platform: Platform, my_first_app: type, admin_conn: psycopg.Connection) -> None:
    results = stores.sync_stores(platform, [APP], dry_run=True)
    assert {r.action for r in results} == {"would create"}
    assert all(r.first_time for r in results)
    assert databases_like(admin_conn, APP) == []
    assert setting_record(platform, APP, "example_db")["state"] == "absent"  # type: ignore[index]
    assert audit.list_events(platform, action="store.sync") == []


def test_dry_run_refresh_of_existing_store_keeps_its_data(
    platform: Platform, my_first_app: type, pg_admin_url: str
) -> None:
    sync_example(platform)
    planned = sync_example(platform, dry_run=True)
    assert (planned.action, planned.first_time) == ("would run initializer", False)
    planned = sync_example(platform, dry_run=True, refresh=True)
    assert (planned.action, planned.first_time) == ("would recreate", True)
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]


def test_dry_run_agrees_with_the_sync_on_foreign_and_unmarked_databases(
    platform: Platform, my_first_app: type, pg_admin_url: str, admin_conn: psycopg.Connection
) -> None:
    """The dry run decides by the same rules as the sync, also in the two rare cases."""
    # A database of that name that storekeeper did not make: both refuse it.
    admin_conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EXAMPLE_DB)))
    planned = sync_example(platform, dry_run=True)
    assert not planned.ok and "not created by storekeeper" in planned.error
    assert not sync_example(platform).ok
    drop_behind_back(admin_conn, EXAMPLE_DB)

    # Recorded as initialized but carrying no marker (made before markers): both keep it.
    sync_example(platform)
    admin_conn.execute(sql.SQL("COMMENT ON DATABASE {} IS NULL").format(sql.Identifier(EXAMPLE_DB)))
    planned = sync_example(platform, dry_run=True)
    assert (planned.action, planned.first_time) == ("would run initializer", False)
    done = sync_example(platform)
    assert (done.action, done.first_time) == ("initializer ran", False)
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True, False]


# -- unassigned settings -------------------------------------------------------------


def test_unassigned_required_setting_fails_naming_the_assign_command_and_optional_is_skipped(
    platform: Platform, service: str, admin_conn: psycopg.Connection
) -> None:
    apps.assign_service(platform, APP, "example_db", service)
    results = {r.store: r for r in stores.sync_stores(platform, [APP])}
    assert results["example_db"].ok
    spatial = results["spatial_db"]
    assert not spatial.ok
    assert "my_first_app" in spatial.error and "spatial_db" in spatial.error
    assert "storekeeper app-settings set my_first_app spatial_db SERVICE" in spatial.hint
    temp = results["temp_db"]
    assert temp.ok and temp.action.startswith("skipped")
    assert databases_like(admin_conn, APP) == [EXAMPLE_DB]


# -- initializer failure and retry ----------------------------------------------------


def test_initializer_failure_names_app_store_and_exception_and_leaves_store_uninitialized(
    platform: Platform, flaky_app: str, fail_flag: Path
) -> None:
    (result,) = stores.sync_stores(platform, ["flaky_app"])
    assert not result.ok
    assert "flaky_app" in result.error and '"db"' in result.error
    assert "RuntimeError" in result.error and "simulated failure" in result.error
    assert "storekeeper syncstores flaky_app" in result.hint
    record = setting_record(platform, "flaky_app", "db")
    assert record["state"] != "initialized"  # type: ignore[index]
    assert "simulated failure" in record["last_error"]  # type: ignore[index]
    (listed,) = stores.list_stores(platform, "flaky_app")
    assert not listed.initialized
    (event,) = audit.list_events(platform, action="store.sync")
    assert event.outcome == "error" and event.target == "flaky_app/db"


def test_next_sync_after_initializer_failure_recreates_the_store_empty(
    platform: Platform, flaky_app: str, fail_flag: Path, pg_admin_url: str
) -> None:
    stores.sync_stores(platform, ["flaky_app"])
    assert first_time_runs(pg_admin_url, "flaky_app_db", "runs") == [True]  # half-written data of the failed run
    fail_flag.unlink()
    (result,) = stores.sync_stores(platform, ["flaky_app"])
    assert (result.ok, result.action, result.first_time) == (True, "recreated", True)
    assert first_time_runs(pg_admin_url, "flaky_app_db", "runs") == [True]
    assert setting_record(platform, "flaky_app", "db")["state"] == "initialized"  # type: ignore[index]
    assert setting_record(platform, "flaky_app", "db")["last_error"] is None  # type: ignore[index]


def test_initializer_failure_on_an_initialized_store_keeps_its_data(
    platform: Platform, flaky_app: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_admin_url: str
) -> None:
    flag = tmp_path / "fail-later"
    monkeypatch.setenv("FLAKY_APP_FAIL", str(flag))
    stores.sync_stores(platform, ["flaky_app"])
    flag.touch()
    (failed,) = stores.sync_stores(platform, ["flaky_app"])
    assert not failed.ok
    assert setting_record(platform, "flaky_app", "db")["state"] == "initialized"  # type: ignore[index]
    flag.unlink()
    (result,) = stores.sync_stores(platform, ["flaky_app"])
    assert result.first_time is False
    assert first_time_runs(pg_admin_url, "flaky_app_db", "runs") == [True, False, False]


def test_initializer_that_cannot_be_imported_names_the_path_and_setting(platform: Platform, my_first_app: type) -> None:
    with pytest.raises(InitializerError) as info:
        stores.create_store(platform, APP, "scratch", "primary", initializer="my_first_app.model.no_such_init")
    assert "my_first_app.model.no_such_init" in str(info.value)
    assert "scratch" in info.value.hint


# -- crashes and changes behind storekeeper's back -------------------------------------


def test_crash_between_initializer_and_record_does_not_rerun_first_time(
    platform: Platform, my_first_app: type, pg_admin_url: str
) -> None:
    sync_example(platform)
    # The initializer succeeded and the server marker says so, but the record was never written.
    set_record(platform, APP, "example_db", state="created")
    result = sync_example(platform)
    assert result.first_time is False
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True, False]
    assert gages(pg_admin_url) == 2
    assert setting_record(platform, APP, "example_db")["state"] == "initialized"  # type: ignore[index]


def test_store_left_half_initialized_by_a_crash_is_recreated_empty(
    platform: Platform, my_first_app: type, pg_admin_url: str, admin_conn: psycopg.Connection
) -> None:
    sync_example(platform)
    # A crash during the first-time run: marker and record both still say "created".
    admin_conn.execute(sql.SQL("COMMENT ON DATABASE {} IS 'storekeeper:created'").format(sql.Identifier(EXAMPLE_DB)))
    set_record(platform, APP, "example_db", state="created")
    result = sync_example(platform)
    assert (result.action, result.first_time) == ("recreated", True)
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]


def test_store_dropped_behind_storekeepers_back_is_recreated_with_first_time_true(
    platform: Platform, my_first_app: type, pg_admin_url: str, admin_conn: psycopg.Connection
) -> None:
    sync_example(platform)
    sync_example(platform)
    drop_behind_back(admin_conn, EXAMPLE_DB)
    assert not stores.store_exists(platform, APP, "example_db")
    result = sync_example(platform)
    assert (result.action, result.first_time) == ("created", True)
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]


def test_foreign_database_with_the_store_name_is_refused_and_left_intact(
    platform: Platform, my_first_app: type, pg_admin_url: str, admin_conn: psycopg.Connection
) -> None:
    admin_conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EXAMPLE_DB)))
    with connect_to(pg_admin_url, EXAMPLE_DB) as conn:
        conn.execute("CREATE TABLE precious (id int)")
    result = sync_example(platform)
    assert not result.ok
    assert "not created by storekeeper" in result.error
    assert "DROP DATABASE" in result.hint and "another store name" in result.hint
    assert rows(pg_admin_url, EXAMPLE_DB, "SELECT to_regclass('precious') IS NOT NULL") == [(True,)]
    assert setting_record(platform, APP, "example_db")["state"] != "initialized"  # type: ignore[index]
    # Not even --refresh or a drop touches a database storekeeper did not make.
    assert not sync_example(platform, refresh=True).ok
    with pytest.raises(StoreError, match="not created by storekeeper"):
        stores.drop_store(platform, APP, "example_db")
    assert rows(pg_admin_url, EXAMPLE_DB, "SELECT to_regclass('precious') IS NOT NULL") == [(True,)]
    # Once its owner has dropped it, the next sync makes the store.
    drop_behind_back(admin_conn, EXAMPLE_DB)
    made = sync_example(platform)
    assert (made.ok, made.first_time) == (True, True)


# -- drop -----------------------------------------------------------------------------


def test_drop_with_open_sessions_completes_quickly(
    platform: Platform, my_first_app: type, pg_admin_url: str, admin_conn: psycopg.Connection
) -> None:
    sync_example(platform)
    outside = connect_to(pg_admin_url, EXAMPLE_DB)
    outside.autocommit = False
    outside.execute("SELECT count(*) FROM stream_gages")  # an open transaction holding a lock
    engine = my_first_app.get_persistent_store_database("example_db")
    pooled = engine.connect()
    pooled.execute(text("SELECT 1"))
    try:
        started = time.monotonic()
        assert stores.drop_store(platform, APP, "example_db") is True
        assert time.monotonic() - started < 2
    finally:
        pooled.invalidate()
        pooled.close()
        outside.close()
    assert not database_exists(admin_conn, EXAMPLE_DB)
    assert setting_record(platform, APP, "example_db")["state"] == "absent"  # type: ignore[index]


def test_drop_is_idempotent_and_audited(platform: Platform, my_first_app: type) -> None:
    sync_example(platform)
    assert stores.drop_store(platform, APP, "example_db") is True
    assert stores.drop_store(platform, APP, "example_db") is True
    details = [e.detail for e in audit.list_events(platform, action="store.drop")]
    assert details == ["did not exist", "dropped"]


# -- privileges -------------------------------------------------------------------------


@pytest.fixture
def createdb_role(platform: Platform, service: str, admin_conn: psycopg.Connection, pg_admin_url: str):  # type: ignore[no-untyped-def]
    """A role that may CREATE DATABASE but is no superuser, registered as service "creator_only"."""
    from storekeeper import engines
    from tests.conftest import drop_test_databases

    role, password = "sk_creator_" + secrets.token_hex(4), secrets.token_hex(12)
    admin_conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(sql.Identifier(role), password))
    u = make_url(pg_admin_url)
    services.create_service(platform, name="creator_only", host=u.host, port=u.port, username=role, password=password)
    yield role
    engines.clear()
    drop_test_databases(pg_admin_url)
    admin_conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_spatial_store_without_superuser_fails_naming_postgis_privilege(
    platform: Platform, createdb_role: str, postgis_available: bool
) -> None:
    require_postgis(postgis_available)
    apps.assign_service(platform, APP, "spatial_db", "creator_only")
    (result,) = stores.sync_stores(platform, [APP], database="spatial_db")
    assert not result.ok
    assert "CREATE EXTENSION postgis" in result.error
    assert "spatial_db" in result.error
    assert "storekeeper services prepare-postgis creator_only --superuser USER" in result.hint
    assert setting_record(platform, APP, "spatial_db")["state"] != "initialized"  # type: ignore[index]


def test_non_spatial_store_works_on_a_createdb_role(platform: Platform, createdb_role: str, pg_admin_url: str) -> None:
    apps.assign_service(platform, APP, "example_db", "creator_only")
    assert sync_example(platform).ok
    owner = rows(
        pg_admin_url,
        "postgres",
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
        (EXAMPLE_DB,),
    )
    assert owner == [(createdb_role,)]


# -- audit -------------------------------------------------------------------------------


def test_sync_is_audited_with_actor_action_and_outcome(platform: Platform, my_first_app: type) -> None:
    sync_example(platform)
    with acting_as("user:alice"):
        sync_example(platform)
    newest, oldest = audit.list_events(platform, action="store.sync")
    assert oldest.actor.startswith("os:")
    assert newest.actor == "user:alice"
    assert (newest.target, newest.outcome) == ("my_first_app/example_db", "ok")
    assert oldest.detail == "created"


# -- database names shared by two apps ---------------------------------------------------------
# "my" + "first_app_example_db" and "my_first_app" + "example_db" both make my_first_app_example_db.
# The server marker names the owning app/store, so neither app may initialize or drop the other's.


@pytest.fixture
def colliding_app(platform: Platform, my_first_app: type, monkeypatch: pytest.MonkeyPatch) -> str:
    """Install app "my" beside my_first_app, its one store assigned to the test service."""
    from importlib.metadata import EntryPoint

    from storekeeper import discovery

    eps = [
        EntryPoint(name=APP, value="my_first_app.app:App", group=discovery.ENTRY_POINT_GROUP),
        EntryPoint(name="my", value="tests.core.fake_apps:ShortPackageApp", group=discovery.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(discovery, "entry_points", lambda group: eps)
    monkeypatch.setattr(discovery, "NAMESPACES", ())  # no namespace (Tethys-style) apps either
    discovery.forget()
    apps.assign_service(platform, "my", "first_app_example_db", "local")
    return "my"


def test_sync_refuses_a_database_that_another_apps_store_owns(
    platform: Platform, colliding_app: str, pg_admin_url: str
) -> None:
    sync_example(platform)
    (result,) = stores.sync_stores(platform, [colliding_app])
    assert not result.ok
    assert APP in result.error and "example_db" in result.error
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]


def test_drop_refuses_a_database_that_another_apps_store_owns(
    platform: Platform, colliding_app: str, admin_conn: psycopg.Connection
) -> None:
    sync_example(platform)
    with pytest.raises(StoreError):
        stores.drop_store(platform, colliding_app, "first_app_example_db")
    assert database_exists(admin_conn, EXAMPLE_DB)
