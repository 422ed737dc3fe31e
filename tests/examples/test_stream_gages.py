"""The stream_gages example app (examples/stream_gages) end to end.

* through the real portal (REST API, real users and tokens) against a real
  PostGIS store: settings assigned and synced with the API, seed gages written
  exactly once, points stored as SRID 4326 geometry, gages posted and read as
  GeoJSON, scenario stores created and dropped on the server;
* ``storekeeper test stream_gages`` as a real process: the app's own tests pass
  against test copies and leave none behind;
* the map page in headless Chromium, served by uvicorn: one visible marker per
  gage; screenshot in ``test-artifacts/stream_gages_map.png``.

The example must be installed (``pip install -e examples/stream_gages``);
spatial stores need PostGIS (skipped without it unless
``STOREKEEPER_REQUIRE_POSTGIS=1``).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from storekeeper import apps, engines, stores, users
from storekeeper.config import load_config
from storekeeper.platform import Platform
from storekeeper.portal.app import create_app
from tests.conftest import _admin_params
from tests.pg_server import require_postgis
from tests.portal.conftest import TestClient, problem, wait_for_job
from tests.portal.ui.test_browser import WAIT, LiveServer, chrome, snap  # noqa: F401  (chrome, snap: fixtures)

pytest.importorskip("stream_gages", reason="install the example app: pip install -e examples/stream_gages")

from stream_gages.model import SEED_GAGES

APP = "stream_gages"
BASE = f"/apps/{APP}"
DATABASE = "stream_gages_stream_gages_db"
SCENARIO_DB = "stream_gages_scenario_wet_year"
PASSWORD = "gauger-password-1"
#: The app's test copies, spares and templates (not dropped by tests/conftest.py, which drops stream_gages_*).
TEST_DATABASE_RE = re.compile(r"(test\d*|tpl)_stream_gages_")
NEW_GAGE = {"latitude": 40.2455, "longitude": -111.6488, "value": 5}


def connect_to(pg_admin_url: str, dbname: str) -> psycopg.Connection[Any]:
    return psycopg.connect(autocommit=True, **{**_admin_params(pg_admin_url), "dbname": dbname})  # type: ignore[arg-type]


def database_exists(admin_conn: psycopg.Connection[Any], name: str) -> bool:
    return admin_conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def copies_on_server(admin_conn: psycopg.Connection[Any]) -> list[str]:
    """The app's test copies and templates on the server, sorted."""
    names = [r[0] for r in admin_conn.execute("SELECT datname FROM pg_database ORDER BY datname").fetchall()]
    return [n for n in names if TEST_DATABASE_RE.match(n)]


def gages(pg_admin_url: str, dbname: str = DATABASE) -> list[tuple[Any, ...]]:
    """(latitude, longitude, value, ST_X, ST_Y, ST_SRID, geometry type) of every gage, by id."""
    with connect_to(pg_admin_url, dbname) as conn:
        return conn.execute(
            "SELECT latitude, longitude, value, ST_X(geom), ST_Y(geom), ST_SRID(geom), GeometryType(geom) "
            "FROM stream_gages ORDER BY id"
        ).fetchall()


def seed_rows() -> list[tuple[Any, ...]]:
    return [(g.latitude, g.longitude, g.value, g.longitude, g.latitude, 4326, "POINT") for g in SEED_GAGES]


@pytest.fixture
def spatial(postgis_available: bool) -> None:
    require_postgis(postgis_available)


@pytest.fixture
def no_test_copies(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start and end without the app's test copies and templates; never in testing mode here."""
    monkeypatch.delenv("STOREKEEPER_TESTING", raising=False)

    def drop() -> None:
        with connect_to(pg_admin_url, "postgres") as conn:
            for name in copies_on_server(conn):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    drop()
    yield
    engines.clear()
    drop()


@pytest.fixture
def portal(sk_home: Path, service: str, spatial: None) -> Iterator[TestClient]:
    """The real portal of the test's home (not in testing mode), no one signed in."""
    with TestClient(create_app(load_config())) as client:
        yield client


@pytest.fixture
def token(platform: Platform, portal: TestClient) -> dict[str, str]:
    """A real admin user's API token, from POST /api/v1/auth/token."""
    users.upsert_user(platform, "gauger", PASSWORD, role="admin")
    response = portal.post("/api/v1/auth/token", json={"username": "gauger", "password": PASSWORD})
    assert response.status_code in (200, 201), response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def sync(portal: TestClient, token: dict[str, str]) -> dict[str, Any]:
    """Sync the app's stores with the REST API; return the finished job."""
    response = portal.post(f"/api/v1/apps/{APP}/sync", json={}, headers=token)
    assert response.status_code == 202, response.text
    job = wait_for_job(_Authed(portal, token), response.headers["location"])  # type: ignore[arg-type]
    assert job["status"] == "succeeded", job
    return job


class _Authed:
    """A client whose GETs carry a token (for wait_for_job)."""

    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def get(self, url: str) -> Any:
        return self.client.get(url, headers=self.headers)


@pytest.fixture
def synced(portal: TestClient, token: dict[str, str]) -> TestClient:
    """The portal with both settings assigned to the test service and the stores synced, all with the API."""
    for setting in ("stream_gages_db", "scenarios"):
        response = portal.put(f"/api/v1/apps/{APP}/settings/{setting}", json={"service": "local"}, headers=token)
        assert response.status_code == 200, response.text
    sync(portal, token)
    return portal


# -- through the real portal ---------------------------------------------------------


def test_the_app_answers_503_until_its_store_is_assigned_and_synced(portal, token):
    problem(portal.get(f"{BASE}/gages"), 503, "stream_gages_db", f"app-settings set {APP}")
    portal.put(f"/api/v1/apps/{APP}/settings/stream_gages_db", json={"service": "local"}, headers=token)
    problem(portal.get(f"{BASE}/"), 503, "not initialized", f"syncstores {APP}")
    sync(portal, token)
    assert portal.get(f"{BASE}/gages").status_code == 200  # scenarios is optional


def test_sync_writes_the_seed_gages_once_as_postgis_points(synced, token, platform, pg_admin_url):
    assert gages(pg_admin_url) == seed_rows()
    with connect_to(pg_admin_url, DATABASE) as conn:
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'").fetchone()
        column = conn.execute("SELECT srid, type FROM geometry_columns WHERE f_table_name = 'stream_gages'").fetchone()
        assert column == (4326, "POINT")
    job = sync(synced, token)  # a plain sync again: the initializer runs with first_time=False
    assert gages(pg_admin_url) == seed_rows()
    (result,) = [r for r in job["results"] if r["store"] == "stream_gages_db"]
    assert result["first_time"] is False, job
    assert [s.name for s in stores.list_stores(platform, APP) if s.exists] == ["stream_gages_db"]


def test_a_store_made_before_migrations_is_refused_until_stamped_then_migrated(synced, token, platform, pg_admin_url):
    """The worked example: a store from before the app used migrations (as `make run` made) keeps its data."""
    with connect_to(pg_admin_url, DATABASE) as conn:  # what the old initializer's create_all left: no name, no version
        conn.execute("DROP TABLE alembic_version")
        conn.execute("ALTER TABLE stream_gages DROP COLUMN name")
    (refused,) = stores.sync_stores(platform, [APP], database="stream_gages_db")
    assert not refused.ok and "no alembic_version table" in (refused.error or "")
    assert (
        refused.hint is not None
        and "storekeeper stores migrate stream_gages --database stream_gages_db --stamp REV" in refused.hint
    )
    (stamped,) = stores.migrate(platform, APP, "stream_gages_db", stamp="0001")
    assert (stamped.action, stamped.after) == ("stamp", "0001")
    (result,) = stores.sync_stores(platform, [APP], database="stream_gages_db")
    assert result.ok and result.revisions == ["0002"] and result.first_time is False
    assert gages(pg_admin_url) == seed_rows()  # nothing was lost
    response = synced.post(f"{BASE}/gages", json={**NEW_GAGE, "name": "Provo River"}, headers=token)
    assert response.status_code == 201, response.text
    assert response.json()["properties"]["name"] == "Provo River"
    (down,) = stores.migrate(platform, APP, "stream_gages_db", to="0001")  # and back: the column goes
    assert (down.action, down.after) == ("downgrade", "0001")


def test_gages_are_posted_and_read_as_geojson_through_the_portal(synced, token, pg_admin_url):
    doc = synced.get(f"{BASE}/gages")
    assert doc.status_code == 200
    assert doc.headers["content-type"].startswith("application/geo+json")
    features = doc.json()["features"]
    assert doc.json()["type"] == "FeatureCollection"
    assert [(f["geometry"]["type"], f["geometry"]["coordinates"], f["properties"]) for f in features] == [
        ("Point", [g.longitude, g.latitude], {"id": i, "value": g.value, "name": None})
        for i, g in enumerate(SEED_GAGES, start=1)
    ]

    problem(synced.post(f"{BASE}/gages", json=NEW_GAGE), 401, "token")
    problem(synced.post(f"{BASE}/gages", json=NEW_GAGE, headers={"Authorization": "Bearer skt_nope"}), 401)
    problem(synced.post(f"{BASE}/gages", json={**NEW_GAGE, "latitude": 91}, headers=token), 422, "latitude")
    response = synced.post(f"{BASE}/gages", json=NEW_GAGE, headers=token)
    assert response.status_code == 201, response.text
    assert response.json() == {
        "type": "Feature",
        "id": 3,
        "geometry": {"type": "Point", "coordinates": [-111.6488, 40.2455]},
        "properties": {"id": 3, "value": 5, "name": None},
    }
    assert gages(pg_admin_url)[2] == (40.2455, -111.6488, 5, -111.6488, 40.2455, 4326, "POINT")
    assert [f["id"] for f in synced.get(f"{BASE}/gages").json()["features"]] == [1, 2, 3]
    page = synced.get(f"{BASE}/").text
    assert page.count('<circle class="marker"') == 3
    assert synced.get(f"{BASE}/map").text.count('<circle class="marker"') == 3
    moved = synced.get(BASE, follow_redirects=False)
    assert moved.status_code in (307, 308) and moved.headers["location"].endswith(f"{BASE}/")
    assert f"{BASE}/gages" in synced.get("/openapi.json").json()["paths"]


def test_scenario_stores_are_created_and_dropped_on_the_server(synced, token, pg_admin_url, admin_conn):
    assert synced.get(f"{BASE}/scenarios").json() == {"scenarios": []}
    problem(synced.post(f"{BASE}/scenarios", json={"name": "wet_year"}), 401)
    problem(synced.post(f"{BASE}/scenarios", json={"name": "Wet-Year"}, headers=token), 400, "Invalid scenario name")
    response = synced.post(f"{BASE}/scenarios", json={"name": "wet_year"}, headers=token)
    assert response.status_code == 201, response.text
    assert response.json() == {"name": "wet_year", "store": "scenario_wet_year"}

    assert database_exists(admin_conn, SCENARIO_DB)
    assert gages(pg_admin_url, SCENARIO_DB) == seed_rows()  # a spatial store of its own, seeded
    assert synced.get(f"{BASE}/scenarios").json() == {"scenarios": [{"name": "wet_year", "store": "scenario_wet_year"}]}
    listed = synced.get(f"/api/v1/apps/{APP}/stores", headers=token).json()
    assert {(s["name"], s["kind"], s["exists"]) for s in listed} >= {("scenario_wet_year", "dynamic", True)}
    doc = problem(synced.post(f"{BASE}/scenarios", json={"name": "wet_year"}, headers=token), 409, "already exists")
    assert doc["store"] == "scenario_wet_year"

    assert synced.delete(f"{BASE}/scenarios/wet_year", headers=token).status_code == 204
    assert not database_exists(admin_conn, SCENARIO_DB)
    assert synced.get(f"{BASE}/scenarios").json() == {"scenarios": []}
    problem(synced.delete(f"{BASE}/scenarios/wet_year", headers=token), 404, "wet_year")
    assert gages(pg_admin_url) == seed_rows()  # the main store is untouched


def test_scenarios_without_a_service_on_their_setting_are_refused_naming_it(portal, token):
    portal.put(f"/api/v1/apps/{APP}/settings/stream_gages_db", json={"service": "local"}, headers=token)
    sync(portal, token)
    problem(
        portal.post(f"{BASE}/scenarios", json={"name": "dry"}, headers=token),
        409,
        "scenarios",
        f"app-settings set {APP} scenarios",
    )


# -- storekeeper test stream_gages -------------------------------------------------


@pytest.mark.slow
def test_storekeeper_test_runs_the_apps_own_tests_on_copies(
    platform, service, spatial, run_cli, no_test_copies, admin_conn, monkeypatch
):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # the child is no xdist worker
    for setting in ("stream_gages_db", "scenarios"):
        apps.assign_service(platform, APP, setting, service)
    result = run_cli("test", APP, "--", "-p", "no:cacheprovider", "-q", timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    counts = re.search(r"(\d+) passed", output)
    assert counts and int(counts.group(1)) == 48, output  # every test of the app, scenarios included
    assert not re.search(r"\b(failed|errors?|skipped)\b", output), output
    # Test copies (also the scenario stores) are gone; only the template is kept for the next run.
    assert copies_on_server(admin_conn) == ["tpl_stream_gages_stream_gages_db"]
    assert not database_exists(admin_conn, DATABASE)  # the real store was never made or opened
    cleaned = run_cli("test", APP, "--clean")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert copies_on_server(admin_conn) == []


# -- the map in a real browser -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_gages(platform: Platform, service: str, spatial: None) -> Iterator[str]:
    """The portal served by uvicorn, with the app's store synced and one more gage; its base URL."""
    for setting in ("stream_gages_db", "scenarios"):
        apps.assign_service(platform, APP, setting, service)
    (result,) = stores.sync_stores(platform, [APP])
    assert result.ok, result
    with LiveServer(create_app(load_config()), _free_port()) as server:
        yield server.url


def _wait(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.1, ignored_exceptions=(WebDriverException,)).until(
        condition, message=f"waited {WAIT}s for {what}"
    )


@pytest.mark.slow
def test_the_map_page_shows_a_visible_marker_per_gage_offline(chrome, snap, live_gages, pg_admin_url):  # noqa: F811
    from selenium.webdriver.common.by import By

    chrome.get(f"{live_gages}{BASE}/")
    _wait(chrome, lambda d: d.execute_script("return document.readyState") == "complete", "the page")
    markers = chrome.find_elements(By.CSS_SELECTOR, "svg#gage-map circle.marker")
    assert len(markers) == len(SEED_GAGES) == len(gages(pg_admin_url))
    assert all(m.is_displayed() for m in markers)
    plot = chrome.find_element(By.CSS_SELECTOR, "svg#gage-map rect.plot").rect
    for m in markers:  # inside the plot, and big enough to see
        r = m.rect
        assert r["width"] >= 10 and r["height"] >= 10, r
        assert plot["x"] < r["x"] and r["x"] + r["width"] < plot["x"] + plot["width"], (r, plot)
        assert plot["y"] < r["y"] and r["y"] + r["height"] < plot["y"] + plot["height"], (r, plot)
    # The stylesheet came from the app itself and applied (markers are filled orange, not SVG's default black).
    fill = chrome.execute_script("return getComputedStyle(arguments[0]).fill", markers[0])
    assert fill == "rgb(232, 89, 12)", fill
    labels = [e.text for e in chrome.find_elements(By.CSS_SELECTOR, "svg#gage-map .gage text.label")]
    assert labels == ["Gage 1 · value 1", "Gage 2 · value 2"]
    # Nothing on the page came from anywhere but the portal.
    origins = chrome.execute_script("return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert set(origins) <= {live_gages}, origins
    assert snap("stream_gages_map").stat().st_size > 10_000  # test-artifacts/stream_gages_map.png
    assert chrome.find_element(By.ID, "gage-count").text == "2 gages"
    assert make_url(pg_admin_url).password not in chrome.page_source


def test_gage_ids_outside_the_id_columns_range_are_a_404_not_a_500(synced):
    for gage_id in ("2147483648", "-2147483649", "99999999999999999999999999", "0", "-1", "2147483647"):
        problem(synced.get(f"{BASE}/gages/{gage_id}"), 404, "There is no gage")
    for gage_id in ("abc", "1.5", "1e3", "%00", "1;DROP TABLE stream_gages", "9" * 5000):
        response = synced.get(f"{BASE}/gages/{gage_id}")
        assert response.status_code in (404, 422), (gage_id, response.status_code, response.text[:300])
        assert response.headers["content-type"].startswith("application/problem+json")
    assert synced.get(f"{BASE}/gages/1").status_code == 200
