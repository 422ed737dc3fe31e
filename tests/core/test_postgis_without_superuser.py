"""A service user with exactly LOGIN CREATEDB CREATEROLE is enough, spatial stores included.

PostGIS is not a trusted extension: such a user may not create it, so an admin
runs ``storekeeper services prepare-postgis`` once and spatial stores are
cloned from the PostGIS template it makes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storekeeper import apps, audit, engines, services, stores
from storekeeper.backends import postgresql as pg
from storekeeper.platform import Platform
from storekeeper.testing import copies
from tests.core.conftest import (
    APP,
    connect_to,
    database_exists,
    drop_service_user,
    make_service_user,
    rows,
    setting_record,
)
from tests.pg_server import require_postgis

MANAGED = "sk_managed"  # a service user with LOGIN CREATEDB CREATEROLE and nothing else
MANAGED_PASSWORD = "managed-pw-for-tests"
SPATIAL_DB = "my_first_app_spatial_db"
PREPARE = "storekeeper services prepare-postgis managed --superuser USER"
#: Test copies and templates of my_first_app made in these tests.
TEST_DATABASES = re.compile(r"(test\d*|tpl)_my_first_app_")


def _forget_backend_state() -> None:
    pg._postgis_from_template.clear()
    pg._postgis_probed.clear()


def _drop_test_copies(conn: psycopg.Connection[Any]) -> None:
    for (name,) in conn.execute("SELECT datname FROM pg_database").fetchall():
        if TEST_DATABASES.match(name):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def managed_service(platform: Platform, service: str, pg_admin_url: str) -> Iterator[str]:
    """Service "managed": a user with exactly LOGIN CREATEDB CREATEROLE on the test server."""
    _forget_backend_state()
    with connect_to(pg_admin_url, "postgres") as conn:
        _drop_test_copies(conn)
    make_service_user(platform, pg_admin_url, "managed", MANAGED, MANAGED_PASSWORD, "LOGIN CREATEDB CREATEROLE")
    yield "managed"
    engines.clear()
    copies.drop_spares()
    copies.reset()
    _forget_backend_state()
    with connect_to(pg_admin_url, "postgres") as conn:
        _drop_test_copies(conn)
        drop_service_user(conn, MANAGED)


@pytest.fixture
def on_managed(platform: Platform, my_first_app: type, managed_service: str, postgis_available: bool) -> type:
    """my_first_app with its stores (and connection "primary") on the managed service."""
    require_postgis(postgis_available)
    for setting in ("example_db", "spatial_db", "primary"):
        apps.assign_service(platform, APP, setting, managed_service)
    return my_first_app


def _services_test(run_cli: Any, name: str) -> dict[str, Any]:
    proc = run_cli("services", "test", name, "--json")
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def _superuser(pg_admin_url: str) -> tuple[str, str]:
    u = make_url(pg_admin_url)
    assert u.username and u.password
    return u.username, u.password


def test_a_createrole_user_syncs_plain_and_after_prepare_postgis_spatial_stores(
    platform: Platform, on_managed: type, pg_admin_url: str, run_cli: Any, sk_home: Path, admin_conn: Any
) -> None:
    superuser, password = _superuser(pg_admin_url)

    # The superuser service creates PostGIS itself.
    assert _services_test(run_cli, "local")["postgis_path"] == "direct"
    before = _services_test(run_cli, "managed")
    assert (before["superuser"], before["can_create_role"], before["can_create_postgis"]) == (False, True, False)
    assert before["postgis_path"] == "none" and before["postgis_template"] == "absent"
    assert before["postgis_hint"] == PREPARE
    plain = run_cli("services", "test", "managed")
    assert "prepare-postgis managed --superuser USER" in plain.stdout + plain.stderr

    # A plain store needs no superuser.
    (result,) = stores.sync_stores(platform, [APP], database="example_db")
    assert result.ok, result.error

    # Before prepare-postgis a spatial sync fails, names the fix, and leaves no half-made store.
    (result,) = stores.sync_stores(platform, [APP], database="spatial_db")
    assert not result.ok
    assert PREPARE in (result.hint or "")
    assert "may not CREATE EXTENSION postgis" in (result.error or "")
    record = setting_record(platform, APP, "spatial_db")
    assert record is not None and record["state"] != "initialized"
    assert not database_exists(admin_conn, SPATIAL_DB)

    # A wrong password: a clear error, nothing changed.
    wrong = run_cli(
        "services",
        "prepare-postgis",
        "managed",
        "--superuser",
        superuser,
        env={"STOREKEEPER_SUPERUSER_PASSWORD": "not-the-password"},
    )
    assert wrong.returncode == 1
    assert f'as superuser "{superuser}"' in wrong.stderr and "password authentication failed" in wrong.stderr
    assert not database_exists(admin_conn, pg.POSTGIS_TEMPLATE)

    # The admin prepares the service once, as a real process (password from the environment).
    done = run_cli(
        "services",
        "prepare-postgis",
        "managed",
        "--superuser",
        superuser,
        "--json",
        env={"STOREKEEPER_SUPERUSER_PASSWORD": password},
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["ok"] is True and outcome["action"] == "prepared" and outcome["template"] == pg.POSTGIS_TEMPLATE
    template = admin_conn.execute(
        "SELECT datistemplate, datallowconn, pg_get_userbyid(datdba), datacl::text, "
        "shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (pg.POSTGIS_TEMPLATE,),
    ).fetchone()
    assert template is not None
    is_template, allow_conn, owner, acl, comment = template
    assert (is_template, allow_conn, owner) == (True, False, MANAGED)
    assert "=c/" not in acl and "=Tc/" not in acl  # PUBLIC may not connect
    assert comment.startswith("storekeeper:postgis-template ")

    # Again, from stdin this time: it is already prepared.
    again = run_cli(
        "services", "prepare-postgis", "managed", "--superuser", superuser, "--password-stdin", input=password + "\n"
    )
    assert again.returncode == 0, again.stderr
    assert "already prepared" in again.stdout

    after = _services_test(run_cli, "managed")
    assert (
        after["postgis_path"] == "template" and after["postgis_template"] == "ready" and after["postgis_hint"] is None
    )

    # Now the spatial store is cloned from the template, owned by its own role.
    (result,) = stores.sync_stores(platform, [APP], database="spatial_db")
    assert result.ok, (result.error, result.hint)
    assert rows(
        pg_admin_url, "postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (SPATIAL_DB,)
    ) == [(SPATIAL_DB,)]
    tables = dict(
        rows(pg_admin_url, SPATIAL_DB, "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
    )
    assert tables.pop("spatial_ref_sys") == superuser  # PostGIS's own objects stay the admin's
    assert tables and set(tables.values()) == {SPATIAL_DB}
    url = on_managed.get_persistent_store_database("spatial_db", as_url=True)
    assert url.username == SPATIAL_DB
    with on_managed.get_persistent_store_database("spatial_db").begin() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == SPATIAL_DB
        conn.execute(text("INSERT INTO places (name, geom) VALUES ('Orem', 'SRID=4326;POINT(-111.69 40.29)')"))
        inside = conn.execute(
            text(
                "SELECT name FROM places WHERE ST_Intersects(geom, ST_MakeEnvelope(-112, 40, -111, 41, 4326)) "
                "ORDER BY name"
            )
        ).scalars()
        assert list(inside) == ["Orem", "Provo"]
        assert conn.execute(text("SELECT srtext FROM spatial_ref_sys WHERE srid = 4326")).scalar_one()
    # A later sync keeps it (the extension is there: nothing needs a superuser).
    (result,) = stores.sync_stores(platform, [APP], database="spatial_db")
    assert result.ok and result.action == "initializer ran", (result.error, result.action)

    # The superuser's password is nowhere: output, config, platform database, audit log.
    for proc in (wrong, done, again):
        assert password not in proc.stdout + proc.stderr
    for path in sk_home.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    events = audit.list_events(platform, limit=1000)
    prepared = [e for e in events if e.action == "service.prepare-postgis"]
    assert [e.outcome for e in prepared] == ["ok", "ok", "error"]  # newest first
    assert all(password not in f"{e.detail} {e.target}" for e in events)


def test_test_copies_of_a_spatial_store_on_a_prepared_createrole_service(
    platform: Platform, on_managed: type, pg_admin_url: str, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    superuser, password = _superuser(pg_admin_url)
    result = services.prepare_postgis(platform, "managed", superuser=superuser, password=password)
    assert result["action"] == "prepared"
    engines.clear()
    monkeypatch.setenv("STOREKEEPER_TESTING", "1")
    # The store's template and its copy: cloned from the PostGIS template, initialized once.
    engine = on_managed.get_persistent_store_database("spatial_db")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT current_database()")).scalar_one().endswith("my_first_app_spatial_db")
        assert conn.execute(text("SELECT current_user")).scalar_one() == "tpl_my_first_app_spatial_db"
        assert (
            conn.execute(
                text("SELECT count(*) FROM places WHERE ST_Intersects(geom, ST_MakeEnvelope(-112, 40, -111, 41, 4326))")
            ).scalar_one()
            == 1
        )
    # A spatial store this test run makes up (no template): made from the PostGIS template directly.
    on_managed.create_persistent_store("scratch_spatial", "primary", spatial=True)
    with on_managed.get_persistent_store_database("scratch_spatial").begin() as conn:
        conn.execute(text("CREATE TABLE spots (geom geometry(Point, 4326))"))
        conn.execute(text("INSERT INTO spots VALUES ('SRID=4326;POINT(1 1)')"))
        assert conn.execute(text("SELECT ST_AsText(geom) FROM spots")).scalar_one() == "POINT(1 1)"
    assert not database_exists_by_url(pg_admin_url, SPATIAL_DB)  # the live store was never made


def database_exists_by_url(pg_admin_url: str, dbname: str) -> bool:
    return bool(rows(pg_admin_url, "postgres", "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)))


def test_prepare_postgis_refuses_a_broken_template_and_says_how_to_fix_it(
    platform: Platform, on_managed: type, pg_admin_url: str, run_cli: Any, admin_conn: Any
) -> None:
    superuser, password = _superuser(pg_admin_url)
    admin_conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(pg.POSTGIS_TEMPLATE)))
    proc = run_cli(
        "services",
        "prepare-postgis",
        "managed",
        "--superuser",
        superuser,
        env={"STOREKEEPER_SUPERUSER_PASSWORD": password},
    )
    assert proc.returncode == 1
    assert "exists but is not usable" in proc.stderr and "lacks the storekeeper marker" in proc.stderr
    assert "IS_TEMPLATE false" in proc.stderr and "DROP DATABASE" in proc.stderr
    report = services.test_service(platform, "managed")
    assert report["postgis_path"] == "none" and report["postgis_template"] == "broken"
    (result,) = stores.sync_stores(platform, [APP], database="spatial_db")
    assert not result.ok and "not usable" in (result.error or "") and PREPARE in (result.hint or "")


def test_prepare_postgis_without_a_password_and_no_terminal_says_how_to_give_one(
    platform: Platform, managed_service: str, run_cli: Any
) -> None:
    proc = run_cli("services", "prepare-postgis", "managed", "--superuser", "postgres")
    assert proc.returncode == 1
    assert "STOREKEEPER_SUPERUSER_PASSWORD" in proc.stderr


def test_an_existing_store_made_without_postgis_says_it_needs_an_admin(
    platform: Platform, on_managed: type, pg_admin_url: str
) -> None:
    from storekeeper.errors import StoreError

    superuser, password = _superuser(pg_admin_url)
    services.prepare_postgis(platform, "managed", superuser=superuser, password=password)
    stores.create_store(platform, APP, "later_spatial", "primary")
    with pytest.raises(StoreError) as caught:
        stores.create_store(platform, APP, "later_spatial", "primary", spatial=True)
    assert "was made without it" in caught.value.message
    assert caught.value.hint == 'as a superuser, in database "my_first_app_later_spatial": CREATE EXTENSION postgis'
    # A new spatial store on the same service is cloned from the template.
    result = stores.create_store(platform, APP, "new_spatial", "primary", spatial=True)
    assert result.ok and result.action == "created"
    assert rows(pg_admin_url, "my_first_app_new_spatial", "SELECT extname FROM pg_extension WHERE extname = 'postgis'")
