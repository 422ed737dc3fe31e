"""Apps' own endpoints at /apps/<package>/: served once the app is ready, 503 with the fix before."""

from __future__ import annotations

import json
import time

import pytest
from fastapi import APIRouter
from my_first_app.app import App as MyFirstApp

from storekeeper import apps, discovery, stores
from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting
from storekeeper.config import load_config
from storekeeper.portal.app import create_app
from tests.portal.conftest import TestClient, problem

APP = "my_first_app"

router = APIRouter()


@router.get("/hello")
def hello() -> dict[str, str]:
    engine = RouterApp.get_persistent_store_database("example_db")
    with engine.connect() as conn:
        return {"hello": "world", "store": conn.engine.url.database or ""}


class RouterApp(MyFirstApp):
    """my_first_app declaring only example_db and primary, with an APIRouter."""

    router = router

    def persistent_store_settings(self):  # type: ignore[no-untyped-def]
        return (
            PersistentStoreDatabaseSetting(name="example_db", initializer="my_first_app.model.init_example_db"),
            PersistentStoreConnectionSetting(name="primary"),
        )


async def plain_asgi(scope, receive, send):  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps({"path": scope["path"]}).encode()})


class AsgiApp(RouterApp):
    """The same app exposing a plain ASGI callable instead."""

    router = plain_asgi


class StringRouterApp(RouterApp):
    """The same app naming its router as a string, imported by the portal only."""

    router = "tests.portal.test_mounts:router"


greedy = APIRouter()


@greedy.api_route("/{rest:path}", methods=["GET", "POST"])
def catch_all(rest: str) -> dict[str, str]:
    return {"caught": rest}


class GreedyApp(RouterApp):
    """An app whose router catches every path under its prefix."""

    router = greedy


class MissingRouterApp(RouterApp):
    """An app whose router string names a module that does not exist."""

    router = "no_such_module.routes:router"


class MalformedRouterApp(RouterApp):
    router = "tests.portal.test_mounts.router"  # no ":attribute"


@pytest.fixture
def installed(platform, service, monkeypatch):  # type: ignore[no-untyped-def]
    """Install one of the classes above as my_first_app; return a function building the portal."""

    def install(app_cls: type) -> TestClient:
        monkeypatch.setattr(discovery, "_installed", ({APP: app_cls}, []))
        return TestClient(create_app(load_config()))

    return install


def test_an_apps_router_answers_503_naming_what_to_assign_and_sync(installed):
    with installed(RouterApp) as client:
        doc = problem(
            client.get(f"/apps/{APP}/hello"),
            503,
            "example_db",
            "primary",
            f"app-settings set {APP}",
            f"syncstores {APP}",
        )
    assert doc["app"] == APP


def test_an_apps_router_is_served_once_its_stores_are_ready(installed, platform, service):
    with installed(RouterApp) as client:
        apps.assign_service(platform, APP, "example_db", service)
        apps.assign_service(platform, APP, "primary", service)
        problem(client.get(f"/apps/{APP}/hello"), 503, "not initialized", f"syncstores {APP}")
        stores.sync_stores(platform, [APP])
        response = client.get(f"/apps/{APP}/hello")
        assert response.status_code == 200, response.text
        assert response.json() == {"hello": "world", "store": "my_first_app_example_db"}
        assert f"/apps/{APP}/hello" in client.get("/openapi.json").json()["paths"]


def test_apps_routes_are_tried_first_but_never_shadow_the_portals(installed, platform, service, admin_token):
    """App routes come first (so an app request is not matched against every portal route),
    yet even a catch-all route only ever sees paths under its own /apps/<package>/."""
    with installed(GreedyApp) as client:
        for setting in ("example_db", "primary"):
            apps.assign_service(platform, APP, setting, service)
        stores.sync_stores(platform, [APP])
        assert client.get(f"/apps/{APP}/any/thing").json() == {"caught": "any/thing"}
        assert client.get("/healthz").json()["status"] == "ok"
        me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {admin_token}"})
        assert me.status_code == 200 and me.json()["username"] == "admin"
        problem(client.get("/api/v1/auth/me"), 401)
        assert client.get("/admin/", follow_redirects=False).status_code in (200, 303)
        # ... and an app's route still gets the portal's headers.
        assert client.get(f"/apps/{APP}/x").headers["x-content-type-options"] == "nosniff"


def test_a_ready_app_that_stops_being_ready_answers_503_after_one_revalidation(
    installed, platform, service, monkeypatch
):
    """The good answer is trusted for engines.revalidate_seconds; then one check runs while requests
    are still served, and the app answers 503 as soon as that check has found it not ready."""
    monkeypatch.setenv("STOREKEEPER_ENGINES_REVALIDATE_SECONDS", "0.5")
    with installed(RouterApp) as client:
        for setting in ("example_db", "primary"):
            apps.assign_service(platform, APP, setting, service)
        stores.sync_stores(platform, [APP])
        assert client.get(f"/apps/{APP}/hello").status_code == 200
        apps.reset_setting(platform, APP, "primary")  # a required setting loses its service
        deadline = time.monotonic() + 0.5 + 5
        while (response := client.get(f"/apps/{APP}/hello")).status_code == 200:
            assert time.monotonic() < deadline, "still served long after the revalidation time"
            time.sleep(0.05)
        problem(response, 503, "primary", f"app-settings set {APP}")


def test_a_plain_asgi_app_is_mounted_and_gated_too(installed, platform, service):
    with installed(AsgiApp) as client:
        problem(client.get(f"/apps/{APP}/anything"), 503, "example_db")
        for setting in ("example_db", "primary"):
            apps.assign_service(platform, APP, setting, service)
        stores.sync_stores(platform, [APP])
        response = client.get(f"/apps/{APP}/anything")
        assert response.status_code == 200
        assert response.json()["path"].endswith("/anything")


def test_apps_without_a_router_mount_nothing(anon):
    problem(anon.get(f"/apps/{APP}/hello"), 404)


def test_a_router_named_by_a_string_is_imported_and_mounted_by_the_portal(installed):
    with installed(StringRouterApp) as client:
        problem(client.get(f"/apps/{APP}/hello"), 503, "example_db", f"syncstores {APP}")
        assert f"/apps/{APP}/hello" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("app_cls", [MissingRouterApp, MalformedRouterApp])
def test_a_router_string_that_does_not_import_leaves_that_app_unmounted(installed, app_cls, caplog):
    with caplog.at_level("WARNING", logger="storekeeper.portal"), installed(app_cls) as client:
        problem(client.get(f"/apps/{APP}/hello"), 404)
        assert client.get("/healthz").status_code == 200
    assert any("not mounted" in r.getMessage() and APP in r.getMessage() for r in caplog.records)
