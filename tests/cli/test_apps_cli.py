"""``storekeeper apps`` and ``storekeeper app-settings``: installed apps and their settings' services."""

from __future__ import annotations

from storekeeper.platform.models import App
from tests.cli.helpers import as_json, fails, ok

MY_FIRST_APP_SETTINGS = {"example_db", "spatial_db", "temp_db", "primary", "creator"}


def test_apps_list_shows_the_installed_test_apps(invoke):
    out = ok(invoke("apps list")).stdout
    for package in ("my_first_app", "bench_app", "flaky_app"):
        assert package in out
    assert "needs services" in out


def test_apps_list_json(invoke, my_first_app):
    data = as_json(invoke("apps list --json"))
    by_package = {a["package"]: a for a in data["apps"]}
    assert {"my_first_app", "bench_app", "flaky_app"} <= set(by_package)
    mine = by_package["my_first_app"]
    assert (mine["name"], mine["installed"], mine["configured"], mine["ready"]) == ("My First App", True, True, False)
    assert {s["name"] for s in mine["settings"]} == MY_FIRST_APP_SETTINGS
    assert by_package["bench_app"]["configured"] is False
    assert data["problems"] == []


def test_apps_show_lists_the_settings(invoke):
    out = ok(invoke("apps show my_first_app")).stdout
    assert "My First App" in out
    for name in MY_FIRST_APP_SETTINGS:
        assert name in out
    data = as_json(invoke("apps show my_first_app --json"))
    kinds = {s["name"]: s["kind"] for s in data["settings"]}
    assert kinds == {
        "example_db": "database",
        "spatial_db": "database",
        "temp_db": "database",
        "primary": "connection",
        "creator": "connection",
    }
    spatial = {s["name"]: s["spatial"] for s in data["settings"]}
    assert spatial["spatial_db"] is True and spatial["example_db"] is False


def test_apps_show_unknown_app_names_apps_list(invoke):
    fails(invoke("apps show no_such_app"), "no_such_app", "storekeeper apps list")


def test_apps_remove_refuses_an_installed_app(invoke):
    fails(invoke("apps remove my_first_app --yes"), "my_first_app", "installed")


def test_apps_remove_forgets_an_orphaned_app_after_confirmation(invoke, platform):
    with platform.session() as session:
        session.add(App(package="gone_app", name="Gone", installed=True))
    listed = {a["package"]: a for a in as_json(invoke("apps list --json"))["apps"]}
    assert listed["gone_app"]["installed"] is False
    assert "orphaned" in ok(invoke("apps list")).stdout
    fails(invoke("apps remove gone_app"), "--yes")
    ok(invoke("apps remove gone_app --yes"))
    assert "gone_app" not in {a["package"] for a in as_json(invoke("apps list --json"))["apps"]}


def test_app_settings_list(invoke):
    out = ok(invoke("app-settings list my_first_app")).stdout
    for name in MY_FIRST_APP_SETTINGS:
        assert name in out
    settings = as_json(invoke("app-settings list my_first_app --json"))
    assert {s["name"] for s in settings} == MY_FIRST_APP_SETTINGS
    assert all(s["service"] is None for s in settings)


def test_app_settings_set_assigns_a_service_and_names_the_sync_command(invoke, service):
    result = ok(invoke("app-settings set my_first_app example_db local"))
    assert "storekeeper syncstores my_first_app" in result.stdout
    ok(invoke("app-settings set my_first_app primary local"))
    services = {s["name"]: s["service"] for s in as_json(invoke("app-settings list my_first_app --json"))}
    assert services["example_db"] == "local"
    assert services["primary"] == "local"
    assert services["spatial_db"] is None
    assert as_json(invoke("services show local --json"))["assigned"] == [
        "my_first_app/example_db",
        "my_first_app/primary",
    ]


def test_app_settings_reset_removes_the_assignment(invoke, my_first_app):
    ok(invoke("app-settings reset my_first_app example_db"))
    services = {s["name"]: s["service"] for s in as_json(invoke("app-settings list my_first_app --json"))}
    assert services["example_db"] is None
    assert services["temp_db"] == "local"


def test_app_settings_set_unknown_setting_names_app_settings_list(invoke, service):
    fails(invoke("app-settings set my_first_app nope local"), "nope", "storekeeper app-settings list my_first_app")
    fails(invoke("app-settings reset my_first_app nope"), "storekeeper app-settings list my_first_app")


def test_app_settings_set_unknown_service_names_services_list(invoke, service):
    fails(invoke("app-settings set my_first_app example_db nope"), "nope", "storekeeper services list")


def test_app_settings_of_unknown_app_is_an_error(invoke, service):
    fails(invoke("app-settings list no_such_app"), "no_such_app")
    fails(invoke("app-settings set no_such_app example_db local"), "no_such_app")


def test_app_settings_reset_is_refused_while_the_store_exists(invoke, my_first_app):
    ok(invoke("syncstores my_first_app --database temp_db"))
    fails(invoke("app-settings reset my_first_app temp_db"), "storekeeper stores drop my_first_app temp_db")
