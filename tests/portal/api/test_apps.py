"""``/api/v1/apps``: apps with their settings and state; assign and reset settings."""

from __future__ import annotations

from tests.portal.conftest import problem

APP = "my_first_app"


def test_list_shows_installed_apps_with_settings_and_state(admin, service):
    response = admin.get("/api/v1/apps")
    assert response.status_code == 200
    body = response.json()
    by_package = {a["package"]: a for a in body["apps"]}
    app = by_package[APP]
    assert app["installed"] is True
    assert app["configured"] is False
    assert app["ready"] is False
    settings = {s["name"]: s for s in app["settings"]}
    assert settings["example_db"]["kind"] == "database"
    assert settings["example_db"]["state"] == "absent"
    assert settings["spatial_db"]["spatial"] is True
    assert settings["primary"]["kind"] == "connection"
    assert body["problems"] == []


def test_show_one_app(admin, my_first_app):
    app = admin.get(f"/api/v1/apps/{APP}").json()
    assert app["configured"] is True
    assert app["ready"] is False
    assert {s["service"] for s in app["settings"]} == {"local"}


def test_show_an_unknown_app_is_a_404_naming_it(admin):
    doc = problem(admin.get("/api/v1/apps/no_such_app"), 404, '"no_such_app"', "apps list")
    assert doc["app"] == "no_such_app"


def test_settings_lists_declared_settings(admin, service):
    names = [s["name"] for s in admin.get(f"/api/v1/apps/{APP}/settings").json()]
    assert set(names) == {"example_db", "primary", "creator", "spatial_db", "temp_db"}


def test_assign_plugs_a_service_into_a_setting(admin, service):
    response = admin.put(f"/api/v1/apps/{APP}/settings/example_db", json={"service": service})
    assert response.status_code == 200, response.text
    assert response.json()["service"] == service
    assert admin.get(f"/api/v1/apps/{APP}").json()["settings"][0]["service"] == service


def test_assign_an_unknown_service_is_a_404_naming_it(admin, service):
    doc = problem(admin.put(f"/api/v1/apps/{APP}/settings/example_db", json={"service": "nope"}), 404, '"nope"')
    assert doc["service"] == "nope"


def test_assign_an_unknown_setting_is_a_404_listing_the_known_ones(admin, service):
    doc = problem(
        admin.put(f"/api/v1/apps/{APP}/settings/nope", json={"service": service}),
        404,
        '"nope"',
        "example_db",
        f"app-settings list {APP}",
    )
    assert doc["app"] == APP
    assert doc["setting"] == "nope"


def test_assign_without_a_body_is_a_422(admin, service):
    problem(admin.put(f"/api/v1/apps/{APP}/settings/example_db"), 422, "body")


def test_reset_unplugs_the_service(admin, my_first_app):
    response = admin.delete(f"/api/v1/apps/{APP}/settings/temp_db")
    assert response.status_code == 200, response.text
    assert response.json()["service"] is None


def test_reset_is_refused_while_the_store_exists_naming_the_drop(admin, platform, my_first_app):
    from storekeeper import stores

    stores.sync_stores(platform, [APP], database="temp_db")
    doc = problem(admin.delete(f"/api/v1/apps/{APP}/settings/temp_db"), 409, "temp_db", f"stores drop {APP} temp_db")
    assert doc["setting"] == "temp_db"
