"""TethysTestCase's test-store helpers on storekeeper's test copies, as Tethys's docs describe them.

In testing mode, ``create_test_persistent_stores_for_app`` gives every store of
the app a fresh copy initialized with ``first_time=True``, the app's own API
resolves to it, and ``destroy_test_persistent_stores_for_app`` drops it; the
real store is never touched. Outside testing mode both refuse, and nothing is
made or dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from storekeeper import apps, engines, stores
from storekeeper.errors import SettingError
from storekeeper.platform import Platform
from tests.core.conftest import database_exists, rows
from tests.tethys.conftest import DAM, FLOOD, tethys_copies

REAL = "dam_inventory_primary_db"
COPY = "test_dam_inventory_primary_db"
SEEDED = ["Deer Creek", "Jordanelle"]  # what init_primary_db adds when first_time is True


def dam_names(pg_admin_url: str, dbname: str) -> list[str]:
    return [r[0] for r in rows(pg_admin_url, dbname, "SELECT name FROM dams ORDER BY name")]


@pytest.fixture
def synced_dams(platform: Platform, dam_app: type, pg_admin_url: str) -> type:
    """dam_inventory's real store, synced, with one dam only the real store has."""
    from tethysapp.dam_inventory.model import add_new_dam

    (result,) = stores.sync_stores(platform, [DAM])
    assert result.ok, result
    add_new_dam({"type": "Point", "coordinates": [-112.0, 41.0]}, "Real Only", "Owner", "River", "2000")
    assert dam_names(pg_admin_url, REAL) == ["Deer Creek", "Jordanelle", "Real Only"]
    return dam_app


@pytest.fixture
def testing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Testing mode on, as ``storekeeper test APP`` turns it on."""
    engines.clear()  # handles made outside testing mode point at real stores
    monkeypatch.setenv("STOREKEEPER_TESTING", "1")
    yield
    engines.clear()


def test_the_helpers_give_the_app_a_first_time_copy_and_take_it_away(
    synced_dams: type, testing: None, admin_conn: psycopg.Connection[Any], pg_admin_url: str
) -> None:
    from tethys_sdk.testing import TethysTestCase, is_testing_environment
    from tethysapp.dam_inventory.model import add_new_dam, get_all_dams

    App = synced_dams
    assert is_testing_environment() and TethysTestCase.is_testing_environment()
    TethysTestCase.create_test_persistent_stores_for_app(App)

    assert database_exists(admin_conn, COPY)
    assert App.get_persistent_store_database("primary_db", as_url=True).database == COPY
    assert App.get_persistent_store_database("primary_db").url.database == COPY
    assert [d.name for d in get_all_dams()] == SEEDED  # initialized with first_time=True, no real data
    add_new_dam({"type": "Point", "coordinates": [-111.0, 40.0]}, "Test Only", "Owner", "River", "2020")
    assert dam_names(pg_admin_url, COPY) == [*SEEDED, "Test Only"]
    assert App.list_persistent_store_databases() == ["primary_db"]
    assert App.persistent_store_exists("primary_db")

    TethysTestCase.create_test_persistent_stores_for_app(App)  # again: a fresh copy each time
    assert [d.name for d in get_all_dams()] == SEEDED

    TethysTestCase.destroy_test_persistent_stores_for_app(App)
    assert not database_exists(admin_conn, COPY)
    assert not App.persistent_store_exists("primary_db")
    TethysTestCase.destroy_test_persistent_stores_for_app(App)  # idempotent
    assert dam_names(pg_admin_url, REAL) == ["Deer Creek", "Jordanelle", "Real Only"]  # never touched


def test_outside_testing_mode_the_helpers_refuse_and_touch_nothing(
    synced_dams: type, admin_conn: psycopg.Connection[Any], pg_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tethys_sdk.testing import TethysTestCase, is_testing_environment

    assert not is_testing_environment()
    for helper in (
        TethysTestCase.create_test_persistent_stores_for_app,
        TethysTestCase.destroy_test_persistent_stores_for_app,
    ):
        with pytest.raises(EnvironmentError, match="storekeeper test APP") as err:
            helper(synced_dams)
        assert "TETHYS_TESTING_IN_PROGRESS" not in str(err.value)
    # Tethys's own variable does not turn storekeeper's testing mode on; the error says so.
    monkeypatch.setenv("TETHYS_TESTING_IN_PROGRESS", "1")
    assert not is_testing_environment()
    with pytest.raises(EnvironmentError, match="TETHYS_TESTING_IN_PROGRESS is set, but that is Tethys's variable"):
        TethysTestCase.destroy_test_persistent_stores_for_app(synced_dams)
    assert tethys_copies(admin_conn) == []
    assert dam_names(pg_admin_url, REAL) == ["Deer Creek", "Jordanelle", "Real Only"]


def test_a_required_store_without_a_service_names_the_command_that_assigns_it(
    platform: Platform, service: str, clean_copies: None, testing: None
) -> None:
    from tethys_sdk.testing import TethysTestCase
    from tethysapp.dam_inventory.app import DamInventory

    with pytest.raises(SettingError) as err:
        TethysTestCase.create_test_persistent_stores_for_app(DamInventory)
    assert "storekeeper app-settings set dam_inventory primary_db" in (err.value.hint or "")


@pytest.mark.parametrize("bad", [None, "dam_inventory", object, int])
def test_the_helpers_take_an_app_class_only(bad: object, testing: None) -> None:
    from tethys_sdk.testing import TethysTestCase

    with pytest.raises(TypeError, match="takes the app's class"):
        TethysTestCase.create_test_persistent_stores_for_app(bad)


def test_destroy_also_drops_dynamic_stores_the_test_made(
    platform: Platform, flood_app: type, testing: None, admin_conn: psycopg.Connection[Any]
) -> None:
    from tethys_sdk.testing import TethysTestCase
    from tethysapp.flood_points.model import addresses_in_extent

    App = flood_app
    apps.assign_service(platform, FLOOD, "primary", "local")
    TethysTestCase.create_test_persistent_stores_for_app(App)
    extent = "POLYGON((-111.8 40.2, -111.6 40.2, -111.6 40.4, -111.8 40.4, -111.8 40.2))"
    assert addresses_in_extent(extent) == ["1 River Rd", "2 River Rd"]  # PostGIS in the copy
    assert App.create_persistent_store("scenario_1", "primary")
    assert sorted(App.list_persistent_store_databases()) == ["flood_db", "scenario_1"]
    assert {"test_flood_points_flood_db", "test_flood_points_scenario_1"} <= set(tethys_copies(admin_conn))

    TethysTestCase.destroy_test_persistent_stores_for_app(App)
    assert [n for n in tethys_copies(admin_conn) if n.startswith("test_")] == []
    assert App.list_persistent_store_databases() == []
    assert not database_exists(admin_conn, "flood_points_flood_db")  # no real store was ever made
