"""Testing mode in-process: the app API resolves to test copies, and real stores and records stay untouched."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from storekeeper import StoreError, audit, engines, stores
from storekeeper.platform import Platform
from tests.core.conftest import APP, database_exists, first_time_runs, rows, setting_record
from tests.pg_server import require_postgis
from tests.testing.conftest import COPY, EXAMPLE_DB, copies_on_server, gage_values

TEMP_INIT = "my_first_app.model.init_temp_db"


def _current_database(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT current_database()")).scalar_one()


def _platform_records(platform: Platform) -> dict[str, Any]:
    """Everything storekeeper records about apps, settings and what happened, read with plain SQL."""
    with platform.engine.connect() as conn:
        settings = conn.execute(text("SELECT * FROM settings ORDER BY id")).all()
        app_rows = conn.execute(text("SELECT * FROM apps ORDER BY id")).all()
        events = conn.execute(text("SELECT * FROM audit_events ORDER BY id")).all()
    return {"settings": settings, "apps": app_rows, "audit": events}


def test_store_resolves_to_its_test_copy_created_on_demand_with_initial_data(
    testing: type, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    assert not database_exists(admin_conn, COPY)
    engine = testing.get_persistent_store_database("example_db")
    assert engine.url.database == COPY
    assert _current_database(engine) == COPY
    assert database_exists(admin_conn, COPY)
    assert gage_values(pg_admin_url, COPY) == [1, 2]  # what the initializer made, not the real store's 99
    assert first_time_runs(pg_admin_url, COPY) == [True]
    assert testing.get_persistent_store_database("example_db", as_url=True).database == COPY


def test_writing_through_the_app_api_in_testing_mode_leaves_the_real_store_unchanged(
    testing: type, pg_admin_url: str
) -> None:
    before = rows(pg_admin_url, EXAMPLE_DB, "SELECT * FROM stream_gages ORDER BY id")
    maker = testing.get_persistent_store_database("example_db", as_sessionmaker=True)
    with maker() as session:
        session.execute(text("INSERT INTO stream_gages (latitude, longitude, value) VALUES (1, 1, 7)"))
        session.execute(text("DELETE FROM stream_gages WHERE value = 1"))
        session.commit()
    with testing.get_persistent_store_database("example_db").begin() as conn:
        conn.execute(text("UPDATE stream_gages SET value = value + 100"))
    assert gage_values(pg_admin_url, COPY) == [102, 107]
    assert rows(pg_admin_url, EXAMPLE_DB, "SELECT * FROM stream_gages ORDER BY id") == before
    assert gage_values(pg_admin_url, EXAMPLE_DB) == [1, 2, 99]
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]


def test_real_store_is_never_opened_in_testing_mode(testing: type, admin_conn: psycopg.Connection) -> None:
    engine = testing.get_persistent_store_database("example_db")
    with engine.connect():
        sessions = admin_conn.execute(
            "SELECT datname FROM pg_stat_activity WHERE application_name LIKE 'storekeeper:%%'"
        ).fetchall()
    assert (COPY,) in sessions
    assert (EXAMPLE_DB,) not in sessions


def test_testing_mode_work_changes_no_platform_record(testing: type, platform: Platform) -> None:
    before = _platform_records(platform)
    testing.get_persistent_store_database("example_db")
    assert testing.create_persistent_store("example_db", None) is True
    testing.create_persistent_store("scenario", "primary", initializer=TEMP_INIT)
    assert testing.persistent_store_exists("scenario")
    assert sorted(testing.list_persistent_store_databases()) == ["example_db", "scenario"]
    testing.drop_persistent_store("scenario")
    testing.drop_persistent_store("example_db")
    assert _platform_records(platform) == before


def test_switching_testing_mode_off_resolves_to_the_real_store_again(
    testing: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _current_database(testing.get_persistent_store_database("example_db")) == COPY
    monkeypatch.delenv("STOREKEEPER_TESTING")
    engines.clear()
    assert _current_database(testing.get_persistent_store_database("example_db")) == EXAMPLE_DB


def test_create_persistent_store_with_no_connection_makes_a_test_copy(
    testing: type, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    assert testing.create_persistent_store("example_db", None) is True
    assert database_exists(admin_conn, COPY)
    assert gage_values(pg_admin_url, COPY) == [1, 2]
    assert gage_values(pg_admin_url, EXAMPLE_DB) == [1, 2, 99]


def test_create_persistent_store_of_an_unknown_store_with_no_connection_is_refused(testing: type) -> None:
    with pytest.raises(StoreError) as info:
        testing.create_persistent_store("nope_db", None)
    assert "nope_db" in info.value.message
    assert info.value.hint


def test_create_persistent_store_with_no_connection_outside_testing_mode_is_an_error(
    synced: type, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    with pytest.raises(StoreError) as info:
        synced.create_persistent_store("example_db", None)
    assert "testing mode" in info.value.message
    assert info.value.hint
    assert not database_exists(admin_conn, COPY)
    assert gage_values(pg_admin_url, EXAMPLE_DB) == [1, 2, 99]


def test_dynamic_store_made_in_testing_mode_is_a_test_copy_known_to_this_process_only(
    testing: type, platform: Platform, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    assert testing.create_persistent_store("scenario", "primary", initializer=TEMP_INIT) is True
    assert database_exists(admin_conn, "test_my_first_app_scenario")
    assert not database_exists(admin_conn, "my_first_app_scenario")
    assert first_time_runs(pg_admin_url, "test_my_first_app_scenario") == [True]
    assert testing.list_persistent_store_databases(dynamic_only=True) == ["scenario"]
    assert "scenario" not in testing.list_persistent_store_databases(static_only=True)
    assert testing.persistent_store_exists("scenario")
    assert _current_database(testing.get_persistent_store_database("scenario")) == "test_my_first_app_scenario"
    assert setting_record(platform, APP, "scenario") is None
    assert not audit.list_events(platform, target=f"{APP}/scenario")

    assert testing.drop_persistent_store("scenario") is True
    assert not database_exists(admin_conn, "test_my_first_app_scenario")
    assert testing.list_persistent_store_databases(dynamic_only=True) == []
    assert not testing.persistent_store_exists("scenario")


def test_dynamic_store_made_in_testing_mode_is_unknown_outside_it(
    testing: type, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    testing.create_persistent_store("scenario", "primary", initializer=TEMP_INIT)
    monkeypatch.delenv("STOREKEEPER_TESTING")
    engines.clear()
    assert testing.list_persistent_store_databases(dynamic_only=True) == []
    assert not testing.persistent_store_exists("scenario")
    assert [s.name for s in stores.list_stores(platform, APP) if s.name == "scenario"] == []


def test_drop_in_testing_mode_drops_the_copy_not_the_real_store(
    testing: type, admin_conn: psycopg.Connection, platform: Platform
) -> None:
    testing.get_persistent_store_database("example_db")
    assert testing.drop_persistent_store("example_db") is True
    assert not database_exists(admin_conn, COPY)
    assert database_exists(admin_conn, EXAMPLE_DB)
    assert setting_record(platform, APP, "example_db")["state"] == "initialized"  # type: ignore[index]


def test_store_never_synced_still_gets_a_test_copy(
    my_first_app: type, testing: type, pg_admin_url: str, admin_conn: psycopg.Connection
) -> None:
    assert not database_exists(admin_conn, "my_first_app_temp_db")
    engine = testing.get_persistent_store_database("temp_db")
    assert _current_database(engine) == "test_my_first_app_temp_db"
    assert first_time_runs(pg_admin_url, "test_my_first_app_temp_db") == [True]
    assert not database_exists(admin_conn, "my_first_app_temp_db")


def test_spatial_store_copy_has_postgis_and_the_initial_places(
    testing: type, postgis_available: bool, pg_admin_url: str, admin_conn: psycopg.Connection
) -> None:
    require_postgis(postgis_available)
    engine = testing.get_persistent_store_database("spatial_db")
    assert _current_database(engine) == "test_my_first_app_spatial_db"
    with Session(engine) as session:
        assert session.execute(text("SELECT postgis_version()")).scalar_one()
        place = session.execute(text("SELECT name, ST_AsText(geom) FROM places")).one()
    assert tuple(place) == ("Provo", "POINT(-111.6585 40.2338)")
    assert "tpl_my_first_app_spatial_db" in copies_on_server(admin_conn)
    assert not database_exists(admin_conn, "my_first_app_spatial_db")
