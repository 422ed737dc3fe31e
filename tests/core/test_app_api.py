"""The app-facing classmethods of AppBase, with the seeds' names and semantics."""

from __future__ import annotations

import secrets

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from storekeeper import InvalidNameError, SettingError, StoreError, apps, audit, services, stores
from storekeeper.platform import Platform
from tests.core.conftest import (
    APP,
    EXAMPLE_DB,
    database_exists,
    databases_like,
    drop_behind_back,
    first_time_runs,
    rows,
    setting_record,
)
from tests.pg_server import require_postgis

TEMP_INIT = "my_first_app.model.init_temp_db"


@pytest.fixture
def synced(platform: Platform, my_first_app: type) -> type:
    """my_first_app with its example_db store created and initialized."""
    stores.sync_stores(platform, [APP], database="example_db")
    return my_first_app


def _current_database(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT current_database()")).scalar_one()


# -- get_persistent_store_database -------------------------------------------------------


def test_get_database_returns_the_same_engine_on_every_call(synced: type) -> None:
    first = synced.get_persistent_store_database("example_db")
    assert isinstance(first, Engine)
    assert all(synced.get_persistent_store_database("example_db") is first for _ in range(5))
    assert _current_database(first) == EXAMPLE_DB


def test_get_database_engine_sees_the_initializers_data(synced: type) -> None:
    with synced.get_persistent_store_database("example_db").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 2


def test_get_database_as_url_names_the_store_and_its_role_and_hides_the_password(
    synced: type, pg_admin_url: str
) -> None:
    url = synced.get_persistent_store_database("example_db", as_url=True)
    assert isinstance(url, URL)
    assert url.database == EXAMPLE_DB
    assert url.username == EXAMPLE_DB  # the store's own role, named like its database
    assert url.password and url.password != make_url(pg_admin_url).password
    assert url.password not in str(url)
    assert url.password not in repr(url)
    with psycopg.connect(  # usable for connecting
        host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
    ) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (EXAMPLE_DB,)


def test_get_database_as_sessionmaker_gives_sessions_on_the_store(synced: type) -> None:
    maker = synced.get_persistent_store_database("example_db", as_sessionmaker=True)
    assert isinstance(maker, sessionmaker)
    assert synced.get_persistent_store_database("example_db", as_sessionmaker=True) is maker
    with maker() as session:
        assert isinstance(session, Session)
        assert session.execute(text("SELECT current_database()")).scalar_one() == EXAMPLE_DB


def test_get_persistent_store_engine_is_an_alias(synced: type) -> None:
    assert synced.get_persistent_store_engine("example_db") is synced.get_persistent_store_database("example_db")


def test_get_database_for_a_connection_setting_names_the_other_method(my_first_app: type) -> None:
    with pytest.raises(SettingError) as info:
        my_first_app.get_persistent_store_database("primary")
    assert "connection setting" in str(info.value)
    assert "get_persistent_store_connection" in info.value.hint


def test_get_connection_for_a_database_setting_names_the_other_method(synced: type) -> None:
    with pytest.raises(SettingError) as info:
        synced.get_persistent_store_connection("example_db")
    assert "database setting" in str(info.value)
    assert "get_persistent_store_database" in info.value.hint


def test_unknown_name_error_names_app_setting_and_list_command(my_first_app: type) -> None:
    with pytest.raises(SettingError) as info:
        my_first_app.get_persistent_store_database("exmaple_db")
    assert APP in str(info.value) and "exmaple_db" in str(info.value)
    assert "storekeeper app-settings list my_first_app" in info.value.hint


def test_unassigned_setting_error_names_the_assign_command(platform: Platform, service: str) -> None:
    from my_first_app.app import App

    with pytest.raises(SettingError) as info:
        App.get_persistent_store_database("temp_db")
    assert APP in str(info.value) and "temp_db" in str(info.value)
    assert "storekeeper app-settings set my_first_app temp_db SERVICE" in info.value.hint
    with pytest.raises(SettingError) as info:
        App.get_persistent_store_connection("primary")
    assert "storekeeper app-settings set my_first_app primary SERVICE" in info.value.hint


def test_store_not_yet_synced_error_names_the_sync_command(my_first_app: type) -> None:
    with pytest.raises(StoreError) as info:
        my_first_app.get_persistent_store_database("example_db")
    assert "storekeeper syncstores my_first_app" in info.value.hint


# -- get_persistent_store_connection ------------------------------------------------------


@pytest.fixture
def app_user_service(platform: Platform, my_first_app: type, admin_conn: psycopg.Connection, pg_admin_url: str):  # type: ignore[no-untyped-def]
    """A non-superuser service "appuser" assigned to "primary"; no database is named after its user."""
    from storekeeper import engines

    role, password = "sk_app_" + secrets.token_hex(4), secrets.token_hex(12)
    admin_conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(sql.Identifier(role), password))
    u = make_url(pg_admin_url)
    services.create_service(platform, name="appuser", host=u.host, port=u.port, username=role, password=password)
    apps.assign_service(platform, APP, "primary", "appuser")
    yield role
    engines.clear()
    from tests.conftest import drop_test_databases

    drop_test_databases(pg_admin_url)
    admin_conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_connection_points_at_the_maintenance_database_not_one_named_after_the_user(
    my_first_app: type, app_user_service: str
) -> None:
    engine = my_first_app.get_persistent_store_connection("primary")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_database(), current_user")).one() == ("postgres", app_user_service)
    url = my_first_app.get_persistent_store_connection("primary", as_url=True)
    assert (url.database, url.username) == ("postgres", app_user_service)
    assert my_first_app.get_persistent_store_connection("primary") is engine


def test_connection_follows_the_services_maintenance_database(platform: Platform, my_first_app: type) -> None:
    services.update_service(platform, "local", maintenance_db="template1")
    maker = my_first_app.get_persistent_store_connection("primary", as_sessionmaker=True)
    with maker() as session:
        assert session.execute(text("SELECT current_database()")).scalar_one() == "template1"


# -- listing ------------------------------------------------------------------------------


def test_list_databases_returns_stores_that_exist_on_the_server(synced: type, admin_conn: psycopg.Connection) -> None:
    assert synced.create_persistent_store("scenario_1", "primary") is True
    assert synced.list_persistent_store_databases() == ["example_db", "scenario_1"]
    assert synced.list_persistent_store_databases(dynamic_only=True) == ["scenario_1"]
    assert synced.list_persistent_store_databases(static_only=True) == ["example_db"]
    drop_behind_back(admin_conn, EXAMPLE_DB)
    assert synced.list_persistent_store_databases() == ["scenario_1"]


def test_list_connections_returns_only_assigned_connection_settings(platform: Platform, service: str) -> None:
    from my_first_app.app import App

    assert App.list_persistent_store_connections() == []
    apps.assign_service(platform, APP, "primary", service)
    apps.assign_service(platform, APP, "example_db", service)
    assert App.list_persistent_store_connections() == ["primary"]
    apps.assign_service(platform, APP, "creator", service)
    assert sorted(App.list_persistent_store_connections()) == ["creator", "primary"]


# -- exists --------------------------------------------------------------------------------


def test_exists_asks_the_server(synced: type, admin_conn: psycopg.Connection) -> None:
    assert synced.persistent_store_exists("example_db") is True
    assert synced.persistent_store_exists("temp_db") is False
    assert synced.persistent_store_exists("no_such_store") is False
    drop_behind_back(admin_conn, EXAMPLE_DB)
    assert synced.persistent_store_exists("example_db") is False


# -- create_persistent_store ---------------------------------------------------------------


def test_create_is_idempotent_and_runs_first_time_once(
    platform: Platform, my_first_app: type, pg_admin_url: str
) -> None:
    assert my_first_app.create_persistent_store("scenario_1", "primary", initializer=TEMP_INIT) is True
    assert my_first_app.create_persistent_store("scenario_1", "primary", initializer=TEMP_INIT) is True
    assert first_time_runs(pg_admin_url, "my_first_app_scenario_1") == [True, False]
    assert my_first_app.persistent_store_exists("scenario_1")
    record = setting_record(platform, APP, "scenario_1")
    assert record["dynamic"] and record["state"] == "initialized"  # type: ignore[index]
    events = audit.list_events(platform, action="store.create")
    assert [(e.target, e.outcome, e.detail) for e in events] == [
        ("my_first_app/scenario_1", "ok", "initializer ran"),
        ("my_first_app/scenario_1", "ok", "created"),
    ]


def test_create_then_get_returns_an_engine_on_the_new_store(my_first_app: type) -> None:
    my_first_app.create_persistent_store("scenario_1", "primary")
    assert _current_database(my_first_app.get_persistent_store_database("scenario_1")) == "my_first_app_scenario_1"


def test_create_with_refresh_starts_again_from_empty(my_first_app: type, pg_admin_url: str) -> None:
    my_first_app.create_persistent_store("scenario_1", "primary", initializer=TEMP_INIT)
    my_first_app.create_persistent_store("scenario_1", "primary", initializer=TEMP_INIT)
    my_first_app.create_persistent_store("scenario_1", "primary", initializer=TEMP_INIT, refresh=True)
    assert first_time_runs(pg_admin_url, "my_first_app_scenario_1") == [True]


def test_create_with_force_first_time_keeps_the_store_and_passes_true(my_first_app: type, pg_admin_url: str) -> None:
    my_first_app.create_persistent_store("scenario_1", "primary", initializer=TEMP_INIT)
    my_first_app.create_persistent_store("scenario_1", "primary", initializer=TEMP_INIT, force_first_time=True)
    assert first_time_runs(pg_admin_url, "my_first_app_scenario_1") == [True, True]


def test_create_spatial_dynamic_store_enables_postgis(
    my_first_app: type, pg_admin_url: str, postgis_available: bool
) -> None:
    require_postgis(postgis_available)
    my_first_app.create_persistent_store("geo_scenario", "primary", spatial=True)
    assert rows(pg_admin_url, "my_first_app_geo_scenario", "SELECT postgis_version()")[0][0]


def test_create_under_a_declared_setting_name_provisions_that_static_store(
    platform: Platform, my_first_app: type, pg_admin_url: str
) -> None:
    my_first_app.create_persistent_store("example_db", "primary")
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]
    assert my_first_app.list_persistent_store_databases(static_only=True) == ["example_db"]


def test_create_under_an_unassigned_declared_setting_uses_the_connections_service(
    platform: Platform, service: str, pg_admin_url: str
) -> None:
    from my_first_app.app import App

    apps.assign_service(platform, APP, "primary", service)
    assert App.create_persistent_store("example_db", "primary") is True
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]
    assert next(s for s in apps.list_settings(platform, APP) if s.name == "example_db").service == service


def test_create_without_connection_outside_testing_is_a_clear_error(
    my_first_app: type, admin_conn: psycopg.Connection
) -> None:
    with pytest.raises(StoreError) as info:
        my_first_app.create_persistent_store("scenario_1", None)
    assert "testing" in str(info.value)
    assert "connection setting" in info.value.hint
    assert databases_like(admin_conn, APP) == []


def test_create_through_a_database_setting_names_the_other_kind(my_first_app: type) -> None:
    with pytest.raises(SettingError, match="database setting"):
        my_first_app.create_persistent_store("scenario_1", "example_db")


def test_create_through_an_unassigned_connection_names_the_assign_command(platform: Platform, service: str) -> None:
    from my_first_app.app import App

    with pytest.raises(SettingError) as info:
        App.create_persistent_store("scenario_1", "creator")
    assert "storekeeper app-settings set my_first_app creator SERVICE" in info.value.hint


def test_create_with_a_connection_settings_name_is_refused(my_first_app: type) -> None:
    with pytest.raises(StoreError, match="connection setting"):
        my_first_app.create_persistent_store("creator", "primary")


def test_create_with_bad_name_is_refused(my_first_app: type) -> None:
    with pytest.raises(InvalidNameError):
        my_first_app.create_persistent_store("Scenario 1", "primary")


# -- drop_persistent_store -------------------------------------------------------------------


def test_drop_is_idempotent_and_forgets_a_dynamic_store(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection
) -> None:
    my_first_app.create_persistent_store("scenario_1", "primary")
    assert my_first_app.drop_persistent_store("scenario_1") is True
    assert my_first_app.drop_persistent_store("scenario_1") is True
    assert my_first_app.drop_persistent_store("never_existed") is True
    assert not database_exists(admin_conn, "my_first_app_scenario_1")
    assert not my_first_app.persistent_store_exists("scenario_1")
    assert setting_record(platform, APP, "scenario_1") is None
    with pytest.raises(SettingError):
        my_first_app.get_persistent_store_database("scenario_1")


def test_drop_of_a_static_store_keeps_its_setting_for_the_next_sync(
    platform: Platform, synced: type, pg_admin_url: str
) -> None:
    assert synced.drop_persistent_store("example_db") is True
    assert not synced.persistent_store_exists("example_db")
    assert setting_record(platform, APP, "example_db")["state"] == "absent"  # type: ignore[index]
    with pytest.raises(StoreError, match="not been created"):
        synced.get_persistent_store_database("example_db")
    stores.sync_stores(platform, [APP], database="example_db")
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]


def test_drop_of_a_connection_setting_names_the_kind(my_first_app: type) -> None:
    with pytest.raises(SettingError, match="connection setting"):
        my_first_app.drop_persistent_store("primary")
