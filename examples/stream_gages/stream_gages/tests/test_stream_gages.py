"""stream_gages' own tests: run them with ``storekeeper test stream_gages``.

Each test gets a fresh copy of the ``stream_gages_db`` store as it looks right
after its first-time initialization, and ``client`` calls the app's endpoints
through the real portal in testing mode, so the routes work on that copy.
The scenario tests need a service on the ``scenarios`` connection setting; the
scenario stores they make are test copies known to this process only.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from sqlalchemy import func, select, text

from storekeeper.testing import persistent_store, portal_client
from stream_gages.app import App
from stream_gages.mapview import GagePoint, build_map, format_degrees, nice_step
from stream_gages.model import SEED_GAGES, StreamGage

BASE = "/apps/stream_gages"
stream_gages_db = persistent_store("stream_gages", "stream_gages_db")
client = portal_client()

VALID = {"latitude": 40.2401, "longitude": -111.6571, "value": 7}


def seed_features() -> list[dict[str, Any]]:
    return [
        {
            "type": "Feature",
            "id": i,
            "geometry": {"type": "Point", "coordinates": [g.longitude, g.latitude]},
            "properties": {"id": i, "value": g.value, "name": None},
        }
        for i, g in enumerate(SEED_GAGES, start=1)
    ]


@pytest.fixture
def scenarios_assigned() -> None:
    if "scenarios" not in App.list_persistent_store_connections():
        pytest.skip(
            "assign a service to the scenarios setting: storekeeper app-settings set stream_gages scenarios SERVICE"
        )


# -- the store ------------------------------------------------------------------------


def test_a_fresh_copy_holds_the_two_seed_gages_with_their_points(stream_gages_db):
    with stream_gages_db.sessionmaker() as session:
        rows = session.execute(
            select(
                StreamGage.latitude,
                StreamGage.longitude,
                StreamGage.value,
                func.ST_X(StreamGage.geom),
                func.ST_Y(StreamGage.geom),
                func.ST_SRID(StreamGage.geom),
            ).order_by(StreamGage.id)
        ).all()
    assert [(lat, lon, v) for lat, lon, v, *_ in rows] == [(g.latitude, g.longitude, g.value) for g in SEED_GAGES]
    assert all(x == lon and y == lat and srid == 4326 for lat, lon, _, x, y, srid in rows)


def test_the_point_follows_latitude_and_longitude_whoever_writes_them(stream_gages_db):
    with stream_gages_db.engine.begin() as conn:
        conn.execute(text("UPDATE stream_gages SET latitude = 41.5, longitude = -112.25 WHERE id = 1"))
        assert conn.execute(text("SELECT ST_AsText(geom), ST_SRID(geom) FROM stream_gages WHERE id = 1")).one() == (
            "POINT(-112.25 41.5)",
            4326,
        )


def test_app_code_resolves_to_the_copy(stream_gages_db):
    assert App.get_persistent_store_database("stream_gages_db").url.database == stream_gages_db.database
    assert stream_gages_db.database != "stream_gages_stream_gages_db"


# -- GeoJSON ------------------------------------------------------------------------


def test_gages_are_a_geojson_feature_collection(stream_gages_db, client):
    response = client.get(f"{BASE}/gages")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    doc = response.json()
    assert doc["type"] == "FeatureCollection"
    assert doc["features"] == seed_features()  # 15 digits from ST_AsGeoJSON: the stored doubles, unrounded


def test_one_gage_and_an_unknown_one(stream_gages_db, client):
    assert client.get(f"{BASE}/gages/2").json() == seed_features()[1]
    response = client.get(f"{BASE}/gages/99")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "no gage 99" in response.json()["detail"]


def test_posting_a_gage_needs_a_token(stream_gages_db, client):
    response = client.post(f"{BASE}/gages", json=VALID)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    response = client.post(f"{BASE}/gages", json=VALID, headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert len(client.get(f"{BASE}/gages").json()["features"]) == 2


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_a_signed_in_user_adds_a_gage_and_gets_the_feature(stream_gages_db, client, role):
    response = client.post(f"{BASE}/gages", json=VALID, headers=client.token_headers(role))
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    feature = response.json()
    assert feature["type"] == "Feature" and feature["id"] == 3
    assert feature["geometry"] == {"type": "Point", "coordinates": [-111.6571, 40.2401]}
    assert feature["properties"] == {"id": 3, "value": 7, "name": None}
    assert response.headers["location"] == f"{BASE}/gages/3"
    assert client.get(response.headers["location"]).json() == feature
    assert [f["id"] for f in client.get(f"{BASE}/gages").json()["features"]] == [1, 2, 3]


def test_a_gage_with_a_name_shows_it_in_geojson_and_on_the_map(stream_gages_db, client):
    response = client.post(f"{BASE}/gages", json={**VALID, "name": "Provo River"}, headers=client.token_headers())
    assert response.status_code == 201, response.text
    assert response.json()["properties"] == {"id": 3, "value": 7, "name": "Provo River"}
    page = client.get(f"{BASE}/").text
    assert "Gage 3 (Provo River): value 7" in page and '<span class="gage-name">Provo River</span>' in page


def test_the_copy_is_at_the_migrations_head(stream_gages_db):
    with stream_gages_db.sessionmaker() as session:
        assert session.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"


@pytest.mark.parametrize(
    "body",
    [
        {**VALID, "latitude": 90.5},
        {**VALID, "latitude": -91},
        {**VALID, "longitude": 180.01},
        {**VALID, "longitude": -200},
        {**VALID, "latitude": "40.1"},
        {**VALID, "longitude": True},
        {**VALID, "value": 1.5},
        {**VALID, "value": "7"},
        {**VALID, "value": 2**31},
        {**VALID, "id": 1},
        {"latitude": 40.0, "longitude": -111.0},
        {},
        [],
        "a gage",
    ],
    ids=[
        "lat>90",
        "lat<-90",
        "lon>180",
        "lon<-180",
        "lat-string",
        "lon-bool",
        "value-float",
        "value-string",
        "value-too-big",
        "extra-field",
        "no-value",
        "empty",
        "list",
        "string",
    ],
)
def test_invalid_gages_are_refused_with_a_problem_document(stream_gages_db, client, body):
    response = client.post(f"{BASE}/gages", json=body, headers=client.token_headers())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"]
    assert len(client.get(f"{BASE}/gages").json()["features"]) == 2


@pytest.mark.parametrize(
    "raw",
    [
        '{"latitude": NaN, "longitude": 0, "value": 1}',
        '{"latitude": 0, "longitude": Infinity, "value": 1}',
        '{"latitude": 0, "longitude": 0, "value": 1',
        "not json",
    ],
)
def test_non_finite_numbers_and_broken_json_are_refused(stream_gages_db, client, raw):
    headers = {**client.token_headers(), "Content-Type": "application/json"}
    response = client.post(f"{BASE}/gages", content=raw, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("kind", ["text/plain", "form", "none"])
def test_a_body_not_sent_as_json_is_415(stream_gages_db, client, kind):
    headers = client.token_headers()
    if kind == "text/plain":
        response = client.post(
            f"{BASE}/gages",
            content='{"latitude": 1, "longitude": 1, "value": 1}',
            headers={**headers, "Content-Type": "text/plain"},
        )
    elif kind == "form":
        response = client.post(f"{BASE}/gages", data={"latitude": "1", "longitude": "1", "value": "1"}, headers=headers)
    else:
        response = client.post(f"{BASE}/gages", headers=headers)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["hint"]
    assert len(client.get(f"{BASE}/gages").json()["features"]) == 2


# -- the map --------------------------------------------------------------------------


def test_the_map_page_draws_one_marker_per_gage_in_an_svg(stream_gages_db, client):
    for path in (f"{BASE}/", f"{BASE}/map"):
        response = client.get(path)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        page = response.text
        assert '<svg id="gage-map"' in page
        assert len(re.findall(r'<circle class="marker"', page)) == 2
        assert 'data-gage-id="1"' in page and 'data-gage-id="2"' in page
        assert "Gage 2 · value 2" in page
        assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched from elsewhere
        assert "https://" not in page
    client.post(f"{BASE}/gages", json=VALID, headers=client.token_headers())
    assert len(re.findall(r'<circle class="marker"', client.get(f"{BASE}/").text)) == 3


def test_the_page_stylesheet_is_served_by_the_app(stream_gages_db, client):
    page = client.get(f"{BASE}/").text
    assert 'href="static/map.css"' in page
    response = client.get(f"{BASE}/static/map.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "url(" not in response.text  # no fonts or images from elsewhere
    assert client.get(f"{BASE}/static/app.py").status_code == 404
    assert client.get(f"{BASE}/static/..%2Fapp.py").status_code == 404


def test_the_map_page_with_no_gages_says_so(stream_gages_db, client):
    with stream_gages_db.engine.begin() as conn:
        conn.execute(text("DELETE FROM stream_gages"))
    page = client.get(f"{BASE}/").text
    assert "<svg" in page and 'class="marker"' not in page
    assert "No gages yet" in page


def test_the_map_fits_the_gages_with_padding_and_round_grid_lines():
    points = [
        GagePoint(id=i, latitude=g.latitude, longitude=g.longitude, value=g.value)
        for i, g in enumerate(SEED_GAGES, start=1)
    ]
    view = build_map(points, width=960, height=600)
    left, top = view.plot_left, view.plot_top
    right, bottom = left + view.plot_width, top + view.plot_height
    for m in view.markers:
        assert left + 0.1 * view.plot_width < m.x < right - 0.1 * view.plot_width
        assert top + 0.1 * view.plot_height < m.y < bottom - 0.1 * view.plot_height
    west, east = sorted(view.markers, key=lambda m: m.longitude)
    assert west.x < east.x  # west is left
    # One kilometre is as long east-west as north-south (longitudes scaled by cos(latitude)).
    km_x = (east.x - west.x) / ((east.longitude - west.longitude) * 111.195 * math.cos(math.radians(40.2385)))
    assert km_x == pytest.approx(view.plot_height / ((view.bounds.north - view.bounds.south) * 111.195), rel=1e-3)
    assert len(view.meridians) >= 3 and len(view.parallels) >= 3
    assert all(line.label.endswith("°W") for line in view.meridians)
    assert all(line.label.endswith("°N") for line in view.parallels)
    assert view.scale_bar.label in ("200 m", "500 m", "1 km", "2 km")
    assert 0.1 * view.plot_width < view.scale_bar.length < 0.3 * view.plot_width


def test_map_helpers():
    assert nice_step(0.037, 6) == pytest.approx(0.01)
    assert nice_step(0.014, 6) == pytest.approx(0.0025)
    assert nice_step(360, 6) == 100
    assert format_degrees(-111.705, "lon", 3) == "111.705°W"
    assert format_degrees(40.2, "lat", 1) == "40.2°N"
    assert format_degrees(0.0, "lat", 2) == "0.00°"
    one = build_map([GagePoint(id=1, latitude=-33.9, longitude=18.4, value=5)])
    assert one.markers[0].title == "Gage 1: value 5 at 33.90000°S, 18.40000°E"
    world = build_map([])
    assert world.empty and not world.markers and world.meridians


# -- scenarios: dynamic stores ---------------------------------------------------------


def test_scenarios_are_created_listed_and_dropped(stream_gages_db, client, scenarios_assigned):
    admin = client.token_headers()
    assert client.get(f"{BASE}/scenarios").json() == {"scenarios": []}
    response = client.post(f"{BASE}/scenarios", json={"name": "wet_year"}, headers=admin)
    assert response.status_code == 201, response.text
    assert response.json() == {"name": "wet_year", "store": "scenario_wet_year"}
    assert response.headers["location"] == f"{BASE}/scenarios/wet_year"
    try:
        assert App.persistent_store_exists("scenario_wet_year")
        assert "scenario_wet_year" in App.list_persistent_store_databases(dynamic_only=True)
        # The scenario is a spatial store of its own, starting from the seed gages.
        engine = App.get_persistent_store_database("scenario_wet_year")
        assert engine.url.database != "stream_gages_scenario_wet_year"  # a test copy, not a real store
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*), min(ST_SRID(geom)) FROM stream_gages")).one() == (2, 4326)
        assert client.get(f"{BASE}/scenarios").json() == {
            "scenarios": [{"name": "wet_year", "store": "scenario_wet_year"}]
        }
        duplicate = client.post(f"{BASE}/scenarios", json={"name": "wet_year"}, headers=admin)
        assert duplicate.status_code == 409
        assert duplicate.headers["content-type"].startswith("application/problem+json")
        assert "already exists" in duplicate.json()["detail"]
    finally:
        dropped = client.delete(f"{BASE}/scenarios/wet_year", headers=admin)
    assert dropped.status_code == 204, dropped.text
    assert not App.persistent_store_exists("scenario_wet_year")
    assert client.get(f"{BASE}/scenarios").json() == {"scenarios": []}
    again = client.delete(f"{BASE}/scenarios/wet_year", headers=admin)
    assert again.status_code == 404
    assert again.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("name", ["Wet", "1st", "wet-year", "_x", "", "a" * 33, "wet year", "x;drop"])
def test_bad_scenario_names_are_refused_with_400(stream_gages_db, client, name):
    response = client.post(f"{BASE}/scenarios", json={"name": name}, headers=client.token_headers())
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Invalid scenario name" in response.json()["detail"]


def test_scenario_bodies_must_name_a_string(stream_gages_db, client):
    for body in ({}, {"name": 5}, {"name": "ok", "spatial": False}):
        assert client.post(f"{BASE}/scenarios", json=body, headers=client.token_headers()).status_code == 422


def test_scenarios_need_an_admin_token(stream_gages_db, client):
    assert client.post(f"{BASE}/scenarios", json={"name": "dry"}).status_code == 401
    assert client.delete(f"{BASE}/scenarios/dry").status_code == 401
    viewer = client.token_headers("viewer")
    assert client.post(f"{BASE}/scenarios", json={"name": "dry"}, headers=viewer).status_code == 403
    assert client.delete(f"{BASE}/scenarios/dry", headers=viewer).status_code == 403
    assert client.get(f"{BASE}/scenarios").json() == {"scenarios": []}


def test_dropping_an_unknown_scenario_is_404(stream_gages_db, client):
    response = client.delete(f"{BASE}/scenarios/never_made", headers=client.token_headers())
    assert response.status_code == 404
    assert 'no scenario "never_made"' in response.json()["detail"]
