"""A login role per store: each store is reached as its own role, which can reach no other store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors as pgerrors
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import URL

from storekeeper import apps, stores
from storekeeper.platform import Platform
from tests.conftest import TEST_INSTALLATION
from tests.core.conftest import APP, EXAMPLE_DB, connect_to, drop_service_user, make_service_user, rows

TEMP_DB = "my_first_app_temp_db"
LIMITED = "sk_limited"  # a service user with LOGIN CREATEDB and nothing else
LIMITED_PASSWORD = "limited-pw-for-tests"


def _login(url: URL, dbname: str | None = None) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=dbname or url.database,
        autocommit=True,
    )


def _role(admin_conn: psycopg.Connection[Any], name: str) -> dict[str, Any] | None:
    row = admin_conn.execute(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, shobj_description(oid, 'pg_authid') "
        "FROM pg_roles WHERE rolname = %s",
        (name,),
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("superuser", "createdb", "createrole", "login", "comment"), row, strict=True))


@pytest.fixture
def synced(platform: Platform, my_first_app: type) -> type:
    results = stores.sync_stores(platform, [APP], database="example_db")
    assert results[0].ok, results[0].error
    results = stores.sync_stores(platform, [APP], database="temp_db")
    assert results[0].ok, results[0].error
    return my_first_app


def test_each_store_is_reached_as_its_own_least_privileged_role(
    synced: type, admin_conn: psycopg.Connection[Any], pg_admin_url: str
) -> None:
    url = synced.get_persistent_store_database("example_db", as_url=True)
    assert url.username == EXAMPLE_DB
    role = _role(admin_conn, EXAMPLE_DB)
    assert role == {
        "superuser": False,
        "createdb": False,
        "createrole": False,
        "login": True,
        "comment": f"storekeeper:role {APP}/example_db installation={TEST_INSTALLATION}",
    }
    owner = admin_conn.execute(
        "SELECT pg_get_userbyid(datdba), datacl::text FROM pg_database WHERE datname = %s", (EXAMPLE_DB,)
    ).fetchone()
    assert owner is not None and owner[0] == EXAMPLE_DB
    assert "=Tc/" not in owner[1] and "=c/" not in owner[1]  # PUBLIC may not connect
    # The initializer ran as the store's role: what it made is the role's.
    tables = rows(pg_admin_url, EXAMPLE_DB, "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert sorted(tables) == [("init_log", EXAMPLE_DB), ("stream_gages", EXAMPLE_DB)]
    with synced.get_persistent_store_database("example_db").connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == EXAMPLE_DB
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 2


def test_a_store_role_cannot_reach_or_drop_another_store(synced: type, admin_conn: psycopg.Connection[Any]) -> None:
    url = synced.get_persistent_store_database("example_db", as_url=True)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _login(url, TEMP_DB).close()  # another store of the same app
    with _login(url) as conn:
        for statement in (
            sql.SQL("DROP DATABASE {}").format(sql.Identifier(TEMP_DB)),
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(TEMP_DB)),
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier("my_first_app_sneaky")),
            sql.SQL("CREATE ROLE {}").format(sql.Identifier("sneaky")),
        ):
            with pytest.raises(pgerrors.InsufficientPrivilege):
                conn.execute(statement)
    assert admin_conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMP_DB,)).fetchone()
    # ...and the other store's role cannot reach this one either.
    other = synced.get_persistent_store_database("temp_db", as_url=True)
    assert other.username == TEMP_DB
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _login(other, EXAMPLE_DB).close()


def test_refresh_keeps_the_role_and_drop_removes_it(
    platform: Platform, synced: type, admin_conn: psycopg.Connection[Any]
) -> None:
    before = synced.get_persistent_store_database("example_db", as_url=True)
    result = stores.sync_stores(platform, [APP], database="example_db", refresh=True)[0]
    assert result.ok and result.action == "recreated"
    after = synced.get_persistent_store_database("example_db", as_url=True)
    assert (after.username, after.password) == (before.username, before.password)
    with _login(after) as conn:
        assert conn.execute("SELECT count(*) FROM stream_gages").fetchone() == (2,)
    stores.drop_store(platform, APP, "example_db")
    assert _role(admin_conn, EXAMPLE_DB) is None
    listed = {s.name: s for s in stores.list_stores(platform, APP)}
    assert listed["example_db"].access is None and listed["temp_db"].access == "role"


def test_a_role_of_the_same_name_not_made_by_storekeeper_is_refused(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any]
) -> None:
    admin_conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(EXAMPLE_DB)))
    admin_conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(EXAMPLE_DB)))
    try:
        result = stores.sync_stores(platform, [APP], database="example_db")[0]
        assert not result.ok
        assert f'role named "{EXAMPLE_DB}" already exists' in (result.error or "")
        assert "DROP ROLE" in (result.hint or "")
        assert admin_conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EXAMPLE_DB,)).fetchone() is None
    finally:
        admin_conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(EXAMPLE_DB)))


@pytest.fixture
def limited_service(platform: Platform, service: str, pg_admin_url: str) -> Iterator[str]:
    """Service "limited": a user with LOGIN CREATEDB only (no CREATEROLE), on the test server."""
    make_service_user(platform, pg_admin_url, "limited", LIMITED, LIMITED_PASSWORD, "LOGIN CREATEDB")
    yield "limited"
    with connect_to(pg_admin_url, "postgres") as conn:
        drop_service_user(conn, LIMITED)


def test_a_service_that_cannot_create_roles_falls_back_to_the_service_user(
    platform: Platform, my_first_app: type, limited_service: str
) -> None:
    apps.assign_service(platform, APP, "example_db", limited_service)
    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok
    url = my_first_app.get_persistent_store_database("example_db", as_url=True)
    assert url.username == LIMITED
    listed = {s.name: s for s in stores.list_stores(platform, APP)}
    assert listed["example_db"].access == "service"


def test_the_next_sync_moves_a_store_made_without_a_role_to_its_own_role(
    platform: Platform, my_first_app: type, limited_service: str, pg_admin_url: str
) -> None:
    apps.assign_service(platform, APP, "example_db", limited_service)
    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok
    with my_first_app.get_persistent_store_database("example_db").begin() as conn:
        conn.execute(text("CREATE VIEW gage_values AS SELECT value FROM stream_gages"))
        conn.execute(
            text("CREATE FUNCTION gage_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM stream_gages'")
        )
        conn.execute(text("CREATE TYPE gage_kind AS ENUM ('river', 'lake')"))
    # The operator lets the service user create roles; the next sync hands the store to its role.
    with connect_to(pg_admin_url, "postgres") as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(LIMITED)))
    result = stores.sync_stores(platform, [APP], database="example_db")[0]
    assert result.ok and result.first_time is False, result.error
    owners = rows(
        pg_admin_url,
        EXAMPLE_DB,
        "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'S')",
    )
    assert owners and {owner for _, owner in owners} == {EXAMPLE_DB}
    assert rows(
        pg_admin_url, EXAMPLE_DB, "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'gage_count'"
    ) == [(EXAMPLE_DB,)]
    assert rows(
        pg_admin_url, EXAMPLE_DB, "SELECT pg_get_userbyid(typowner) FROM pg_type WHERE typname = 'gage_kind'"
    ) == [(EXAMPLE_DB,)]
    url = my_first_app.get_persistent_store_database("example_db", as_url=True)
    assert url.username == EXAMPLE_DB
    with my_first_app.get_persistent_store_database("example_db").begin() as conn:
        assert conn.execute(text("SELECT gage_count()")).scalar_one() == 2
        conn.execute(text("INSERT INTO stream_gages (latitude, longitude, value) VALUES (1, 2, 3)"))
    assert {s.name: s for s in stores.list_stores(platform, APP)}["example_db"].access == "role"


def test_a_store_role_cannot_take_or_stall_storekeepers_locks(platform: Platform, synced: type) -> None:
    import threading

    from storekeeper.backends.postgresql import COORDINATION_DB, lock_key

    url = synced.get_persistent_store_database("example_db", as_url=True)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _login(url, COORDINATION_DB).close()
    # Where the locks used to live, anyone may still connect: holding a key there stalls nothing now.
    with _login(url, "postgres") as squatter:
        assert squatter.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(TEMP_DB),)).fetchone() == (True,)
        results: list[Any] = []
        worker = threading.Thread(
            target=lambda: results.extend(stores.sync_stores(platform, [APP], database="temp_db", refresh=True))
        )
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "the sync waited on a lock a store role holds"
    assert results and results[0].ok and results[0].action == "recreated"


def test_a_dynamic_store_gets_its_own_role_and_loses_it_when_dropped(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection[Any]
) -> None:
    assert my_first_app.create_persistent_store("scratch", "primary", initializer="my_first_app.model.init_temp_db")
    url = my_first_app.get_persistent_store_database("scratch", as_url=True)
    assert url.username == url.database == "my_first_app_scratch"
    assert rows_owner(admin_conn, "my_first_app_scratch") == "my_first_app_scratch"
    with my_first_app.get_persistent_store_database("scratch").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM init_log")).scalar_one() == 1
    assert my_first_app.drop_persistent_store("scratch")
    assert _role(admin_conn, "my_first_app_scratch") is None


def rows_owner(admin_conn: psycopg.Connection[Any], dbname: str) -> str | None:
    row = admin_conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
    return row[0] if row else None


def test_another_apps_store_role_cannot_reach_this_store_or_bridge_databases(
    platform: Platform, synced: type, service: str
) -> None:
    from links.app import App as Links

    apps.assign_service(platform, "links", "primary_db", service)
    assert stores.sync_stores(platform, ["links"])[0].ok
    links = Links.get_persistent_store_database("primary_db", as_url=True)
    assert links.username == "links_primary_db"
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _login(links, EXAMPLE_DB).close()
    with _login(links) as conn:  # its own database: no extension that could read another database
        for extension in ("dblink", "postgres_fdw"):
            with pytest.raises((pgerrors.InsufficientPrivilege, pgerrors.UndefinedFile, pgerrors.FeatureNotSupported)):
                conn.execute(sql.SQL("CREATE EXTENSION {}").format(sql.Identifier(extension)))
        with pytest.raises(pgerrors.InsufficientPrivilege):
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(EXAMPLE_DB)))


def test_a_sync_killed_between_recording_a_role_password_and_setting_it_is_repaired_by_the_next_sync(
    platform: Platform, synced: type, admin_conn: psycopg.Connection[Any]
) -> None:
    from storekeeper.stores import records

    with platform.session() as session:
        setting_id = records.get_setting(records.load_app(session, APP), "example_db").id
    # The kill: the new password is recorded, the server never heard of it.
    records.set_state(platform, setting_id, role_password=platform.encrypt("recorded-but-never-set"))
    from storekeeper import engines

    engines.clear()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _login(synced.get_persistent_store_database("example_db", as_url=True)).close()
    result = stores.sync_stores(platform, [APP], database="example_db")[0]
    assert result.ok and result.first_time is False
    engines.clear()
    url = synced.get_persistent_store_database("example_db", as_url=True)
    assert url.password == "recorded-but-never-set"
    with _login(url) as conn:
        assert conn.execute("SELECT count(*) FROM stream_gages").fetchone() == (2,)


def test_a_no_op_sync_leaves_a_store_roles_password_alone_and_repairs_one_changed_by_hand(
    platform: Platform, synced: type, admin_conn: psycopg.Connection[Any]
) -> None:
    def verifier() -> str:
        row = admin_conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (EXAMPLE_DB,)).fetchone()
        assert row is not None
        return str(row[0])

    before = verifier()  # a SCRAM verifier has a random salt: any ALTER ROLE ... PASSWORD changes it
    result = stores.sync_stores(platform, [APP], database="example_db")[0]
    assert result.ok and result.action == "initializer ran"
    assert verifier() == before
    # Someone changes it on the server: the sync's login as the role is refused, and the sync puts it back.
    admin_conn.execute(sql.SQL("ALTER ROLE {} PASSWORD 'changed-by-hand'").format(sql.Identifier(EXAMPLE_DB)))
    result = stores.sync_stores(platform, [APP], database="example_db")[0]
    assert result.ok and result.first_time is False, result.error
    from storekeeper import engines

    engines.clear()
    with _login(synced.get_persistent_store_database("example_db", as_url=True)) as conn:
        assert conn.execute("SELECT count(*) FROM stream_gages").fetchone() == (2,)
