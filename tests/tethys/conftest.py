"""Fixtures of the Tethys compatibility tests: the two Tethys-layout sample apps with their stores assigned.

The sample apps (tests/tethys_apps) are installed in the test environment as
Tethys installs apps: plain packages in the ``tethysapp`` namespace, with no
``storekeeper.apps`` entry point, next to ``storekeeper-tethys`` (compat/tethys).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from storekeeper import apps, engines
from storekeeper.platform import Platform
from storekeeper.testing import copies, fixtures
from tests.conftest import _admin_params

DAM = "dam_inventory"
FLOOD = "flood_points"
#: Test copies and templates of the sample apps (and spares and discarded copies).
COPY_RE = re.compile(r"(test\d*|tpl)_(dam_inventory|flood_points)_")


def tethys_copies(admin_conn: psycopg.Connection[Any], *, templates: bool = True) -> list[str]:
    """Return the sample apps' test copies (and templates) on the server, sorted."""
    found = admin_conn.execute("SELECT datname FROM pg_database ORDER BY datname").fetchall()
    return [r[0] for r in found if COPY_RE.match(r[0]) and (templates or not r[0].startswith("tpl_"))]


def drop_tethys_copies(pg_admin_url: str) -> None:
    """Drop every test copy and template of the sample apps (between tests, as a fresh start)."""
    with psycopg.connect(autocommit=True, **_admin_params(pg_admin_url)) as conn:  # type: ignore[arg-type]
        for name in tethys_copies(conn):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def clean_copies(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start and end with no test copy or template of the sample apps, outside testing mode."""
    monkeypatch.delenv("STOREKEEPER_TESTING", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # copy names carry no worker number
    copies.drop_spares()
    copies.reset()
    drop_tethys_copies(pg_admin_url)
    yield
    engines.clear()
    copies.drop_spares()
    copies.reset()
    fixtures.session_copies.clear()
    drop_tethys_copies(pg_admin_url)


@pytest.fixture
def dam_app(platform: Platform, service: str, clean_copies: None) -> type:
    """The dam inventory sample app with primary_db assigned to the test service (store not yet made)."""
    from tethysapp.dam_inventory.app import DamInventory

    apps.assign_service(platform, DAM, "primary_db", service)
    return DamInventory


@pytest.fixture
def flood_app(platform: Platform, service: str, clean_copies: None, postgis_available: bool) -> type:
    """The flood points sample app with its spatial flood_db assigned (needs PostGIS; store not yet made)."""
    from tethysapp.flood_points.app import FloodPoints

    from tests.pg_server import require_postgis

    require_postgis(postgis_available)
    apps.assign_service(platform, FLOOD, "flood_db", service)
    return FloodPoints
