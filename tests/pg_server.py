"""Pytest plugin: one PostgreSQL superuser URL for the whole test session.

Register it with ``pytest_plugins = ["tests.pg_server"]`` in the root conftest.

* ``pg_admin_url`` -- a SQLAlchemy URL (``postgresql+psycopg://...``) of a
  superuser. It comes from ``STOREKEEPER_TEST_DATABASE_URL`` when set;
  otherwise a private server (:meth:`storekeeper.pgserver.LocalServer.temporary`)
  runs for the session and is removed at its end.
* ``postgis_available`` -- whether that server can ``CREATE EXTENSION postgis``.
* ``require_postgis()`` -- skip a spatial test when PostGIS is missing, or fail
  it when ``STOREKEEPER_REQUIRE_POSTGIS=1`` (CI sets it, so no spatial test is
  skipped there unnoticed).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from storekeeper.pgserver import LocalServer, ServerError

__all__ = ["pg_admin_url", "postgis_available", "require_postgis"]

#: Env var naming an existing server's superuser URL; skips starting a private server.
DATABASE_URL_ENV = "STOREKEEPER_TEST_DATABASE_URL"
#: Env var that turns a missing PostGIS from a skip into a failure.
REQUIRE_POSTGIS_ENV = "STOREKEEPER_REQUIRE_POSTGIS"


def _normalize_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver when it names none.

    SQLAlchemy would pick psycopg2 for a bare ``postgresql://`` URL, and it
    rejects the ``postgres://`` spelling outright.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """Yield a superuser's SQLAlchemy URL: from the env, or of a private server for this session."""
    from_env = os.environ.get(DATABASE_URL_ENV)
    if from_env:
        yield _normalize_url(from_env)
        return
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(LocalServer.temporary(fast=True))
        except ServerError as err:
            # A clean message (what was checked, how to fix) beats a traceback here.
            pytest.fail(
                f"Cannot start a private PostgreSQL server for the tests: {err}\n"
                f"(Or set {DATABASE_URL_ENV} to a superuser URL of a running server.)",
                pytrace=False,
            )
        yield server.url()


@pytest.fixture(scope="session")
def postgis_available(pg_admin_url: str) -> bool:
    """Return whether the test server offers the PostGIS extension."""
    engine = sa.create_engine(pg_admin_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis')")
            ).scalar_one()
    finally:
        engine.dispose()
    return bool(found)


def require_postgis(available: bool = False) -> None:
    """Skip the calling test unless PostGIS is available; fail instead when CI requires it.

    Call it as ``require_postgis(postgis_available)`` (or with no argument
    where PostGIS is known to be missing).
    """
    if available:
        return
    message = (
        "PostGIS is not available on the test PostgreSQL server. Install it "
        "(Debian/Ubuntu: apt-get install postgresql-15-postgis-3, matching the server's major version)"
    )
    if os.environ.get(REQUIRE_POSTGIS_ENV) == "1":
        pytest.fail(f"{message}; {REQUIRE_POSTGIS_ENV}=1 forbids skipping spatial tests.", pytrace=False)
    pytest.skip(f"{message}, or set {REQUIRE_POSTGIS_ENV}=1 to make this a failure.")
