"""``POST /api/v1/apps/{app}/adopt``: adopting databases Tethys made, from the REST API (admins only)."""

from __future__ import annotations

from storekeeper import apps
from tests.portal.conftest import problem
from tests.tethys_dbs import comment, make_tethys_db, owner, server_of

APP = "my_first_app"
EXAMPLE = f"{APP}_example_db"


def test_an_admin_checks_then_adopts_a_tethys_database(admin, platform, my_first_app, admin_conn, pg_admin_url):
    apps.reset_setting(platform, APP, "temp_db")
    make_tethys_db(admin_conn, server_of(pg_admin_url), EXAMPLE)

    dry = admin.post(f"/api/v1/apps/{APP}/adopt", json={"store": "example_db", "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert [(r["action"], sorted(r["tables"])) for r in dry.json()["results"]] == [
        ("would adopt", ["init_log", "stream_gages"])
    ]
    assert comment(admin_conn, EXAMPLE) is None

    done = admin.post(f"/api/v1/apps/{APP}/adopt", json={"store": "example_db"})
    assert done.status_code == 200, done.text
    assert done.json()["ok"] is True
    assert [r["action"] for r in done.json()["results"]] == ["adopted"]
    assert owner(admin_conn, EXAMPLE) == EXAMPLE
    assert comment(admin_conn, EXAMPLE).startswith(f"storekeeper:initialized {APP}/example_db ")


def test_a_refused_database_is_reported_per_store_with_its_fix(admin, my_first_app):
    response = admin.post(f"/api/v1/apps/{APP}/adopt", json={"store": "example_db"})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert response.json()["ok"] is False
    assert result["ok"] is False
    assert f"there is no database {EXAMPLE}" in result["error"]
    assert f"storekeeper syncstores {APP} --database example_db" in result["hint"]


def test_adopting_for_an_unknown_app_is_a_404(admin, service):
    problem(admin.post("/api/v1/apps/no_such_app/adopt", json={}), 404, '"no_such_app"')


def test_a_bad_store_name_is_refused_before_any_sql(admin, my_first_app):
    response = admin.post(f"/api/v1/apps/{APP}/adopt", json={"store": 'x"; DROP DATABASE postgres'})
    assert response.status_code == 422


def test_a_viewer_may_not_adopt(viewer, my_first_app, admin_conn):
    assert viewer.post(f"/api/v1/apps/{APP}/adopt", json={"dry_run": True}).status_code == 403
