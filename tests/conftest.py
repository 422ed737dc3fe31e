"""Shared fixtures: a private PostgreSQL server, a throwaway storekeeper home, a service on it.

Every test that uses ``platform`` gets its own home directory (SQLite platform
database, fresh secret key) and starts with no database of the test apps on
the server, so tests do not see each other's stores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storekeeper import discovery, engines
from storekeeper.platform import Platform, db, load_platform, reset_platform

pytest_plugins = ["tests.pg_server"]

#: Database-name prefixes of the apps in tests/apps, tests/tethys_apps and examples/; tests drop these freely.
TEST_APP_PREFIXES = (
    "my_first_app_",
    "bench_app_",
    "flaky_app_",
    "rows_app_",
    "links_",
    "stream_gages_",
    "dam_inventory_",
    "flood_points_",
    "migrating_app_",
)
SERVICE = "local"
#: The installation id of every test home: one installation, as a developer's machine is, so stores, roles
#: and templates a test leaves on the shared server belong to the next test's home too. Tests of two
#: installations make homes of their own (see tests/reliability).
TEST_INSTALLATION = "test-suite"
#: Every app the test environment installs: tests/apps, the examples, and the Tethys-layout apps of
#: tests/tethys_apps (found in the tethysapp namespace, with no entry point).
INSTALLED_APPS = {
    "bench_app",
    "flaky_app",
    "my_first_app",
    "rows_app",
    "migrating_app",
    "links",
    "stream_gages",
    "dam_inventory",
    "flood_points",
}


def _admin_params(url: str) -> dict[str, object]:
    u = make_url(url)
    return {"host": u.host, "port": u.port or 5432, "user": u.username, "password": u.password, "dbname": "postgres"}


def drop_test_databases(url: str, prefixes: tuple[str, ...] = TEST_APP_PREFIXES) -> None:
    """Drop every database of the test apps on the test server."""
    with psycopg.connect(autocommit=True, **_admin_params(url)) as conn:  # type: ignore[arg-type]
        names = [
            r[0]
            for r in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate").fetchall()
            if r[0].startswith(prefixes)
        ]
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _forget_process_state() -> None:
    engines.clear()
    discovery.forget()
    reset_platform()


@pytest.fixture
def sk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, migrated storekeeper home, set as $STOREKEEPER_HOME."""
    home = tmp_path / "home"
    monkeypatch.setenv("STOREKEEPER_HOME", str(home))
    for var in [v for v in os.environ if v.startswith("STOREKEEPER_") and v not in ("STOREKEEPER_HOME",)]:
        if var not in ("STOREKEEPER_TEST_DATABASE_URL", "STOREKEEPER_REQUIRE_POSTGIS"):
            monkeypatch.delenv(var)
    _forget_process_state()
    from storekeeper.config import load_config

    engine = db.make_engine(load_config().database_url)
    db.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE installation SET id = :id"), {"id": TEST_INSTALLATION})
    engine.dispose()
    yield home
    _forget_process_state()


@pytest.fixture
def platform(sk_home: Path) -> Platform:
    """The platform of the fresh home."""
    return load_platform()


@pytest.fixture
def service(platform: Platform, pg_admin_url: str) -> Iterator[str]:
    """Register the test server as service "local" (superuser) and clear the test apps' databases."""
    from storekeeper import services

    u = make_url(pg_admin_url)
    drop_test_databases(pg_admin_url)
    services.create_service(
        platform,
        name=SERVICE,
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        username=u.username or "postgres",
        password=u.password,
        pool_size=3,
    )
    yield SERVICE
    engines.clear()
    drop_test_databases(pg_admin_url)


@pytest.fixture
def my_first_app(platform: Platform, service: str) -> type:
    """my_first_app with every setting assigned to the test service (stores not yet created)."""
    from my_first_app.app import App

    from storekeeper import apps

    for setting in ("example_db", "spatial_db", "temp_db", "primary", "creator"):
        apps.assign_service(platform, "my_first_app", setting, service)
    return App


@pytest.fixture
def admin_conn(pg_admin_url: str) -> Iterator[psycopg.Connection]:
    """A superuser connection to the test server's maintenance database (to check from outside)."""
    with psycopg.connect(autocommit=True, **_admin_params(pg_admin_url)) as conn:  # type: ignore[arg-type]
        yield conn


def storekeeper_exe() -> str:
    """Path of the installed ``storekeeper`` command next to this Python."""
    exe = Path(sys.executable).with_name("storekeeper")
    return str(exe) if exe.exists() else shutil.which("storekeeper") or "storekeeper"


@pytest.fixture
def run_cli(sk_home: Path):  # type: ignore[no-untyped-def]
    """Run the installed ``storekeeper`` command as a real process in the test's home."""

    def run(
        *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "STOREKEEPER_HOME": str(sk_home), "COLUMNS": "200", **(env or {})}
        return subprocess.run(
            [storekeeper_exe(), *args], input=input, capture_output=True, text=True, env=full_env, timeout=timeout
        )

    return run
