"""Two unmodified Tethys-layout apps on storekeeper, as a user runs them: real processes, a real server.

Installed as Tethys installs apps (``pip install -e``, plain packages in the
``tethysapp`` namespace, no ``storekeeper.apps`` entry point), with
initializer paths written without the ``tethysapp.`` prefix: they are found,
synced (PostGIS for the spatial one), their model functions work, and
``storekeeper test APP`` runs that app's Tethys tests, and only those.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import psycopg
import pytest

from storekeeper import discovery, engines
from tests.core.conftest import database_exists, rows
from tests.tethys.conftest import DAM, FLOOD, tethys_copies

#: pytest arguments for the inner runs: list every test, write no cache into the app.
PYTEST_ARGS = ("--", "-p", "no:cacheprovider", "-v")
RIVER_EXTENT = "POLYGON((-111.8 40.2, -111.6 40.2, -111.6 40.4, -111.8 40.4, -111.8 40.2))"
DAM_TESTS = [
    "test_dam_inventory_adds_a_dam",
    "test_dam_inventory_starts_with_the_initializers_dams",
    "test_dam_inventory_uses_the_test_copy",
]
FLOOD_TESTS = [
    "test_flood_points_finds_addresses_inside_the_extent",
    "test_flood_points_sees_a_new_address_in_the_extent",
]


def passed(result: subprocess.CompletedProcess[str], count: int) -> str:
    """Assert the run exited 0 with exactly ``count`` tests passed and none failed; return its output."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(rf"\b{count} passed\b", output), output
    assert not re.search(r"\b(failed|errors?|skipped)\b", output), output
    return output


@pytest.fixture
def both_synced(run_cli, service: str, clean_copies: None, postgis_available: bool) -> None:
    """Both sample apps' stores assigned and synced through the CLI."""
    from tests.pg_server import require_postgis

    require_postgis(postgis_available)
    for app, setting in ((DAM, "primary_db"), (FLOOD, "flood_db"), (FLOOD, "primary")):
        assigned = run_cli("app-settings", "set", app, setting, service)
        assert assigned.returncode == 0, assigned.stderr
    synced = run_cli("syncstores", DAM, FLOOD, "--json")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    results = json.loads(synced.stdout)["results"]
    assert sorted((r["app"], r["store"], r["ok"], r["first_time"]) for r in results) == [
        (DAM, "primary_db", True, True),
        (FLOOD, "flood_db", True, True),
    ], results


def test_both_apps_are_found_with_no_entry_point(run_cli) -> None:
    declared = {ep.name for ep in entry_points(group=discovery.ENTRY_POINT_GROUP)}
    assert not {DAM, FLOOD} & declared  # installed as Tethys installs apps
    listed = run_cli("apps", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    by_package = {a["package"]: a for a in data["apps"]}
    assert by_package[DAM]["name"] == "Dam Inventory"
    assert by_package[FLOOD]["name"] == "Flood Points"
    assert data["problems"] == []


def test_syncstores_makes_both_stores_and_runs_the_prefixless_initializers(
    both_synced: None, admin_conn: psycopg.Connection[Any], pg_admin_url: str
) -> None:
    assert rows(pg_admin_url, "dam_inventory_primary_db", "SELECT name FROM dams ORDER BY name") == [
        ("Deer Creek",),
        ("Jordanelle",),
    ]
    assert rows(
        pg_admin_url, "flood_points_flood_db", "SELECT extname FROM pg_extension WHERE extname = 'postgis'"
    ) == [("postgis",)]
    assert rows(pg_admin_url, "flood_points_flood_db", "SELECT count(*) FROM address_points") == [(3,)]


def test_the_apps_model_functions_work_on_the_synced_stores(both_synced: None, sk_home: Any) -> None:
    engines.clear()
    discovery.forget()
    from tethysapp.dam_inventory.model import add_new_dam, get_all_dams
    from tethysapp.flood_points.model import add_address, addresses_in_extent

    add_new_dam('{"type": "Point", "coordinates": [-111.68, 40.33]}', "Utah Lake", "State", "Jordan River", "1872")
    assert [d.name for d in get_all_dams()] == ["Deer Creek", "Jordanelle", "Utah Lake"]
    add_address("3 River Rd", -111.65, 40.35)
    assert addresses_in_extent(RIVER_EXTENT) == ["1 River Rd", "2 River Rd", "3 River Rd"]


def test_storekeeper_test_runs_each_apps_own_tethys_tests_only(
    both_synced: None, run_cli, admin_conn: psycopg.Connection[Any], pg_admin_url: str
) -> None:
    dam = passed(run_cli("test", DAM, *PYTEST_ARGS), len(DAM_TESTS))
    for name in DAM_TESTS:
        assert f"{name} PASSED" in dam
    for name in FLOOD_TESTS:
        assert name not in dam  # every Tethys app shares tethysapp: the other app's tests never run

    flood = passed(run_cli("test", FLOOD, *PYTEST_ARGS), len(FLOOD_TESTS))
    for name in FLOOD_TESTS:
        assert f"{name} PASSED" in flood
    for name in DAM_TESTS:
        assert name not in flood

    # The runs left no test copy behind (templates stay for the next run), and the real stores are as synced.
    assert [n for n in tethys_copies(admin_conn) if not n.startswith("tpl_")] == []
    assert {"tpl_dam_inventory_primary_db", "tpl_flood_points_flood_db"} <= set(tethys_copies(admin_conn))
    assert rows(pg_admin_url, "dam_inventory_primary_db", "SELECT count(*) FROM dams") == [(2,)]
    assert rows(pg_admin_url, "flood_points_flood_db", "SELECT count(*) FROM address_points") == [(3,)]
    assert database_exists(admin_conn, "dam_inventory_primary_db")


def test_the_apps_tests_outside_storekeeper_test_fail_with_the_command_to_use(
    both_synced: None, sk_home: Path, admin_conn: psycopg.Connection[Any], pg_admin_url: str
) -> None:
    """Plain pytest (no testing mode): each test fails in set_up, naming ``storekeeper test``; nothing is touched."""
    import tethysapp.dam_inventory as package

    tests_dir = Path(package.__file__).parent / "tests"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "STOREKEEPER_TESTING"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(tests_dir), "-p", "no:cacheprovider", "-q"],
        capture_output=True,
        text=True,
        env={**env, "STOREKEEPER_HOME": str(sk_home)},
        cwd=tests_dir,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert re.search(rf"\b{len(DAM_TESTS)} failed\b", output), output  # pytest reports a failed setUp as failed
    assert "runs only in storekeeper's testing mode" in output
    assert "storekeeper test APP" in output
    assert tethys_copies(admin_conn) == []
    assert rows(pg_admin_url, "dam_inventory_primary_db", "SELECT count(*) FROM dams") == [(2,)]


def test_the_apps_tests_run_under_plain_unittest_in_testing_mode_and_leave_no_copy(
    both_synced: None, sk_home: Path, admin_conn: psycopg.Connection[Any], pg_admin_url: str
) -> None:
    """``python -m unittest`` with STOREKEEPER_TESTING=1: no pytest plugin, yet copies and spares are gone at exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "STOREKEEPER_TESTING"))}
    result = subprocess.run(
        [sys.executable, "-m", "unittest", "-v", "tethysapp.dam_inventory.tests.test_dam_inventory"],
        capture_output=True,
        text=True,
        env={**env, "STOREKEEPER_HOME": str(sk_home), "STOREKEEPER_TESTING": "1"},
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"Ran {len(DAM_TESTS)} tests" in output and "\nOK" in output, output
    assert [n for n in tethys_copies(admin_conn) if not n.startswith("tpl_")] == []
    assert rows(pg_admin_url, "dam_inventory_primary_db", "SELECT count(*) FROM dams") == [(2,)]
