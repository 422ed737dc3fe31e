"""Fixtures of the testing-environment tests: a server without test copies or templates, testing mode on demand.

Test copies (``test_…``, ``test<N>_…``) of the test apps are dropped before
and after every test that uses ``no_test_databases`` (every fixture here does),
and the process-wide state of :mod:`storekeeper.testing` is reset, so tests do
not see each other's copies. Templates are kept between tests, as between
runs, unless a test asks for ``no_templates``; all are dropped at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from storekeeper import engines, stores
from storekeeper.platform import Platform
from storekeeper.testing import copies, fixtures
from tests.conftest import _admin_params
from tests.core.conftest import APP, fail_flag, flaky_app, migrating_app  # noqa: F401  (fixtures used by these tests)

EXAMPLE_DB = "my_first_app_example_db"
COPY = "test_my_first_app_example_db"
TEMPLATE = "tpl_my_first_app_example_db"
MARKER = "storekeeper:initialized my_first_app/example_db installation=test-suite"
#: Test copies and templates of the apps in tests/apps.
TEST_DATABASE_RE = re.compile(r"(test\d*|tpl)_(my_first_app|bench_app|flaky_app|migrating_app)_")


def copies_on_server(admin_conn: psycopg.Connection[Any]) -> list[str]:
    """Return the test copies and templates of the test apps on the server, sorted."""
    found = admin_conn.execute("SELECT datname FROM pg_database ORDER BY datname").fetchall()
    return [r[0] for r in found if TEST_DATABASE_RE.match(r[0])]


def copies_left(admin_conn: psycopg.Connection[Any]) -> list[str]:
    """Return the test copies (not templates) of the test apps on the server, sorted."""
    return [name for name in copies_on_server(admin_conn) if not name.startswith("tpl_")]


def drop_test_copies(pg_admin_url: str, *, templates: bool = False) -> None:
    """Drop every test copy (and template) of the test apps."""
    with psycopg.connect(autocommit=True, **_admin_params(pg_admin_url)) as conn:  # type: ignore[arg-type]
        for name in copies_on_server(conn):
            if templates or not name.startswith("tpl_"):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_oid(admin_conn: psycopg.Connection[Any], dbname: str) -> int | None:
    row = admin_conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
    return int(row[0]) if row else None


def database_comment(admin_conn: psycopg.Connection[Any], dbname: str) -> str | None:
    row = admin_conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (dbname,)
    ).fetchone()
    return row[0] if row else None


def gage_values(pg_admin_url: str, dbname: str) -> list[int]:
    """Return the ``value`` of every stream gage in a database, sorted."""
    from tests.core.conftest import rows

    return sorted(r[0] for r in rows(pg_admin_url, dbname, "SELECT value FROM stream_gages"))


def _reset_testing_state() -> None:
    if hasattr(copies, "drop_spares"):
        copies.drop_spares()  # background clones finish before their databases are dropped
    copies.reset()
    fixtures.session_copies.clear()


@pytest.fixture(scope="session", autouse=True)
def _drop_templates_at_the_end(pg_admin_url: str) -> Iterator[None]:
    yield
    drop_test_copies(pg_admin_url, templates=True)


@pytest.fixture
def no_test_databases(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start and end without test copies or templates of the test apps, outside testing mode."""
    monkeypatch.delenv("STOREKEEPER_TESTING", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # expected names carry no worker number
    _reset_testing_state()
    drop_test_copies(pg_admin_url)
    yield
    engines.clear()
    _reset_testing_state()
    drop_test_copies(pg_admin_url)


@pytest.fixture
def no_templates(no_test_databases: None, pg_admin_url: str) -> Iterator[None]:
    """Start and end without templates of the test apps either."""
    drop_test_copies(pg_admin_url, templates=True)
    yield
    drop_test_copies(pg_admin_url, templates=True)


@pytest.fixture
def synced(platform: Platform, my_first_app: type, no_test_databases: None, pg_admin_url: str) -> type:
    """my_first_app with its real example_db synced, plus a gage (value 99) only the real store has."""
    from tests.core.conftest import connect_to

    (result,) = stores.sync_stores(platform, [APP], database="example_db")
    assert result.ok, result
    with connect_to(pg_admin_url, EXAMPLE_DB) as conn:
        conn.execute("INSERT INTO stream_gages (latitude, longitude, value) VALUES (0, 0, 99)")
    return my_first_app


@pytest.fixture
def testing(synced: type, monkeypatch: pytest.MonkeyPatch) -> Iterator[type]:
    """Testing mode on (STOREKEEPER_TESTING=1), after the real store was synced; yields my_first_app."""
    engines.clear()  # handles made outside testing mode point at real stores
    monkeypatch.setenv("STOREKEEPER_TESTING", "1")
    yield synced
    engines.clear()


def subprocess_env(sk_home: Path, **extra: str) -> dict[str, str]:
    """The environment of a child process in the test's home, without this run's pytest/xdist variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "STOREKEEPER_TESTING"))}
    return {**env, "STOREKEEPER_HOME": str(sk_home), "COLUMNS": "200", **extra}


def run_pytest(path: Path, sk_home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on ``path`` as a real process in the test's home, from ``path``'s directory."""
    cwd = path if path.is_dir() else path.parent
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(path), "-p", "no:cacheprovider", "-q", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(sk_home, **env),
        cwd=cwd,
        timeout=120,
    )
