"""``/api/v1/apps/{app}/stores``: list an app's stores; create and drop dynamic ones."""

from __future__ import annotations

from tests.core.conftest import database_exists
from tests.portal.conftest import problem

APP = "my_first_app"


def test_list_shows_each_store_and_whether_it_exists(admin, my_first_app):
    response = admin.get(f"/api/v1/apps/{APP}/stores")
    assert response.status_code == 200
    stores = {s["name"]: s for s in response.json()}
    assert set(stores) == {"example_db", "spatial_db", "temp_db"}
    assert stores["example_db"]["exists"] is False
    assert stores["example_db"]["database"] == "my_first_app_example_db"


def test_list_of_an_unknown_app_is_a_404(admin):
    problem(admin.get("/api/v1/apps/no_such_app/stores"), 404, '"no_such_app"')


def test_create_a_dynamic_store_then_drop_it(admin, my_first_app, admin_conn):
    response = admin.post(f"/api/v1/apps/{APP}/stores", json={"name": "scratch", "connection": "primary"})
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/api/v1/apps/{APP}/stores/scratch"
    result = response.json()
    assert result["ok"] is True
    assert result["action"] == "created"
    assert database_exists(admin_conn, "my_first_app_scratch")
    listed = {s["name"]: s for s in admin.get(f"/api/v1/apps/{APP}/stores").json()}
    assert listed["scratch"]["kind"] == "dynamic"
    assert listed["scratch"]["exists"] is True

    assert admin.delete(f"/api/v1/apps/{APP}/stores/scratch").status_code == 204
    assert not database_exists(admin_conn, "my_first_app_scratch")
    assert "scratch" not in {s["name"] for s in admin.get(f"/api/v1/apps/{APP}/stores").json()}


def test_create_through_an_unassigned_connection_is_a_409_naming_the_assign_command(admin, service):
    doc = problem(
        admin.post(f"/api/v1/apps/{APP}/stores", json={"name": "scratch", "connection": "primary"}),
        409,
        '"primary"',
        f"app-settings set {APP} primary",
    )
    assert doc["setting"] == "primary"


def test_create_through_a_database_setting_is_refused(admin, my_first_app):
    problem(
        admin.post(f"/api/v1/apps/{APP}/stores", json={"name": "scratch", "connection": "example_db"}),
        400,
        "example_db",
    )


def test_create_with_a_bad_store_name_states_the_rule(admin, my_first_app):
    problem(
        admin.post(f"/api/v1/apps/{APP}/stores", json={"name": "Bad-Name", "connection": "primary"}), 422, "Bad-Name"
    )


def test_drop_a_store_that_does_not_exist_is_idempotent(admin, my_first_app):
    assert admin.delete(f"/api/v1/apps/{APP}/stores/never_made").status_code == 204


def test_rotate_credentials_gives_store_roles_new_passwords_and_never_shows_them(admin, my_first_app, viewer):
    admin.post(f"/api/v1/apps/{APP}/stores", json={"name": "scratch", "connection": "primary"})
    before = my_first_app.get_persistent_store_database("scratch", as_url=True)
    listed = {s["name"]: s for s in admin.get(f"/api/v1/apps/{APP}/stores").json()}
    assert listed["scratch"]["access"] == "role" and listed["example_db"]["access"] is None
    response = admin.post(f"/api/v1/apps/{APP}/stores/rotate-credentials?database=scratch")
    assert response.status_code == 200, response.text
    assert response.json() == [
        {
            **response.json()[0],
            "app": APP,
            "store": "scratch",
            "role": "my_first_app_scratch",
            "action": "rotated",
            "ok": True,
        }
    ]
    from storekeeper import engines

    engines.clear()
    after = my_first_app.get_persistent_store_database("scratch", as_url=True)
    assert after.password != before.password and after.password not in response.text
    problem(viewer.post(f"/api/v1/apps/{APP}/stores/rotate-credentials"), 403)


#: A module outside every app that leaves a file behind if it is ever imported, and another if called.
MARKER_MODULE = """
import pathlib
pathlib.Path(__file__).with_suffix(".imported").touch()

def init(engine, first_time):
    pathlib.Path(__file__).with_suffix(".called").touch()
"""


def test_an_initializer_outside_the_apps_own_package_is_refused_before_it_is_imported(
    admin, my_first_app, admin_conn, platform, tmp_path, monkeypatch, capfd
):
    marker = tmp_path / "hostile_initializer_marker.py"
    marker.write_text(MARKER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    refused = [
        "builtins.print",
        "os.system",
        "os:system",
        "subprocess.getoutput",
        "hostile_initializer_marker.init",
        "hostile_initializer_marker:init",
        "sample_apps.flaky.init_db",  # another app's initializer
        "stream_gages.model.init_stream_gages_db",  # and another's
        "my_first_app",  # no function
        "my_first_app.model.__builtins__",
        "my_first_app.model.init_temp_db()",
        "my_first_app..model.init",
        "my_first_app.model:init:x",
        "my_first_app.model.init_\u0442emp_db",  # Cyrillic т
        "my_first_app.model.init temp",
    ]
    for path in refused:
        body = {"name": "scratch", "connection": "primary", "initializer": path}
        doc = problem(admin.post(f"/api/v1/apps/{APP}/stores", json=body), 422, "my_first_app.module.function")
        assert doc["app"] == APP
    assert not marker.with_suffix(".imported").exists() and not marker.with_suffix(".called").exists()
    assert "hostile_initializer_marker" not in __import__("sys").modules
    assert "<sqlalchemy" not in capfd.readouterr().out  # builtins.print(engine, first_time) never ran
    assert not database_exists(admin_conn, f"{APP}_scratch")
    assert "scratch" not in {s["name"] for s in admin.get(f"/api/v1/apps/{APP}/stores").json()}
    print(f"\nREST initializer paths: tried {len(refused)} / refused {len(refused)} / imported 0")


def test_an_initializer_in_the_apps_own_package_is_run(admin, my_first_app, admin_conn):
    for path, name in (("my_first_app.model.init_temp_db", "scratch"), ("my_first_app.model:init_temp_db", "other")):
        body = {"name": name, "connection": "primary", "initializer": path}
        response = admin.post(f"/api/v1/apps/{APP}/stores", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["first_time"] is True
        assert database_exists(admin_conn, f"{APP}_{name}")
        admin.delete(f"/api/v1/apps/{APP}/stores/{name}")


def test_migration_status_is_for_everyone_signed_in_and_migrate_for_admins(admin, viewer, platform, service):
    from storekeeper import apps

    for setting in ("primary", "db"):
        apps.assign_service(platform, "migrating_app", setting, service)
    url = "/api/v1/apps/migrating_app/stores"
    response = admin.get(f"{url}/migrations")
    assert response.status_code == 200, response.text
    (db,) = response.json()  # autogen_db has no service: left out
    assert (db["store"], db["exists"], db["head"], db["pending_count"]) == ("db", False, "0003", 3)
    assert db["pending"][0]["line"] == "<base> -> 0001, create gages"
    from storekeeper import stores

    (synced,) = stores.sync_stores(platform, ["migrating_app"], database="db")
    assert synced.ok and synced.revisions == ["0001", "0002", "0003"]
    down = admin.post(f"{url}/migrate", json={"store": "db", "to": "0001"})
    assert down.status_code == 200, down.text
    assert [(r["action"], r["before"], r["after"]) for r in down.json()] == [("downgrade", "0003", "0001")]
    up = admin.post(f"{url}/migrate", json={})
    assert [(r["store"], r["action"], r["after"], r["revisions"]) for r in up.json()] == [
        ("db", "upgrade", "0003", ["0002", "0003"])
    ]
    problem(admin.post(f"{url}/migrate", json={"store": "db", "to": "nope9"}), 409, "nope9")
    problem(admin.post(f"{url}/migrate", json={"store": "db", "to": "bad rev"}), 422)
    assert viewer.get(f"{url}/migrations").json()[0]["current"] == "0003"  # a read, as the store list is
    problem(viewer.post(f"{url}/migrate", json={}), 403)
