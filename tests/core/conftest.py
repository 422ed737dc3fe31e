"""Helpers for the core tests: look at the server and the platform database from outside."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storekeeper import apps
from storekeeper.backends import postgresql as pg
from storekeeper.platform import Platform

APP = "my_first_app"
EXAMPLE_DB = "my_first_app_example_db"


def connect_to(pg_admin_url: str, dbname: str) -> psycopg.Connection[Any]:
    """Open a superuser autocommit connection to one database of the test server."""
    u = make_url(pg_admin_url)
    return psycopg.connect(
        host=u.host, port=u.port or 5432, user=u.username, password=u.password, dbname=dbname, autocommit=True
    )


def rows(pg_admin_url: str, dbname: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run a query in a database of the test server and return its rows."""
    with connect_to(pg_admin_url, dbname) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def first_time_runs(pg_admin_url: str, dbname: str, table: str = "init_log") -> list[bool]:
    """Return the first_time flag of every initializer run logged in a store, oldest first."""
    query = sql.SQL("SELECT first_time FROM {} ORDER BY id").format(sql.Identifier(table))
    with connect_to(pg_admin_url, dbname) as conn:
        return [r[0] for r in conn.execute(query).fetchall()]


def database_exists(admin_conn: psycopg.Connection[Any], dbname: str) -> bool:
    return admin_conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


def databases_like(admin_conn: psycopg.Connection[Any], prefix: str) -> list[str]:
    found = admin_conn.execute("SELECT datname FROM pg_database ORDER BY datname").fetchall()
    return [r[0] for r in found if r[0].startswith(prefix)]


def setting_record(platform: Platform, package: str, name: str) -> dict[str, Any] | None:
    """Return a setting's row in the platform database, read with plain SQL."""
    with platform.engine.connect() as conn:
        row = (
            conn.execute(
                text(
                    "SELECT s.state, s.generation, s.service_id, s.orphaned, s.dynamic, s.last_error "
                    "FROM settings s JOIN apps a ON a.id = s.app_id WHERE a.package = :p AND s.name = :n"
                ),
                {"p": package, "n": name},
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    return {**row, "orphaned": bool(row["orphaned"]), "dynamic": bool(row["dynamic"])}


def set_record(platform: Platform, package: str, name: str, **values: Any) -> None:
    """Change a setting's row behind storekeeper's back (as another process or a crash would)."""
    assignments = ", ".join(f"{k} = :{k}" for k in values)
    with platform.engine.begin() as conn:
        conn.execute(
            text(
                f"UPDATE settings SET {assignments} "
                "WHERE name = :n AND app_id = (SELECT id FROM apps WHERE package = :p)"
            ),
            {**values, "p": package, "n": name},
        )


def drop_behind_back(admin_conn: psycopg.Connection[Any], dbname: str) -> None:
    admin_conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


@pytest.fixture
def flaky_app(platform: Platform, service: str) -> str:
    """flaky_app with its store assigned to the test service."""
    apps.assign_service(platform, "flaky_app", "db", service)
    return "flaky_app"


@pytest.fixture
def fail_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A file whose existence makes flaky_app's initializer raise."""
    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv("FLAKY_APP_FAIL", str(flag))
    yield flag


def make_service_user(
    platform: Platform, pg_admin_url: str, service: str, user: str, password: str, attributes: str
) -> None:
    """Create login role ``user`` with ``attributes`` on the test server (afresh) and register it as ``service``."""
    from storekeeper import services

    u = make_url(pg_admin_url)
    with connect_to(pg_admin_url, "postgres") as conn:
        drop_service_user(conn, user)
        conn.execute(
            sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
                sql.Identifier(user), sql.SQL(attributes), sql.Literal(password)
            )
        )
    services.create_service(
        platform, name=service, host=u.host or "127.0.0.1", port=u.port or 5432, username=user, password=password
    )


def drop_service_user(conn: psycopg.Connection[Any], user: str) -> None:
    """Drop the PostGIS template, the databases ``user`` and its store roles own, the roles, then ``user``."""
    tpl = sql.Identifier(pg.POSTGIS_TEMPLATE)
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (pg.POSTGIS_TEMPLATE,)).fetchone():
        conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(tpl))
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(tpl))
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is None:
        return
    roles = [
        r[0]
        for r in conn.execute(
            "SELECT r.rolname FROM pg_roles r WHERE pg_has_role(%s, r.oid, 'MEMBER') AND r.rolname <> %s "
            "AND shobj_description(r.oid, 'pg_authid') LIKE 'storekeeper:role %%'",
            (user, user),
        ).fetchall()
    ]
    owners = [user, *roles]
    for (name,) in conn.execute(
        "SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = ANY(%s)", (owners,)
    ).fetchall():
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(ident))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
    for name in owners:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def migrating_app(platform: Platform, service: str) -> str:
    """migrating_app (stores made by Alembic migrations) with its settings assigned to the test service."""
    for setting in ("primary", "db", "autogen_db"):
        apps.assign_service(platform, "migrating_app", setting, service)
    return "migrating_app"
