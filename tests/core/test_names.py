"""Names that become SQL identifiers are checked before anything touches a server."""

from __future__ import annotations

import psycopg
import pytest

from storekeeper import InvalidNameError, services, stores
from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting
from storekeeper.backends.names import check_name, check_service_name, database_name
from storekeeper.platform import Platform
from tests.core.conftest import APP, databases_like, setting_record

BAD_NAMES = [
    pytest.param("bad'name", id="quote"),
    pytest.param('bad"name', id="double-quote"),
    pytest.param("db;drop", id="semicolon"),
    pytest.param("my db", id="space"),
    pytest.param("Example_db", id="uppercase"),
    pytest.param("café", id="non-ascii"),
    pytest.param("", id="empty"),
    pytest.param("1db", id="leading-digit"),
    pytest.param("_db", id="leading-underscore"),
    pytest.param("db-name", id="dash"),
    pytest.param("db\n", id="trailing-newline"),
    pytest.param("a" * 64, id="too-long"),
    pytest.param(None, id="none"),
    pytest.param(42, id="int"),
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_name_is_refused_with_the_rule(name: object) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_name(name, what="store")
    message = str(info.value)
    assert "store" in message
    assert "[a-z][a-z0-9_]*" in message or "63 bytes" in message
    assert info.value.hint


@pytest.mark.parametrize("name", ["a", "example_db", "db2", "a" * 63])
def test_good_name_is_returned_unchanged(name: str) -> None:
    assert check_name(name, what="store") == name


def test_database_name_is_package_underscore_name() -> None:
    assert database_name(APP, "example_db") == "my_first_app_example_db"


def test_database_name_of_exactly_63_bytes_is_accepted() -> None:
    name = "x" * (63 - len(APP) - 1)
    assert len(database_name(APP, name).encode()) == 63


def test_database_name_over_63_bytes_is_refused_naming_app_and_store() -> None:
    name = "x" * (63 - len(APP))
    with pytest.raises(InvalidNameError) as info:
        database_name(APP, name)
    assert APP in str(info.value)
    assert name in str(info.value)
    assert "63" in str(info.value)
    assert info.value.hint


@pytest.mark.parametrize("bad_package", ["My-App", "", "app;"])
def test_bad_package_is_refused_by_database_name(bad_package: str) -> None:
    with pytest.raises(InvalidNameError, match="app package"):
        database_name(bad_package, "example_db")


@pytest.mark.parametrize("cls", [PersistentStoreDatabaseSetting, PersistentStoreConnectionSetting])
def test_setting_with_bad_name_cannot_be_declared(cls: type) -> None:
    with pytest.raises(InvalidNameError, match="setting"):
        cls(name="Primary DB")


@pytest.mark.parametrize("name", ["pg main", "", "-pg", "a" * 64, "pg;drop"])
def test_bad_service_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_service_name(name)
    assert "letters, digits" in str(info.value)


@pytest.mark.parametrize("name", ["local", "pg-main.1", "PG_2"])
def test_good_service_name_is_accepted(name: str) -> None:
    assert check_service_name(name) == name


def test_create_service_with_bad_name_records_nothing(platform: Platform) -> None:
    with pytest.raises(InvalidNameError):
        services.create_service(platform, name="my server", host="localhost", username="u", password="p")
    assert services.list_services(platform) == []


@pytest.mark.parametrize("name", ["Scenario", "s'; DROP DATABASE postgres; --", "x" * (63 - len(APP))])
def test_create_store_with_bad_name_touches_neither_server_nor_records(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection, name: str
) -> None:
    with pytest.raises(InvalidNameError):
        stores.create_store(platform, APP, name, "primary")
    assert databases_like(admin_conn, APP) == []
    assert setting_record(platform, APP, name) is None


def test_app_api_refuses_too_long_dynamic_store_before_the_server(
    my_first_app: type, admin_conn: psycopg.Connection
) -> None:
    name = "y" * (63 - len(APP))
    with pytest.raises(InvalidNameError) as info:
        my_first_app.create_persistent_store(name, "primary")
    assert APP in str(info.value)
    # PostgreSQL would have truncated the name to 63 bytes; nothing of that sort exists.
    assert databases_like(admin_conn, APP) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda app: app.get_persistent_store_database("bad;name"),
        lambda app: app.get_persistent_store_connection("Primary"),
        lambda app: app.persistent_store_exists("bad name"),
        lambda app: app.drop_persistent_store("x'y"),
    ],
    ids=["get_database", "get_connection", "exists", "drop"],
)
def test_app_api_refuses_bad_names(my_first_app: type, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidNameError):
        call(my_first_app)


@pytest.mark.parametrize("package", ["pg", "pg_app", "pg_"])
def test_package_whose_store_roles_would_start_with_pg_is_refused(package: str) -> None:
    # Store roles are named like their databases, <package>_<store>; PostgreSQL refuses roles named pg_*.
    with pytest.raises(InvalidNameError) as info:
        database_name(package, "db")
    assert "pg_" in str(info.value) and "reserve" in str(info.value)


@pytest.mark.parametrize("package", ["pgapp", "pg2", "postgres", "template0", "app_pg"])
def test_package_merely_resembling_a_reserved_name_is_accepted(package: str) -> None:
    assert database_name(package, "db") == f"{package}_db"
