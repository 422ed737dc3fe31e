"""The service registry: parsing, secrets at rest, update, remove and the connection test."""

from __future__ import annotations

import secrets
import socket
import sqlite3
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from sample_apps.flaky import App as Flaky
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from storekeeper import ConfigError, ServiceError, apps, audit, engines, services, stores
from storekeeper.config import set_values
from storekeeper.platform import Platform, load_platform, reset_platform
from storekeeper.services import parse_connection, parse_url
from tests.conftest import drop_test_databases
from tests.core.conftest import APP, EXAMPLE_DB, database_exists

# -- parsing ----------------------------------------------------------------------


def test_connection_splits_at_last_at_sign() -> None:
    creds = parse_connection("admin:p@ss@word@db.example.org:5433")
    assert (creds.username, creds.password, creds.host, creds.port) == ("admin", "p@ss@word", "db.example.org", 5433)


def test_connection_user_ends_at_first_colon() -> None:
    creds = parse_connection("admin:pa:ss:wd@localhost:5432")
    assert creds.username == "admin"
    assert creds.password == "pa:ss:wd"


def test_connection_without_port_uses_5432() -> None:
    creds = parse_connection("admin:pw@localhost")
    assert creds.port == 5432
    assert creds.host == "localhost"


def test_connection_without_password_leaves_it_to_be_prompted() -> None:
    creds = parse_connection("admin@localhost:6543")
    assert creds.password is None
    assert creds.port == 6543


def test_connection_decodes_percent_encoding() -> None:
    creds = parse_connection("ad%40min:p%3Aw%25d%2F@localhost")
    assert creds.username == "ad@min"
    assert creds.password == "p:w%d/"


@pytest.mark.parametrize(("text", "port"), [("u:pw@[::1]:5433", 5433), ("u:pw@[2001:db8::7]", 5432)])
def test_connection_accepts_bracketed_ipv6_host(text: str, port: int) -> None:
    creds = parse_connection(text)
    assert ":" in creds.host
    assert not creds.host.startswith("[")
    assert creds.port == port


@pytest.mark.parametrize("text", ["localhost:5432", "u:pw@host:notaport", "u:pw@host:70000", ":pw@host", "u:pw@"])
def test_malformed_connection_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(ServiceError) as info:
        parse_connection(text)
    assert info.value.hint


@pytest.mark.parametrize("text", ["admin:Hunter2Secret@db:notaport", "admin:Hunter2Secret", "admin:Hunter2Secret@"])
def test_malformed_connection_error_does_not_show_the_password(text: str) -> None:
    with pytest.raises(ServiceError) as info:
        parse_connection(text)
    assert "Hunter2Secret" not in str(info.value)


def test_credentials_repr_hides_the_password() -> None:
    assert "Hunter2Secret" not in repr(parse_connection("admin:Hunter2Secret@db"))


def test_url_is_parsed_with_percent_encoded_password_and_driver() -> None:
    creds = parse_url("postgresql+psycopg2://admin:p%40ss%3Aword@db.example.org:6432/maint")
    assert (creds.username, creds.password, creds.host, creds.port) == ("admin", "p@ss:word", "db.example.org", 6432)
    assert creds.database == "maint"
    assert creds.driver == "psycopg2"


def test_url_without_port_or_driver_uses_defaults() -> None:
    creds = parse_url("postgresql://admin@db")
    assert creds.port == 5432
    assert creds.password is None
    assert creds.driver is None


@pytest.mark.parametrize("text", ["mysql://u:p@h/db", "not a url", "postgresql:///dbonly"])
def test_unsupported_or_incomplete_url_is_refused(text: str) -> None:
    with pytest.raises(ServiceError) as info:
        parse_url(text)
    assert "--url" in str(info.value) or "--url" in (info.value.hint or "")


# -- registry and secrets -------------------------------------------------------------


def _create(platform: Platform, name: str = "other", password: str | None = None, **kw: object) -> str:
    password = password if password is not None else "at-rest-" + secrets.token_hex(12)
    services.create_service(platform, name=name, host="db.example.org", username="sk", password=password, **kw)  # type: ignore[arg-type]
    return password


def test_password_is_encrypted_at_rest(platform: Platform, sk_home: Path) -> None:
    password = _create(platform)
    platform.engine.dispose()  # checkpoint nothing away: the WAL file is read as well
    raw = b"".join(p.read_bytes() for p in sk_home.glob("platform.sqlite3*"))
    assert password.encode() not in raw
    with sqlite3.connect(sk_home / "platform.sqlite3") as conn:
        (stored,) = conn.execute("SELECT password_encrypted FROM services WHERE name = 'other'").fetchone()
    assert stored and password not in stored
    assert platform.decrypt(stored, service="other") == password


def test_service_info_list_and_show_never_contain_the_password(platform: Platform) -> None:
    password = _create(platform)
    created = services.create_service(platform, name="second", host="h", username="u", password=password)
    shown = services.get_service(platform, "other")
    listed = services.list_services(platform)
    for shown_text in (repr(created), repr(shown), repr(listed), str(shown.to_dict()), shown.url):
        assert password not in shown_text
    assert shown.has_password
    assert "***" in shown.url
    assert [s.name for s in listed] == ["other", "second"]


def test_audit_log_never_contains_the_password(platform: Platform) -> None:
    password = _create(platform)
    services.update_service(platform, "other", password=password + "x")
    events = audit.list_events(platform)
    assert {e.action for e in events} >= {"service.create", "service.update"}
    assert all(password not in e.detail for e in events)


def test_duplicate_service_name_is_refused_with_update_hint(platform: Platform) -> None:
    _create(platform)
    with pytest.raises(ServiceError) as info:
        _create(platform)
    assert "storekeeper services update other" in info.value.hint


def test_unknown_service_names_the_listing_command(platform: Platform) -> None:
    with pytest.raises(ServiceError) as info:
        services.get_service(platform, "nope")
    assert "nope" in str(info.value)
    assert "storekeeper services list" in info.value.hint


@pytest.mark.parametrize("change", [{"port": 0}, {"pool_size": 0}, {"sslmode": "sometimes"}, {"maintenance_db": ""}])
def test_invalid_update_changes_nothing(platform: Platform, change: dict[str, object]) -> None:
    _create(platform)
    before = services.get_service(platform, "other")
    with pytest.raises(ServiceError):
        services.update_service(platform, "other", **change)
    assert services.get_service(platform, "other") == before


def test_update_of_unknown_field_is_refused(platform: Platform) -> None:
    _create(platform)
    with pytest.raises(ServiceError, match="backend") as info:
        services.update_service(platform, "other", backend="mysql")
    assert "pool_size" in info.value.hint


def _version(platform: Platform, name: str) -> int:
    with platform.engine.connect() as conn:
        return conn.execute(text("SELECT version FROM services WHERE name = :n"), {"n": name}).scalar_one()


def test_update_bumps_version_and_changes_the_details(platform: Platform) -> None:
    _create(platform)
    before = _version(platform, "other")
    info = services.update_service(platform, "other", host="db2.example.org", port=6543, pool_size=7, sslmode="require")
    assert (info.host, info.port, info.pool_size, info.sslmode) == ("db2.example.org", 6543, 7, "require")
    assert _version(platform, "other") == before + 1


def test_update_rebuilds_cached_engines_with_new_details(platform: Platform, my_first_app: type) -> None:
    stores.sync_stores(platform, [APP], database="example_db")
    old = my_first_app.get_persistent_store_database("example_db")
    services.update_service(platform, "local", pool_size=4)
    new = my_first_app.get_persistent_store_database("example_db")
    assert new is not old
    assert new.pool.size() == 4


def test_password_update_reaches_new_engines_of_connection_settings(platform: Platform, my_first_app: type) -> None:
    stores.sync_stores(platform, [APP], database="example_db")
    my_first_app.get_persistent_store_connection("primary")
    services.update_service(platform, "local", password="definitely-wrong")
    with (
        pytest.raises(OperationalError, match="password authentication failed"),
        my_first_app.get_persistent_store_connection("primary").connect(),
    ):
        pass
    # A store is reached as its own role: the service user's password does not touch it.
    with my_first_app.get_persistent_store_database("example_db").connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "my_first_app_example_db"


def test_remove_is_refused_while_assigned_naming_settings_and_force(platform: Platform, my_first_app: type) -> None:
    with pytest.raises(ServiceError) as info:
        services.remove_service(platform, "local")
    assert "my_first_app/example_db" in str(info.value)
    assert "--force" in info.value.hint
    assert services.get_service(platform, "local").name == "local"


def test_forced_remove_unassigns_settings_and_leaves_stores_on_server(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection
) -> None:
    stores.sync_stores(platform, [APP], database="example_db")
    unassigned = services.remove_service(platform, "local", force=True)
    assert "my_first_app/example_db" in unassigned
    assert all(s.service is None for s in apps.list_settings(platform, APP))
    assert services.list_services(platform) == []
    assert database_exists(admin_conn, EXAMPLE_DB)


def test_remove_of_unassigned_service(platform: Platform) -> None:
    _create(platform)
    assert services.remove_service(platform, "other") == []
    with pytest.raises(ServiceError):
        services.get_service(platform, "other")


# -- the connection test -------------------------------------------------------------


def test_service_test_reports_version_privileges_postgis_and_connections(
    platform: Platform, my_first_app: type, postgis_available: bool, pg_admin_url: str
) -> None:
    report = services.test_service(platform, "local")
    assert report["server_version"].split(".")[0].isdigit()
    assert report["can_create_database"] is True
    assert report["can_create_role"] is True
    assert report["postgis_available"] is postgis_available
    assert report["can_create_postgis"] is postgis_available
    assert report["max_connections"] > 0
    assert report["pool_size"] == 3
    assert report["assigned_settings"] == 5
    assert report["pool_connections_per_process"] == 15
    assert make_url(pg_admin_url).password not in repr(report)


def test_service_test_reports_missing_privileges(platform: Platform, limited_role: tuple[str, str]) -> None:
    report = services.test_service(platform, "limited")
    assert report["can_create_database"] is False
    assert report["can_create_role"] is False
    assert report["can_create_postgis"] is False


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_service_error_names_service_and_test_command(platform: Platform) -> None:
    port = _closed_port()
    services.create_service(
        platform, name="gone", host="127.0.0.1", port=port, username="sk", password="pw", connect_timeout=2
    )
    with pytest.raises(ServiceError) as info:
        services.test_service(platform, "gone")
    assert '"gone"' in str(info.value)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "storekeeper services test gone" in info.value.hint


def test_sync_on_unreachable_service_fails_naming_it(platform: Platform) -> None:
    services.create_service(
        platform, name="gone", host="127.0.0.1", port=_closed_port(), username="sk", password="pw", connect_timeout=2
    )
    apps.assign_service(platform, "flaky_app", "db", "gone")
    (result,) = stores.sync_stores(platform, ["flaky_app"])
    assert not result.ok
    assert "gone" in result.error
    assert "storekeeper services test gone" in result.hint


def test_wrong_secret_key_names_the_service_and_the_fix(platform: Platform, sk_home: Path, pg_admin_url: str) -> None:
    u = make_url(pg_admin_url)
    services.create_service(platform, name="local", host=u.host, port=u.port, username=u.username, password=u.password)
    set_values(sk_home, {"secret_key": "a-brand-new-secret-key-" + secrets.token_hex(16)})
    reset_platform()
    engines.clear()
    with pytest.raises(ConfigError) as info:
        services.test_service(load_platform(), "local")
    assert info.value.service == "local"
    assert "storekeeper services update local" in info.value.hint
    assert "secret_key" in info.value.hint


@pytest.fixture
def limited_role(platform: Platform, service: str, admin_conn: psycopg.Connection, pg_admin_url: str):  # type: ignore[no-untyped-def]
    """A login role without CREATEDB, registered as service "limited"."""
    role, password = "sk_limited_" + secrets.token_hex(4), secrets.token_hex(12)
    admin_conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), password))
    u = make_url(pg_admin_url)
    services.create_service(platform, name="limited", host=u.host, port=u.port, username=role, password=password)
    yield role, password
    engines.clear()
    drop_test_databases(pg_admin_url)
    admin_conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_store_on_service_without_createdb_fails_with_alter_role_hint(
    platform: Platform, limited_role: tuple[str, str], admin_conn: psycopg.Connection
) -> None:
    apps.assign_service(platform, "flaky_app", "db", "limited")
    (result,) = stores.sync_stores(platform, ["flaky_app"])
    assert not result.ok
    assert "CREATE DATABASE" in result.error
    assert f'ALTER ROLE "{limited_role[0]}" CREATEDB' in result.hint
    assert not database_exists(admin_conn, "flaky_app_db")


def test_service_with_special_characters_in_password_works_end_to_end(
    platform: Platform, admin_conn: psycopg.Connection, pg_admin_url: str, service: str
) -> None:
    role, password = "sk_special_" + secrets.token_hex(4), "p@ss:w/rd%#? " + secrets.token_hex(6)
    admin_conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
    )
    try:
        u = make_url(pg_admin_url)
        creds = parse_connection(f"{role}:{quote(password, safe='')}@{u.host}:{u.port}")
        assert creds.password == password
        services.create_service(
            platform, name="special", host=creds.host, port=creds.port, username=creds.username, password=creds.password
        )
        assert services.test_service(platform, "special")["can_create_database"] is True
        apps.assign_service(platform, "flaky_app", "db", "special")
        assert [r.ok for r in stores.sync_stores(platform, ["flaky_app"])] == [True]
        with Flaky.get_persistent_store_database("db").connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == role
    finally:
        engines.clear()
        drop_test_databases(pg_admin_url)
        admin_conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
